"""The storage backends the storage contract suite runs against (DESIGN §7, §18).

Each :class:`StorageTarget` turns a test's directory into the settings of a database
that belongs to that directory (created empty on first use), and can peek into it with
raw SQL for assertions the protocol does not expose (how many rows a table holds). The
contract tests (``tests/unit/core/storage/contract/``) open every backend through the
production factory (:func:`chargeback.core.storage.factory.open_backend`), so a new
backend is one more ``pytest.param`` in :data:`STORAGE_TARGETS`::

    pytest.param(POSTGRESQL, id="postgresql"),

with a target whose ``make`` creates a database on a test server and returns
``StorageSettings(url="postgresql://...")`` (the throwaway cluster of
``tests/support/postgres.py``: ``create_database`` named after the directory, so the same
directory gives the same database), and whose ``peek`` runs the query there (``?``
placeholders become ``%s``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chargeback.settings import StorageSettings

__all__ = ["SQLITE", "SQLITE_WRITER_CHILD", "STORAGE_TARGETS", "StorageTarget"]


@dataclass(frozen=True, slots=True)
class StorageTarget:
    """One backend configuration the contract suite runs against.

    Attributes:
        name: the test id.
        make: the settings of the database belonging to a directory (a fresh directory
            gives a fresh, empty database; the same directory the same database).
        peek: run one read-only SQL query (``?`` placeholders) against that database and
            return its rows, for assertions about what is stored.
    """

    name: str
    make: Callable[[Path], StorageSettings]
    peek: Callable[[StorageSettings, str, Sequence[Any]], list[tuple[Any, ...]]]


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

STORAGE_TARGETS = [
    pytest.param(SQLITE, id=SQLITE.name),
]
"""Every backend: the contract suite runs once per entry."""
