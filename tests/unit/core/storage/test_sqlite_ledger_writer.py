"""Usage-ledger writes through SQLite's writer child: same rows as in-process, nothing lost.

A large ledger write (a backfill's batch of clusters) goes to the writer child like a
large date commit (``storage.writer_process_min_rows``); a small one stays on the
writer connection's thread. Both must store the same rows, and a child killed in the
middle of a write must leave the ledger as it was.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from tests.unit.core.storage.test_sqlite_writer_process import child_pid, write_lock_held

from chargeback.core.ledger import UsageEntry
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.errors import StorageError

AT = dt.datetime(2024, 5, 9, 0, 15, tzinfo=dt.UTC)
D1 = dt.date(2024, 5, 1)
REQ = "io.confluent.kafka.server/request_bytes|resource.kafka.id|metric.principal_id"


def entries(values: int, *, days: int = 2, resources: int = 3) -> list[UsageEntry]:
    """Cells of ``resources`` clusters over ``days`` days; one empty cell per day."""
    out = []
    for d in range(days):
        day = D1 + dt.timedelta(days=d)
        for r in range(resources):
            usage = {f"sa-{p}": values * 1000 + r * 10 + p for p in range(4)}
            out.append(UsageEntry(day, REQ, f"lkc-{r}", usage, "metrics_api", AT))
        out.append(UsageEntry(day, REQ, "lkc-empty", {}, "metrics_api", AT))
    return out


def ledger(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM usage_ledger ORDER BY 1, 2, 3, 4, 5").fetchall()
    finally:
        conn.close()


class TestSameRows:
    async def test_child_and_in_process_store_identical_ledgers(self, tmp_path: Path) -> None:
        """The same writes (a cell replaced included), in-process and through the child."""
        paths = {}
        for name, min_rows in (("in-process", None), ("child", 0)):
            path = paths[name] = tmp_path / f"{name}.sqlite"
            async with SQLiteBackend(path, writer_process_min_rows=min_rows) as store:
                await store.write_usage("t1", entries(1))
                await store.write_usage("t1", entries(2, days=1, resources=2))  # replaces
                assert (child_pid(store) is not None) == (min_rows == 0)
        assert ledger(paths["child"]) == ledger(paths["in-process"])
        assert len(ledger(paths["child"])) == 2 * (3 * 4 + 1)
        assert (D1.isoformat(), 2000) in {(r[1], r[5]) for r in ledger(paths["child"])}

    async def test_small_writes_stay_in_process(self, tmp_path: Path) -> None:
        """Below the threshold (rows, as for date commits) no child is started."""
        async with SQLiteBackend(tmp_path / "db.sqlite", writer_process_min_rows=20) as store:
            await store.write_usage("t1", entries(1, days=1))  # 13 rows
            assert child_pid(store) is None
            await store.write_usage("t1", entries(1, days=2))  # 26 rows
            assert child_pid(store) is not None


class TestFailures:
    async def test_a_killed_child_fails_the_write_and_keeps_the_ledger(
        self, tmp_path: Path
    ) -> None:
        """SIGKILL of the child mid-write: StorageError, the old cells intact, next write works."""
        path = tmp_path / "db.sqlite"
        async with SQLiteBackend(path, writer_process_min_rows=0, busy_timeout_s=10) as store:
            await store.write_usage("t1", entries(1))
            before = ledger(path)
            first_pid = child_pid(store)
            assert first_pid is not None
            with write_lock_held(str(path)):  # the child waits for this lock
                task = asyncio.create_task(store.write_usage("t1", entries(2)))
                await asyncio.sleep(0.5)
                assert not task.done()
                os.kill(first_pid, signal.SIGKILL)
                with pytest.raises(StorageError, match="writer process exited"):
                    await task
            assert ledger(path) == before
            await store.write_usage("t1", entries(3))
            assert child_pid(store) not in (None, first_pid)
        assert {r[5] for r in ledger(path)} >= {3000}

    async def test_a_locked_database_is_said_so_and_nothing_is_stored(self, tmp_path: Path) -> None:
        """The child's SQLite error keeps its code, translated like a commit's."""
        path = tmp_path / "db.sqlite"
        async with SQLiteBackend(path, writer_process_min_rows=0, busy_timeout_s=0.05) as store:
            await store.write_usage("t1", entries(1))
            locked = pytest.raises(StorageError, match="is locked by another connection")
            with write_lock_held(str(path)), locked:
                await store.write_usage("t1", entries(2))
        assert {r[5] for r in ledger(path) if r[5] is not None} == {
            1000 + r * 10 + p for r in range(3) for p in range(4)
        }
