"""Fixtures shared by the whole suite: every test starts from a clean process state."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog

# Real services for the tests (PostgreSQL, Prometheus with history, Chromium, the FOCUS
# validator): fixtures in tests/support/plugin.py, documented in tests/support/README.md.
pytest_plugins = ["tests.support.plugin"]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove CHARGEBACK_* variables so a developer's shell never changes a test."""
    for name in list(os.environ):
        if name.startswith("CHARGEBACK_"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Give each test structlog's defaults back, whatever the test configured."""
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
