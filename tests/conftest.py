"""Fixtures shared by the whole suite: every test starts from a clean process state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from tests.storage_targets import STORAGE_TARGETS, StorageTarget

from chargeback.settings import StorageSettings

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


@pytest.fixture(scope="session", params=STORAGE_TARGETS)
def storage_target(request: pytest.FixtureRequest) -> StorageTarget:
    """Each storage backend of ``tests/storage_targets.py`` in turn (stateless: session-wide)."""
    target: StorageTarget = request.param
    return target


@pytest.fixture
def storage_settings(storage_target: StorageTarget, tmp_path: Path) -> StorageSettings:
    """The settings of a fresh, empty database of the current storage target."""
    return storage_target.make(tmp_path)
