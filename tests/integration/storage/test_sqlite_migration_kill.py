"""A process SIGKILLed while it migrates a database to core version 2 loses nothing.

Migration 2 rebuilds ``chargeback_rows`` (the largest table) in one transaction. A
kill at any moment must leave the file at version 1 exactly as it was (rows, order,
index) or at version 2 complete; the next start migrates it.
"""

from __future__ import annotations

import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.unit.core.storage.test_sqlite_row_ranges import check_ranges, version_1

from chargeback.core.storage.migrations import CORE_MIGRATIONS

ROWS_PER_DATE = 20_000
DATES = 8
KILLS = 4
_OPEN = (
    "import asyncio, sys\n"
    "from chargeback.core.storage.sqlite import SQLiteBackend\n"
    "async def main():\n"
    "    store = SQLiteBackend(sys.argv[1], writer_process_min_rows=None)\n"
    "    print('opening', flush=True)\n"
    "    await store.open()\n"
    "    await store.close()\n"
    "asyncio.run(main())\n"
)


def build_v1(path: Path) -> None:
    """A version-1 database: DATES dates of ROWS_PER_DATE rows, written interleaved by
    two tenants, each date's state recorded."""
    conn = version_1(path)
    for d in range(DATES):
        day = f"2024-05-{d + 1:02d}"
        for tenant in ("t1", "t2"):
            conn.executemany(
                "INSERT INTO chargeback_rows (tenant_id, date, line_id, identity_id, "
                "product_type, product_category, resource_id, env_id, cost_type, rule, amount, "
                "reason) VALUES (?, ?, ?, ?, 'KAFKA_NETWORK_READ', 'KAFKA', 'lkc-1', 'env-1', "
                "'usage', 'r', ?, NULL)",
                (
                    (tenant, day, f"line-{i // 20}", f"sa-{i % 20}", i)
                    for i in range(ROWS_PER_DATE // 2)
                ),
            )
            conn.execute(
                "INSERT INTO date_state VALUES (?, ?, 'b', 's', 'i', 1, "
                "'2024-05-20T00:00:00.000000+00:00', 0, ?, 0, ?, 0)",
                (tenant, day, ROWS_PER_DATE // 2, sum(range(ROWS_PER_DATE // 2))),
            )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def state(path: Path) -> tuple[int, str, list[tuple[object, ...]], list[str]]:
    """(core version, integrity, every row in each date's order, chargeback_rows' indexes)."""
    conn = sqlite3.connect(path)
    try:
        version = conn.execute(
            "SELECT MAX(version) FROM schema_migrations WHERE namespace = 'core'"
        ).fetchone()[0]
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        order = "rowid" if version == 1 else "row_id"
        rows = conn.execute(
            "SELECT tenant_id, date, line_id, identity_id, amount FROM chargeback_rows "
            f"ORDER BY tenant_id, date, {order}"
        ).fetchall()
        indexes = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'chargeback_rows' AND sql IS NOT NULL"
            )
        ]
        if version >= 2:
            check_ranges(path)
        return version, integrity, rows, indexes
    finally:
        conn.close()


def _open_until_exit(path: Path) -> float:
    """Open (and so migrate) ``path`` in a child; seconds from its start of open to exit."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _OPEN, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("opening")
    start = time.perf_counter()
    proc.stdout.read()
    assert proc.wait() == 0
    proc.stdout.close()
    return time.perf_counter() - start


@pytest.mark.slow
class TestKilledDuringMigration:
    def test_sigkill_leaves_version_1_whole_or_version_2_complete(self, tmp_path):
        """Killed at random moments of the upgrade: the file is intact, at the old
        version with every row and the index, or at the new one with every row in its
        date's range; a last start completes the upgrade with the same rows."""
        original = tmp_path / "v1.db"
        build_v1(original)
        _, _, before, _ = state(original)
        assert len(before) == DATES * ROWS_PER_DATE
        # How long the whole upgrade takes here, so the kills land inside it.
        probe = tmp_path / "probe.db"
        shutil.copy(original, probe)
        took = _open_until_exit(probe)
        assert state(probe)[0] == len(CORE_MIGRATIONS)
        path = tmp_path / "db.sqlite"
        shutil.copy(original, path)
        rng = random.Random(20261127)  # noqa: S311  (reproducible kill times, not crypto)
        outcomes: list[int] = []
        for _ in range(KILLS):
            proc = subprocess.Popen(
                [sys.executable, "-c", _OPEN, str(path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            try:
                assert proc.stdout is not None
                assert proc.stdout.readline().startswith("opening")
                time.sleep(rng.uniform(0.2, 0.8) * took)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()
            version, integrity, rows, indexes = state(path)
            assert integrity == "ok"
            assert rows == before
            assert indexes == (["chargeback_rows_by_date"] if version == 1 else [])
            outcomes.append(version)
            if version == 2:  # it finished before the kill: start over from version 1
                shutil.copy(original, path)
                for suffix in ("-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        assert 1 in outcomes, f"no kill landed inside the migration: {outcomes}"
        done = subprocess.run(
            [sys.executable, "-c", _OPEN, str(path)], capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr
        version, integrity, rows, indexes = state(path)
        assert (version, integrity, indexes) == (len(CORE_MIGRATIONS), "ok", [])
        assert rows == before
