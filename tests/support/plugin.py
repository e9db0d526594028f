"""Fixtures for tests with real services, registered from tests/conftest.py.

Every fixture that cannot start its service raises ServiceStartError with the service's
log: the test errors, it never skips. A test that fails while a service runs gets that
service's log as an extra section of its report.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page as AsyncPage
from playwright.async_api import async_playwright
from playwright.sync_api import Browser, Page, sync_playwright
from tests.support import browser as browser_support
from tests.support.focus import FocusReport, run_focus_validator
from tests.support.postgres import PostgresCluster, PostgresDatabase, running_cluster
from tests.support.prometheus import DEFAULT_MAX_BLOCK, MetricHistory, PrometheusServer
from tests.support.prometheus import prometheus_with_history as _prometheus_with_history

SERVICE_LOGS = pytest.StashKey[dict[str, Callable[[], str]]]()


def _attach_log(request: pytest.FixtureRequest, name: str, log: Callable[[], str]) -> None:
    request.node.stash.setdefault(SERVICE_LOGS, {})[name] = log


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Add the logs of the services a failed test used to its report."""
    report = yield
    if report.failed:
        for name, log in item.stash.get(SERVICE_LOGS, {}).items():
            report.sections.append((f"{name} log", log()[-20_000:]))
    return report


# PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the session, stopped and removed at the end."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_database(
    request: pytest.FixtureRequest, postgres_cluster: PostgresCluster
) -> Iterator[PostgresDatabase]:
    """A fresh, empty database for this test (dropped after it), with its DSN."""
    _attach_log(request, "PostgreSQL", postgres_cluster.log_text)
    database = postgres_cluster.create_database()
    yield database
    postgres_cluster.drop_database(database.name)


@pytest.fixture
def postgres_dsn(postgres_database: PostgresDatabase) -> str:
    """The DSN (``postgresql://user:password@127.0.0.1:port/db``) of a fresh database."""
    return postgres_database.dsn


# Prometheus ---------------------------------------------------------------------------

PrometheusFactory = Callable[..., PrometheusServer]


@pytest.fixture
def prometheus_history(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[PrometheusFactory]:
    """Factory: ``prometheus_history(history)`` backfills it and returns a running server.

    ``history`` is OpenMetrics text (timestamps, ``# EOF``) or MetricHistory families;
    ``max_block_duration=`` is passed to promtool. Every server stops after the test.
    """
    counter = itertools.count()
    with contextlib.ExitStack() as stack:

        def start(
            history: str | list[MetricHistory], *, max_block_duration: str = DEFAULT_MAX_BLOCK
        ) -> PrometheusServer:
            workdir = tmp_path / f"prometheus-{next(counter)}"
            workdir.mkdir()
            server = stack.enter_context(
                _prometheus_with_history(history, workdir, max_block_duration=max_block_duration)
            )
            _attach_log(request, f"Prometheus {workdir.name}", server.log_text)
            return server

        yield start


# Chromium -----------------------------------------------------------------------------

SCREENSHOTS = pytest.StashKey[list[Path]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say where the screenshots of this run are."""
    shots = config.stash.get(SCREENSHOTS, [])
    if shots:
        terminalreporter.write_line(
            f"screenshots: {len(shots)} written to {shots[0].parent} (e.g. {shots[-1].name})"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a module that mixes the sync browser with async tests (they cannot coexist)."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(str(item.path), []).append(item)
    for path, module_items in modules.items():
        uses_sync = any("chromium_browser" in getattr(i, "fixturenames", ()) for i in module_items)
        has_async = any(
            inspect.iscoroutinefunction(getattr(i, "function", None)) for i in module_items
        )
        if uses_sync and has_async:
            raise pytest.UsageError(
                f"{path}: browser_page/chromium_browser (Playwright's sync API, alive for the "
                "whole module) cannot share a module with async tests; put those in another "
                "module or use async_browser_page there"
            )


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Browser]:
    """Headless Debian Chromium under Playwright's sync API, shared by a test module.

    While it lives, Playwright's event loop counts as running in this thread: the
    module's tests must be sync and must not call ``asyncio.run`` (a collection check
    refuses async tests beside it). Async tests use ``async_browser_page``.
    """
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**browser_support.launch_options())
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium_browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies or storage from other tests)."""
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
async def async_browser_page() -> AsyncIterator[AsyncPage]:
    """A page of a headless Chromium under Playwright's async API (for asyncio tests)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(**browser_support.launch_options())
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        yield await context.new_page()
        await context.close()
        await browser.close()


@pytest.fixture
def screenshot_file(request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """``screenshot_file(name)``: where this test's screenshot called ``name`` goes.

    Use as ``page.screenshot(path=screenshot_file("overview"), full_page=True)`` with the
    sync or the async API; the run's summary lists the directory.
    """

    def path_for(name: str) -> Path:
        path = browser_support.screenshot_path(request.node.nodeid, name)
        request.config.stash.setdefault(SCREENSHOTS, []).append(path)
        return path

    return path_for


# FOCUS validator ----------------------------------------------------------------------

FocusValidator = Callable[..., FocusReport]


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--focus-rule-set-path``: a directory of FOCUS rule sets (model-<version>.json)."""
    parser.addoption(
        "--focus-rule-set-path",
        default=os.environ.get("FOCUS_RULE_SET_PATH"),
        help="directory with the validator's model-<version>.json rule sets (for FOCUS 1.3)",
    )


@pytest.fixture(scope="session")
def focus_rule_set_path(pytestconfig: pytest.Config) -> Path | None:
    """The directory given by ``--focus-rule-set-path`` (or $FOCUS_RULE_SET_PATH), if any."""
    value = pytestconfig.getoption("--focus-rule-set-path")
    return Path(value) if value else None


@pytest.fixture(scope="session")
def focus_validator(focus_rule_set_path: Path | None) -> FocusValidator:
    """``focus_validator(path, version="1.2")`` -> FocusReport.

    Versions the validator does not ship (1.3) are looked up in ``--focus-rule-set-path``.
    """

    def validate(data_file: Path, version: str = "1.2") -> FocusReport:
        return run_focus_validator(data_file, version, rule_set_path=focus_rule_set_path)

    return validate
