"""Fixtures for tests with real services, registered from tests/conftest.py.

Every fixture that cannot start its service raises ServiceStartError with the service's
log: the test errors, it never skips. A test that fails while a service runs gets that
service's log as an extra section of its report.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
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
