"""Database failures become StorageErrors that say what happened and what to do."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3

import pytest

from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.errors import StorageError

DAY = dt.date(2024, 5, 1)
NOW = dt.datetime(2024, 5, 4, tzinfo=dt.UTC)


async def commit_empty(store: SQLiteBackend, fingerprint: str = "b") -> int:
    state = await store.commit_date(
        "t1",
        DAY,
        lines=[],
        rows=[],
        plugin_rows=[],
        billing_fingerprint=fingerprint,
        settings_fingerprint="s",
        inventory_fingerprint="i",
        calculated_at=NOW,
    )
    return state.calc_seq


class TestLocked:
    async def test_write_lock_held_elsewhere_times_out_clearly(self, tmp_path):
        """A second connection holding the write lock makes a write fail with 'locked'."""
        path = tmp_path / "db.sqlite"
        async with SQLiteBackend(path, busy_timeout_s=0.05) as store:
            await commit_empty(store)
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            try:
                with pytest.raises(StorageError, match="is locked by another connection"):
                    await commit_empty(store, "new")
                # reads still see the last committed state while the lock is held
                states = await store.get_date_states("t1", DAY, DAY + dt.timedelta(days=1))
                assert states[DAY].billing_fingerprint == "b"
            finally:
                other.execute("ROLLBACK")
                other.close()
            assert await commit_empty(store, "new") == 2


class TestReadOnly:
    async def test_read_only_open_of_an_empty_file_explains(self, tmp_path):
        """Opening a database without chargeback's schema read-only says how to create it."""
        path = tmp_path / "empty.sqlite"
        sqlite3.connect(path).close()
        with pytest.raises(StorageError, match="no chargeback schema"):
            await SQLiteBackend(path, read_only=True).open()

    @pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
    async def test_read_only_file_is_reported(self, tmp_path):
        """A database file without write permission fails with a 'read-only' StorageError."""
        path = tmp_path / "db.sqlite"
        async with SQLiteBackend(path) as store:
            await commit_empty(store)
        path.chmod(0o444)
        try:
            with pytest.raises(StorageError, match="read-only"):
                async with SQLiteBackend(path) as store:
                    await commit_empty(store)
        finally:
            path.chmod(0o644)


class TestBrokenFiles:
    async def test_not_a_database(self, tmp_path):
        """A file that is not SQLite is reported as corrupt or not a chargeback database."""
        path = tmp_path / "junk.sqlite"
        path.write_bytes(b"this is not a database file at all, just some text" * 100)
        with pytest.raises(StorageError, match="corrupt or not a chargeback database"):
            await SQLiteBackend(path).open()

    async def test_missing_directory(self, tmp_path):
        """A path in a directory that does not exist says to check the directory."""
        with pytest.raises(StorageError, match="check that its directory exists"):
            await SQLiteBackend(tmp_path / "nope" / "db.sqlite").open()


class TestMemory:
    async def test_in_memory_database_works(self):
        """':memory:' gives a private working database (one connection for reads and writes)."""
        async with SQLiteBackend(":memory:") as store:
            assert await commit_empty(store) == 1
            assert await store.latest_calculated_date("t1") == DAY
