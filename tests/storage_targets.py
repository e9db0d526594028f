"""The storage backends the storage contract suite runs against (DESIGN §7, §18).

Each :class:`StorageTarget` turns a test's directory into the settings of a database
that belongs to that directory (created empty on first use), and can peek into it with
raw SQL for assertions the protocol does not expose (how many rows a table holds). The
contract tests (``tests/unit/core/storage/contract/``) open every backend through the
production factory (:func:`chargeback.core.storage.factory.open_backend`), so a backend is one
``pytest.param`` in :data:`STORAGE_TARGETS`.

The PostgreSQL target starts one throwaway cluster (``tests/support/postgres.py``) the
first time a test needs it, and stops it when the session ends; each directory gets a
database named after it, so the same directory gives the same database. Its URL holds
no password: the password is in ``PGPASSWORD`` (set while a test uses the target), as an
operator's would be, so nothing the backend logs or raises could show it.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from tests.support.postgres import PostgresCluster, start_cluster, stop_cluster

from chargeback.settings import StorageSettings

__all__ = ["POSTGRESQL", "SQLITE", "SQLITE_WRITER_CHILD", "STORAGE_TARGETS", "StorageTarget"]


@dataclass(frozen=True, slots=True)
class StorageTarget:
    """One backend configuration the contract suite runs against.

    Attributes:
        name: the test id.
        make: the settings of the database belonging to a directory (a fresh directory
            gives a fresh, empty database; the same directory the same database).
        peek: run one read-only SQL query (``?`` placeholders) against that database and
            return its rows, for assertions about what is stored.
        holds_nul: whether text may contain U+0000 (PostgreSQL's text cannot: its backend
            refuses such text with a StorageError instead).
    """

    name: str
    make: Callable[[Path], StorageSettings]
    peek: Callable[[StorageSettings, str, Sequence[Any]], list[tuple[Any, ...]]]
    holds_nul: bool = True


def _sqlite_peek(
    settings: StorageSettings, sql: str, params: Sequence[Any]
) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(settings.path)
    try:
        return list(conn.execute(sql, tuple(params)).fetchall())
    finally:
        conn.close()


SQLITE = StorageTarget(
    "sqlite",
    lambda directory: StorageSettings(
        path=directory / "chargeback.db", writer_process_min_rows=None
    ),
    _sqlite_peek,
)
"""The embedded SQLite file, every commit written in the test's process."""

SQLITE_WRITER_CHILD = StorageTarget(
    "sqlite-writer-child",
    lambda directory: StorageSettings(path=directory / "chargeback.db", writer_process_min_rows=0),
    _sqlite_peek,
)
"""The same file, every date commit written by the writer child process: not a backend of
its own but SQLite's second write path, so only the commit tests run on it
(``tests/unit/core/storage/test_sqlite_writer_child_contract.py``)."""

_cluster: PostgresCluster | None = None


def postgres_cluster() -> PostgresCluster:
    """The session's throwaway cluster, started on first use (stopped at exit)."""
    global _cluster  # noqa: PLW0603  (one cluster per test process)
    if _cluster is None:
        _cluster = start_cluster()
        atexit.register(stop_cluster, _cluster)
    os.environ["PGPASSWORD"] = _cluster.password
    return _cluster


def _postgres_make(directory: Path) -> StorageSettings:
    cluster = postgres_cluster()
    name = "t_" + hashlib.sha256(str(directory).encode()).hexdigest()[:24]
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if exists is None:
        cluster.create_database(name)
    return StorageSettings(
        url=f"postgresql://{quote(cluster.user)}@{cluster.host}:{cluster.port}/{name}"
    )


def _postgres_peek(
    settings: StorageSettings, sql: str, params: Sequence[Any]
) -> list[tuple[Any, ...]]:
    assert settings.url is not None
    with psycopg.connect(settings.url, password=postgres_cluster().password) as conn:
        return list(conn.execute(sql.replace("?", "%s"), tuple(params)).fetchall())


POSTGRESQL = StorageTarget("postgresql", _postgres_make, _postgres_peek, holds_nul=False)
"""A database on the throwaway PostgreSQL cluster, the password from ``PGPASSWORD``."""

STORAGE_TARGETS = [
    pytest.param(SQLITE, id=SQLITE.name),
    pytest.param(POSTGRESQL, id=POSTGRESQL.name),
]
"""Every backend: the contract suite runs once per entry."""
