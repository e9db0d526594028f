"""Crash safety: a run SIGKILLed at random moments never leaves a half-written date."""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chargeback.core.models import ChargebackRow
from chargeback.core.storage.sqlite import SQLiteBackend

WORKER = Path(__file__).with_name("crash_worker.py")
FIRST, LAST = dt.date(2026, 3, 10) - dt.timedelta(days=60), dt.date(2026, 3, 8)
END = LAST + dt.timedelta(days=1)
DAYS = [FIRST + dt.timedelta(days=i) for i in range((END - FIRST).days)]


def start_worker(db: Path, plugins_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(plugins_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"worker did not start: {line!r} {err}")
    return proc


def run_to_end(db: Path, plugins_dir: Path) -> None:
    """Run the worker to completion."""
    proc = start_worker(db, plugins_dir)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert out.strip().splitlines()[-1] == "done", (out[-500:], err)


def kill_during_commit(db: Path, plugins_dir: Path, nth: int, pause: float) -> None:
    """Start the worker, wait for its ``nth`` date commit to begin, SIGKILL it ``pause`` s later."""
    proc = start_worker(db, plugins_dir)
    assert proc.stdout is not None
    seen = 0
    while seen < nth:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line.startswith("commit ")
    time.sleep(pause)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


async def read_all(db: Path) -> tuple[dict[dt.date, list[ChargebackRow]], dict[dt.date, str]]:
    storage = SQLiteBackend(db)
    await storage.open()
    try:
        rows = {d: await storage.read_rows("crash", d) for d in DAYS}
        states = await storage.get_date_states("crash", FIRST, END)
        recon = await storage.reconcile("crash", FIRST, END)
        assert all(r.difference == 0 for r in recon), [r for r in recon if r.difference]
        committed = {r.day for r in recon}
        assert committed <= set(states), "lines or rows stored for a date without state"
        return rows, {d: s.billing_fingerprint for d, s in states.items()}
    finally:
        await storage.close()


class TestCrashSafety:
    @pytest.mark.slow
    async def test_sigkill_mid_run_then_complete(self, tmp_path: Path, plugins_dir: Path) -> None:
        """SIGKILL at random moments leaves whole dates only; a final run equals a clean run."""
        clean_db = tmp_path / "clean.db"
        run_to_end(clean_db, plugins_dir)
        clean_rows, clean_fps = await read_all(clean_db)
        assert all(clean_rows[d] for d in DAYS)

        rng = random.Random()  # noqa: S311  (random kill moments, not cryptography)
        db = tmp_path / "crashed.db"
        committed_counts = [0]
        for _ in range(4):
            remaining = len(DAYS) - committed_counts[-1]
            if remaining < 4:
                break
            # "commit" of the nth date printed => dates 1..nth-2 of this run are committed
            # (the (nth-1)th may still be writing: a commit queues behind the one in flight)
            nth = rng.randint(3, remaining - 1)
            kill_during_commit(db, plugins_dir, nth, rng.choice([0.0, 0.0005, 0.002, 0.01]))
            rows, fps = await read_all(db)  # checks: every stored date conserves, no orphans
            assert len(fps) > committed_counts[-1]  # the dates before the nth committed
            committed_counts.append(len(fps))
            for d, fp in fps.items():
                assert fp == clean_fps[d]
                assert rows[d] == clean_rows[d], f"date {d} differs after a kill"
        run_to_end(db, plugins_dir)
        rows, fps = await read_all(db)
        assert fps == clean_fps
        assert rows == clean_rows, f"kills left committed counts {committed_counts}"
        assert committed_counts[1] < len(DAYS), "the first kill should land mid-run"
