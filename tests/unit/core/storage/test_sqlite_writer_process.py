"""The writer child process: same rows as in-process, and failures that lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.unit.core.storage.contract.test_commit import ExtraModule

from chargeback.core.models import BillingLineItem, ChargebackRow
from chargeback.core.plugin.protocols import PluginRows
from chargeback.core.storage import _commit
from chargeback.core.storage._writer import CommitWriter
from chargeback.core.storage._writer_child import MARSHALLED, decode
from chargeback.core.storage.backend import DateState
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.errors import StorageError

DAY = dt.date(2024, 5, 1)
NOW = dt.datetime(2024, 5, 4, 6, 0, tzinfo=dt.UTC)
IDS = ("sa-1", "sa-2", "UNALLOCATED")


def child_pid(store: SQLiteBackend) -> int | None:
    """The pid of the backend's writer child, if one runs."""
    writer = store._child
    return None if writer is None else writer.pid


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the date tables, in a stable order (timestamps left out)."""
    conn = sqlite3.connect(path)
    try:
        return {
            "billing_lines": conn.execute(
                "SELECT * FROM billing_lines ORDER BY 1, 2, 3"
            ).fetchall(),
            "chargeback_rows": conn.execute(
                "SELECT * FROM chargeback_rows ORDER BY rowid"
            ).fetchall(),
            "date_state": conn.execute(
                "SELECT tenant_id, date, billing_fingerprint, calc_seq, line_count, row_count, "
                "billed_total, allocated_total, unallocated_total FROM date_state ORDER BY 1, 2"
            ).fetchall(),
        }
    finally:
        conn.close()


@contextlib.contextmanager
def write_lock_held(path: str) -> Iterator[sqlite3.Connection]:
    """Another connection holding the database's write lock until the block ends."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()


