"""Failures every backend reports the same way: writes refused read-only, use when closed."""

from __future__ import annotations

import datetime as dt

import pytest

from chargeback.core.storage.backend import StorageBackend
from chargeback.core.storage.factory import make_backend
from chargeback.errors import StorageError

DAY = dt.date(2024, 5, 1)
NOW = dt.datetime(2024, 5, 4, tzinfo=dt.UTC)


async def commit_empty(store: StorageBackend, fingerprint: str = "b") -> int:
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


class TestReadOnly:
    async def test_read_only_backend_refuses_writes(self, reopen):
        """A backend opened read-only reads the data and refuses every write."""
        async with reopen() as store:
            await commit_empty(store)
        async with reopen(read_only=True) as store:
            assert await store.latest_calculated_date("t1") == DAY
            with pytest.raises(StorageError, match="read-only"):
                await commit_empty(store)
            with pytest.raises(StorageError, match="read-only"):
                await store.start_run("t1", "r", "cli", NOW)


class TestClosed:
    async def test_use_before_open_and_after_close(self, storage_settings):
        """Calls on a closed backend fail with a StorageError, not an AttributeError."""
        store = make_backend(storage_settings)
        with pytest.raises(StorageError, match="not open"):
            await store.tenants()
        await store.open()
        await store.close()
        await store.close()
        with pytest.raises(StorageError, match="not open"):
            await commit_empty(store)
