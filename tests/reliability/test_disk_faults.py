"""Read-only, immutable, full and locked databases: a clean failure, no damage, then recovery."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs
from tests.reliability.conftest import TENANT, HarnessFactory, SimHarness, check_db, dump_db

from chargeback.core.engine.types import RunStatus
from chargeback.errors import StorageError


async def committed_then_rerun(h: SimHarness) -> dict[str, list[tuple[object, ...]]]:
    """A clean run, a rerun request for one date (so the next run writes); the clean dump."""
    summary = await (await h.runtime()).run()
    assert summary.status is RunStatus.SUCCESS, summary.error
    storage = await h.open_storage()
    day = h.days()[1]
    await storage.request_rerun(TENANT, day, day, h.now())
    await h.aclose()  # no connection left open (its -wal/-shm files would stay usable)
    return dump_db(h.db_path)


def _run(*cmd: str) -> bool:
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """``chattr +i`` on ``paths`` (root cannot write them either); skip where unsupported."""
    done: list[Path] = []
    try:
        for path in paths:
            if shutil.which("chattr") is None or not _run("chattr", "+i", str(path)):
                pytest.skip("chattr +i is not available on this filesystem")
            done.append(path)
        yield
    finally:
        for path in done:
            _run("chattr", "-i", str(path))


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where``; skip if mounting is not permitted."""
    where.mkdir()
    if shutil.which("mount") is None or not _run(
        "mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)
    ):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        yield where
    finally:
        _run("umount", "-l", str(where))


class LockingTransport(httpx.AsyncBaseTransport):
    """Into the sim; at the first Metrics API request another connection locks the database."""

    def __init__(self, h: SimHarness) -> None:
        self.inner = httpx.ASGITransport(app=h.app)
        self.db_path = h.db_path
        self.locker: sqlite3.Connection | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/metrics/cloud/query" and self.locker is None:
            self.locker = sqlite3.connect(self.db_path, isolation_level=None)
            self.locker.execute("BEGIN EXCLUSIVE")
        return await self.inner.handle_async_request(request)

    def release(self) -> None:
        if self.locker is not None:
            self.locker.execute("ROLLBACK")
            self.locker.close()


class TestReadOnly:
    async def test_read_only_backend_fails_the_run_clearly(
        self, make_harness: HarnessFactory
    ) -> None:
        """A read-only database fails the run with a 'read-only' StorageError; nothing changes."""
        h = make_harness()
        before = await committed_then_rerun(h)
        storage = await h.open_storage(read_only=True)
        summary = await (await h.runtime(storage)).run()
        assert summary.status is RunStatus.FAILED
        assert summary.error is not None
        assert summary.error.startswith("StorageError:"), summary.error
        assert "read-only" in summary.error
        check_db(h.db_path)
        assert dump_db(h.db_path) == before
        later = await (await h.runtime()).run()
        assert later.status is RunStatus.SUCCESS, later.error
        assert later.dates_calculated == 1

    async def test_immutable_file_fails_cleanly(
        self, make_harness: HarnessFactory, tmp_path: Path
    ) -> None:
        """An immutable (chattr +i) file and directory fail with a StorageError; no damage.

        (The file alone is not enough: in WAL mode the writes land in the -wal file.)
        """
        folder = tmp_path / "immutable"
        folder.mkdir()
        h = make_harness(db_dir=folder)
        before = await committed_then_rerun(h)
        with immutable(h.db_path, folder):
            error: str | None = None
            try:
                storage = await h.open_storage()
            except StorageError as exc:
                error = f"StorageError: {exc}"
            else:
                summary = await (await h.runtime(storage)).run()
                assert summary.status is RunStatus.FAILED
                error = summary.error
            await h.aclose()
        assert error is not None
        assert error.startswith("StorageError:"), error
        assert "read-only" in error or "cannot open" in error, error
        check_db(h.db_path)
        assert dump_db(h.db_path) == before
        later = await (await h.runtime()).run()
        assert later.status is RunStatus.SUCCESS, later.error


class TestDiskFull:
    async def test_full_disk_fails_cleanly_then_completes(
        self, make_harness: HarnessFactory, tmp_path: Path
    ) -> None:
        """A 512 KiB filesystem fills mid-backfill: 'full' error, whole dates, later equal.

        (The empty schema with its WAL takes ~220 KiB, so the open itself succeeds.)
        """
        clean = make_harness(name="clean", lookback_days=40)
        assert (await (await clean.runtime()).run()).status is RunStatus.SUCCESS
        with small_tmpfs(tmp_path / "small", "512k") as mount:
            h = make_harness(name="full", lookback_days=40, db_dir=mount)
            summary = await (await h.runtime()).run()
            assert summary.status is RunStatus.FAILED, "512 KiB should not hold 38 days"
            assert summary.error is not None
            assert summary.error.startswith("StorageError:"), summary.error
            assert "full" in summary.error, summary.error
            await h.aclose()
            check_db(h.db_path)  # integrity ok; the dates that made it are whole
            stored = {r[1] for r in dump_db(h.db_path)["date_state"]}
            clean_dump = dump_db(clean.db_path)
            partial = dump_db(h.db_path)
            for table in ("billing_lines", "chargeback_rows", "ccloud_billing"):
                assert partial[table] == [r for r in clean_dump[table] if r[1] in stored]
            assert _run("mount", "-o", "remount,size=16m", str(mount))
            later = await (await h.runtime()).run()
            assert later.status is RunStatus.SUCCESS, later.error
            check_db(h.db_path)
            assert dump_db(h.db_path) == clean_dump
            await h.aclose()


class TestLocked:
    async def test_lock_taken_mid_run_fails_cleanly_then_completes(
        self, make_harness: HarnessFactory
    ) -> None:
        """Another writer locks the file during a run: 'locked' StorageError, then recovery."""
        clean = make_harness(name="clean")
        assert (await (await clean.runtime()).run()).status is RunStatus.SUCCESS
        h = make_harness(name="locked")
        transport = LockingTransport(h)
        storage = await h.open_storage(busy_timeout_s=0.05)
        runtime = await h.runtime(storage, transport=transport)  # the daemon keeps its runtime
        try:
            with capture_logs() as logs:
                summary = await runtime.run()
        finally:
            transport.release()
        assert transport.locker is not None, "the run never asked for metrics"
        assert summary.status is RunStatus.FAILED
        assert summary.error is not None
        assert summary.error.startswith("StorageError:"), summary.error
        assert "locked by another connection" in summary.error
        assert any(e["event"] == "run failed" for e in logs)
        check_db(h.db_path)
        assert dump_db(h.db_path)["date_state"] == []
        assert any(e["event"] == "run not recorded" for e in logs)
        later = await runtime.run()
        assert later.status is RunStatus.SUCCESS, later.error
        assert dump_db(h.db_path) == dump_db(clean.db_path)
        conn = sqlite3.connect(h.db_path)
        try:
            runs = dict(conn.execute("SELECT run_id, status FROM runs").fetchall())
        finally:
            conn.close()
        # the failed run's outcome, unwritable under the lock, is recorded by the next run
        assert runs == {summary.run_id: "failed", later.run_id: "success"}
