"""The storage contract suite: every test here runs against every storage target.

The tests speak only the :class:`~chargeback.core.storage.backend.StorageBackend`
protocol, on a backend the production factory opens from settings. The fixtures:

- ``backend``: an open backend on a fresh database of the current target
  (``storage_settings`` and ``storage_target`` from ``tests/conftest.py``).
- ``reopen``: ``async with reopen(read_only=False) as store``: another backend on the
  same database (a restart, or a read-only reader beside the writer).
- ``peek``: ``peek(sql, *params)`` runs raw SQL on that database for what the
  protocol does not read back (row counts of a table).

The row factories (``line_factory``, ``rows_factory``, ``commit_date``) come from the
parent ``conftest.py``. Backend-specific tests (SQLite's row ranges, writer child,
query plans, WAL, migrations) live beside this folder, in ``test_sqlite_*.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from tests.storage_targets import StorageTarget

from chargeback.core.storage.backend import StorageBackend
from chargeback.core.storage.factory import open_backend
from chargeback.settings import StorageSettings

Reopen = Callable[..., AbstractAsyncContextManager[StorageBackend]]
Peek = Callable[..., list[tuple[Any, ...]]]


@pytest.fixture
async def backend(storage_settings: StorageSettings) -> AsyncIterator[StorageBackend]:
    """An open backend on a fresh database of the current storage target, closed after."""
    async with open_backend(storage_settings) as store:
        yield store


@pytest.fixture
def reopen(storage_settings: StorageSettings) -> Reopen:
    """Open another backend on the test's database: ``reopen(read_only=True)``."""

    def again(*, read_only: bool = False) -> AbstractAsyncContextManager[StorageBackend]:
        return open_backend(storage_settings, read_only=read_only)

    return again


@pytest.fixture
def peek(storage_target: StorageTarget, storage_settings: StorageSettings) -> Peek:
    """Run one read-only SQL query (``?`` placeholders) on the test's database."""

    def query(sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return storage_target.peek(storage_settings, sql, params)

    return query
