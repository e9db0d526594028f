"""Fixtures for tests with real services, registered from tests/conftest.py.

Every fixture that cannot start its service raises ServiceStartError with the service's
log: the test errors, it never skips. A test that fails while a service runs gets that
service's log as an extra section of its report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.support.postgres import PostgresCluster, PostgresDatabase, running_cluster

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