def process_state(pid: int) -> str | None:
    """The kernel's state letter of a process, or None once it is gone (reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    for line in status.splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    return None


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    """Wait until the process has exited (a zombie counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_state(pid) in (None, "Z", "X"):
            return True
        time.sleep(0.05)
    return False


async def commit(
    store: SQLiteBackend,
    line_factory: Any,
    rows_factory: Any,
    amounts: list[int],
    *,
    fingerprint: str = "b",
    day: dt.date = DAY,
) -> DateState:
    lines: list[BillingLineItem] = [
        line_factory(f"line-{i}", a, day=day) for i, a in enumerate(amounts)
    ]
    rows: list[ChargebackRow] = [
        r for line in lines for r in rows_factory("t1", line, IDS, [5, 3, 2])
    ]
    return await store.commit_date(
        "t1",
        day,
        lines=lines,
        rows=rows,
        plugin_rows=[],
        billing_fingerprint=fingerprint,
        settings_fingerprint="s",
        inventory_fingerprint="i",
        calculated_at=NOW,
    )


@pytest.fixture
async def child_store(tmp_path: Path):
    """A backend that sends every commit to its writer child."""
    store = SQLiteBackend(tmp_path / "db.sqlite", writer_process_min_rows=0, busy_timeout_s=10)
    await store.open()
    yield store
    await store.close()


class TestSameResult:
    async def test_child_and_in_process_write_identical_databases(
        self, tmp_path: Path, line_factory, rows_factory
    ) -> None:
        """The same commits, once in-process and once through the child, store equal rows."""
        paths = {}
        for name, min_rows in (("in-process", None), ("child", 0)):
            path = paths[name] = tmp_path / f"{name}.sqlite"
            async with SQLiteBackend(path, writer_process_min_rows=min_rows) as store:
                await commit(store, line_factory, rows_factory, [1000, -333, 7, 10**12])
                await commit(store, line_factory, rows_factory, [5, 6], fingerprint="2")
                await commit(store, line_factory, rows_factory, [9], day=DAY + dt.timedelta(days=1))
                assert (child_pid(store) is not None) == (min_rows == 0)
        assert dump(paths["child"]) == dump(paths["in-process"])
        assert dump(paths["child"])["date_state"][0][3] == 2  # calc_seq counted in the child

    async def test_small_commits_stay_in_process(
        self, tmp_path: Path, line_factory, rows_factory
    ) -> None:
        """Below the threshold no child is started; at or above it one is."""
        async with SQLiteBackend(tmp_path / "db.sqlite", writer_process_min_rows=8) as store:
            await commit(store, line_factory, rows_factory, [1])  # 1 line + 3 rows
            assert child_pid(store) is None
            await commit(store, line_factory, rows_factory, [1, 2])  # 2 lines + 6 rows
            assert child_pid(store) is not None

    def test_in_memory_and_read_only_never_start_a_child(self, tmp_path: Path) -> None:
        """An in-memory or read-only backend has no writer child at all."""
        assert SQLiteBackend(":memory:", writer_process_min_rows=0)._child is None
        assert (
            SQLiteBackend(tmp_path / "x", writer_process_min_rows=0, read_only=True)._child is None
        )


class TestFailures:
    async def test_errors_in_the_child_are_translated(
        self, child_store: SQLiteBackend, line_factory, rows_factory
    ) -> None:
        """A SQLite error raised in the child keeps its code: 'locked' says what to do."""
        await commit(child_store, line_factory, rows_factory, [1])
        with write_lock_held(child_store.path):
            store = SQLiteBackend(child_store.path, writer_process_min_rows=0, busy_timeout_s=0.05)
            await store.open()
            try:
                with pytest.raises(StorageError, match="is locked by another connection"):
                    await commit(store, line_factory, rows_factory, [2], fingerprint="x")
            finally:
                await store.close()
        assert dump(Path(child_store.path))["date_state"][0][2] == "b"

    async def test_killed_child_fails_its_commit_and_keeps_the_old_version(
        self, child_store: SQLiteBackend, line_factory, rows_factory
    ) -> None:
        """SIGKILL of the child mid-commit: StorageError, old date intact, next commit works."""
        await commit(child_store, line_factory, rows_factory, [10, 20])
        before = dump(Path(child_store.path))
        first_pid = child_pid(child_store)
        assert first_pid is not None
        with write_lock_held(child_store.path):  # the child will wait for this lock
            task = asyncio.create_task(
                commit(child_store, line_factory, rows_factory, [7, 8, 9], fingerprint="new")
            )
            await asyncio.sleep(0.5)
            assert not task.done()
            os.kill(first_pid, signal.SIGKILL)
            with pytest.raises(StorageError, match="writer process exited during the commit"):
                await task
        assert dump(Path(child_store.path)) == before
        state = await commit(child_store, line_factory, rows_factory, [7, 8, 9], fingerprint="n")
        assert state.calc_seq == 2
        assert child_pid(child_store) not in (None, first_pid)

    async def test_cancelled_commit_finishes_whole_before_the_cancel_lands(
        self, child_store: SQLiteBackend, line_factory, rows_factory
    ) -> None:
        """Cancelling the caller mid-commit waits for the child; the date lands whole."""
        await commit(child_store, line_factory, rows_factory, [1])
        with write_lock_held(child_store.path):
            task = asyncio.create_task(
                commit(child_store, line_factory, rows_factory, [4, 5], fingerprint="new")
            )
            await asyncio.sleep(0.3)
            task.cancel()
            await asyncio.sleep(0.2)
            assert not task.done()  # still waiting for the child, which waits for the lock
        with pytest.raises(asyncio.CancelledError):
            await task
        stored = dump(Path(child_store.path))
        assert stored["date_state"][0][2:6] == ("new", 2, 2, 6)
        assert len(stored["chargeback_rows"]) == 6

    async def test_child_ignores_operator_signals(
        self, child_store: SQLiteBackend, line_factory, rows_factory
    ) -> None:
        """Ctrl-C or SIGTERM sent to the process group does not kill a commit."""
        await commit(child_store, line_factory, rows_factory, [1])
        pid = child_pid(child_store)
        assert pid is not None
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
            os.kill(pid, signum)
        await asyncio.sleep(0.2)
        state = await commit(child_store, line_factory, rows_factory, [2], fingerprint="2")
        assert state.calc_seq == 2
        assert child_pid(child_store) == pid

    async def test_close_stops_the_child(self, tmp_path: Path, line_factory, rows_factory) -> None:
        """close() ends the child once its commit is done; a reopened backend starts anew."""
        store = SQLiteBackend(tmp_path / "db.sqlite", writer_process_min_rows=0)
        await store.open()
        await commit(store, line_factory, rows_factory, [1])
        pid = child_pid(store)
        assert pid is not None
        await store.close()
        assert wait_gone(pid)
        await store.open()
        assert (await commit(store, line_factory, rows_factory, [1], fingerprint="2")).calc_seq == 2
        await store.close()

    def test_child_exits_when_its_parent_is_killed(self, tmp_path: Path) -> None:
        """SIGKILL of the daemon kills the child too (PR_SET_PDEATHSIG): no orphan writer."""
        script = textwrap.dedent(
            f"""
            import asyncio, datetime as dt, sys, time
            from chargeback.core.storage.sqlite import SQLiteBackend

            async def main():
                store = SQLiteBackend({str(tmp_path / "db.sqlite")!r}, writer_process_min_rows=0)
                await store.open()
                await store.commit_date(
                    "t1", dt.date(2024, 5, 1), lines=[], rows=[], plugin_rows=[],
                    billing_fingerprint="b", settings_fingerprint="s",
                    inventory_fingerprint="i", calculated_at=dt.datetime(2024, 5, 4),
                )
                print("PID", store._child.pid, flush=True)
                time.sleep(60)

            asyncio.run(main())
            """
        )
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            while line and not line.startswith("PID "):  # log lines come first
                line = proc.stdout.readline()
            pid = int(line.split()[1])
            assert process_state(pid) not in (None, "Z")
        finally:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        assert wait_gone(pid), f"the writer child {pid} outlived its parent"


def stored_plugin_rows(
    path: Path, min_rows: int | None, block: PluginRows, select: str
) -> list[tuple[Any, ...]]:
    """Commit one date with ``block`` through a backend (child or not); run ``select``."""

    async def commit() -> None:
        async with SQLiteBackend(path, writer_process_min_rows=min_rows) as store:
            await store.register_modules([ExtraModule()])
            await store.commit_date(
                "t1", DAY, lines=[], rows=[], plugin_rows=[block], billing_fingerprint="b",
                settings_fingerprint="s", inventory_fingerprint="i", calculated_at=NOW,
            )  # fmt: skip

    asyncio.run(commit())
    conn = sqlite3.connect(path)
    try:
        return conn.execute(select).fetchall()
    finally:
        conn.close()


def test_plugin_rows_cross_the_process_boundary(tmp_path: Path) -> None:
    """Plugin rows with a date cell arrive in the child encoded like in-process."""
    block = PluginRows("extra_billing", ("date", "line_id", "cost"), [(DAY, "a", 3)])
    select = "SELECT * FROM extra_billing"
    child = stored_plugin_rows(tmp_path / "child.sqlite", 0, block, select)
    in_process = stored_plugin_rows(tmp_path / "in.sqlite", None, block, select)
    assert child == in_process == [("t1", "2024-05-01", "a", 3)]


class _Code(enum.StrEnum):
    """A plugin's enum: text SQLite binds, a type marshal refuses."""

    A = "line-a"


def test_cells_marshal_refuses_are_pickled_to_the_child(tmp_path: Path) -> None:
    """Commits travel marshalled; a cell marshal cannot encode sends that commit pickled,
    and it is stored exactly as in-process."""
    frame = CommitWriter.encode(
        _commit.prepare_commit(
            "t1", DAY, lines=[], rows=[], plugin_rows=[], billing_fingerprint="b",
            settings_fingerprint="s", inventory_fingerprint="i", calculated_at=NOW,
        )
    )  # fmt: skip
    assert frame[:1] == MARSHALLED
    batches, state = decode(frame)
    assert (state.tenant_id, state.date) == ("t1", "2024-05-01")
    assert [b.table for b in batches] == ["billing_lines", "chargeback_rows"]

    block = PluginRows("extra_billing", ("line_id", "cost"), [(_Code.A, 3), ("b", 1.0)])
    select = "SELECT line_id, cost FROM extra_billing ORDER BY 1"
    child = stored_plugin_rows(tmp_path / "child.sqlite", 0, block, select)
    in_process = stored_plugin_rows(tmp_path / "in.sqlite", None, block, select)
    assert child == in_process == [("b", 1), ("line-a", 3)]
