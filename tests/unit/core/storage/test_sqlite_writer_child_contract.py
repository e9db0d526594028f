"""The commit contract again, every date written by SQLite's writer child process.

The child is SQLite's second write path (DESIGN §7; ``storage.writer_process_min_rows``),
not a backend of its own: the commit tests of the contract suite run here once more
with ``writer_process_min_rows=0``, so both paths keep the same contract; so do the
usage ledger's, whose large writes go to the same child.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from tests.storage_targets import SQLITE_WRITER_CHILD, StorageTarget
from tests.unit.core.storage.contract import test_commit, test_ledger

from chargeback.core.storage.backend import StorageBackend
from chargeback.core.storage.factory import open_backend
from chargeback.settings import StorageSettings


@pytest.fixture
def storage_target() -> StorageTarget:
    """The writer child only (the contract's own runs cover every backend)."""
    return SQLITE_WRITER_CHILD


@pytest.fixture
def child_settings(tmp_path) -> StorageSettings:
    """A fresh database whose every date commit goes to the writer child."""
    return SQLITE_WRITER_CHILD.make(tmp_path)


@pytest.fixture
async def backend(child_settings: StorageSettings) -> AsyncIterator[StorageBackend]:
    """An open backend writing through the child, closed after the test."""
    async with open_backend(child_settings) as store:
        yield store


@pytest.fixture
def reopen(child_settings: StorageSettings) -> Callable[..., AbstractAsyncContextManager[Any]]:
    """Another backend on the test's database (as the contract suite's ``reopen``)."""

    def again(*, read_only: bool = False) -> AbstractAsyncContextManager[StorageBackend]:
        return open_backend(child_settings, read_only=read_only)

    return again


@pytest.fixture
def peek(child_settings: StorageSettings) -> Callable[..., list[tuple[Any, ...]]]:
    """Raw SQL on the test's database (as the contract suite's ``peek``)."""
    return lambda sql, *params: SQLITE_WRITER_CHILD.peek(child_settings, sql, params)


class TestCommitReplacesDateThroughTheChild(test_commit.TestCommitReplacesDate):
    """The contract's date replacement, written by the child."""


class TestCommitValidationThroughTheChild(test_commit.TestCommitValidation):
    """The contract's commit validation, written by the child."""


class TestPluginRowsThroughTheChild(test_commit.TestPluginRows):
    """The contract's plugin rows, written by the child."""


class TestConcurrentCommitsThroughTheChild(test_commit.TestConcurrentCommits):
    """The contract's concurrent commits, written by the child."""


class TestLedgerWriteAndReadThroughTheChild(test_ledger.TestWriteAndRead):
    """The usage ledger's cells, written by the child."""


class TestLedgerBadInputThroughTheChild(test_ledger.TestBadInput):
    """The usage ledger's refusals (a value beyond 64 bits fails in the child)."""
