"""Crash safety: a process SIGKILLed mid-commit leaves the old or the new date, never a mix."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chargeback.core.reconcile import build_report
from chargeback.core.storage.sqlite import SQLiteBackend

HELPER = Path(__file__).with_name("commit_loop.py")
ROWS = 50_000
KILLS = 6
DAY = dt.date(2024, 5, 1)


def inspect(path: Path) -> dict[str, Any]:
    """Read what the killed process left behind, with plain sqlite3."""
    conn = sqlite3.connect(path)
    try:
        return {
            "integrity": conn.execute("PRAGMA integrity_check").fetchone()[0],
            "rows_by_version": dict(
                conn.execute("SELECT rule, COUNT(*) FROM chargeback_rows GROUP BY rule").fetchall()
            ),
            "lines": conn.execute("SELECT COUNT(*), SUM(amount) FROM billing_lines").fetchone(),
            "state": conn.execute(
                "SELECT billing_fingerprint, row_count, line_count, calc_seq, billed_total, "
                "allocated_total FROM date_state"
            ).fetchone(),
            "allocated": conn.execute("SELECT SUM(amount) FROM chargeback_rows").fetchone()[0],
        }
    finally:
        conn.close()


@pytest.mark.slow
class TestKilledDuringCommit:
    def test_sigkill_leaves_a_whole_version(self, tmp_path):
        """After each SIGKILL the file is intact and the date holds exactly version A or B."""
        path = tmp_path / "crash.db"
        rng = random.Random(20240501)  # noqa: S311  (reproducible kill times, not crypto)
        seen_versions: set[str] = set()
        last_seq = 0
        for _ in range(KILLS):
            proc = subprocess.Popen(
                [sys.executable, str(HELPER), str(path), str(ROWS)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            try:
                assert proc.stdout is not None
                # wait until this process committed at least once (skip its log lines)
                line = proc.stdout.readline()
                while line and not line.startswith("committed"):
                    line = proc.stdout.readline()
                assert line.startswith("committed"), "the helper exited before committing"
                time.sleep(rng.uniform(0.0, 1.0))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()
            found = inspect(path)
            assert found["integrity"] == "ok"
            versions = found["rows_by_version"]
            assert len(versions) == 1, versions
            [(version, n_rows)] = versions.items()
            assert n_rows == ROWS
            unit = 1 if version == "A" else 2
            assert found["lines"] == (ROWS // 10, ROWS * unit)
            fingerprint, row_count, line_count, calc_seq, billed, allocated = found["state"]
            assert (fingerprint, row_count, line_count) == (version, ROWS, ROWS // 10)
            assert billed == allocated == found["allocated"] == ROWS * unit
            assert calc_seq > last_seq
            last_seq = calc_seq
            seen_versions.add(version)

        async def next_run() -> bool:
            async with SQLiteBackend(path) as store:
                state = await store.commit_date(
                    "crash", DAY, lines=[], rows=[], plugin_rows=[],
                    billing_fingerprint="after", settings_fingerprint="s",
                    inventory_fingerprint="i", calculated_at=dt.datetime.now(dt.UTC),
                )  # fmt: skip
                assert state.calc_seq == last_seq + 1 or state.calc_seq > last_seq
                report = await build_report(store, "crash", DAY, DAY + dt.timedelta(days=1))
                return report.ok

        assert asyncio.run(next_run())
