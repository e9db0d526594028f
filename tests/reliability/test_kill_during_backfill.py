"""SIGKILL at random moments of a Confluent Cloud backfill; a restart ends equal to a clean run."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.reliability.conftest import check_db, csv_files, dump_db

from chargeback.core.emitters.csv import make_csv_emitter

WORKER = Path(__file__).with_name("backfill_worker.py")
SCALE, LOOKBACK = "small", 33
TRIALS = int(os.environ.get("REL_KILL_TRIALS", "6"))


IN_PROCESS, CHILD = "none", "0"
"""The worker's write paths: every commit in its own process, or in the writer child."""


def spawn(db: Path, csv_dir: Path, writer: str = IN_PROCESS) -> subprocess.Popen[str]:
    """Start the worker (not waiting for anything)."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(csv_dir), SCALE, str(LOOKBACK), writer],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_to_end(db: Path, csv_dir: Path, writer: str = IN_PROCESS) -> list[float]:
    """Run the worker to completion; return when each output line came, in s after spawn."""
    started = time.monotonic()
    proc = spawn(db, csv_dir, writer)
    assert proc.stdout is not None
    stamps: list[float] = []
    lines: list[str] = []
    for line in proc.stdout:
        stamps.append(time.monotonic() - started)
        lines.append(line.strip())
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-2000:]
    assert lines[0] == "ready", lines[:3]
    assert lines[-1] == "done", lines[-3:]
    return stamps


def kill_after(
    db: Path, csv_dir: Path, delay: float, nth_commit: int = 0, writer: str = IN_PROCESS
) -> list[str]:
    """Start the worker, SIGKILL it; return its stdout lines.

    The kill comes ``delay`` s after spawn, or, with ``nth_commit``, ``delay`` s after
    the worker announced the start of its ``nth_commit``-th date commit. A writer
    child dies with the worker (its commit in flight rolls back).
    """
    proc = spawn(db, csv_dir, writer)
    lines: list[str] = []
    if nth_commit:
        assert proc.stdout is not None
        while sum(1 for line in lines if line.startswith("commit ")) < nth_commit:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode in (-signal.SIGKILL, 0), proc.returncode
    return lines + out.splitlines()


def check_against_clean(
    db: Path, csv_dir: Path, clean: dict[str, list[tuple[Any, ...]]], clean_csv: Path
) -> int:
    """Assert whatever the killed worker left is whole and equal to the clean run.

    Returns the number of committed dates.
    """
    if not db.exists():
        return 0  # killed before the file was created
    check_db(db)  # intact file, no duplicates, money conserved per line and date
    now = dump_db(db)
    clean_dates = {row[1]: row for row in clean["date_state"]}
    for row in now["date_state"]:
        assert row == clean_dates[row[1]], row
    stored = {row[1] for row in now["date_state"]}
    for table in ("billing_lines", "chargeback_rows", "ccloud_billing"):
        assert now[table] == [r for r in clean[table] if r[1] in stored], table
    for name, body in csv_files(csv_dir).items():
        if Path(name).name.startswith("."):  # a killed write's temp file: hidden, never a .csv
            assert name.endswith(".tmp"), name
            age_temp_file(csv_dir / name)
            continue
        assert body == (clean_csv / name).read_bytes(), name
    return len(stored)


def age_temp_file(path: Path) -> None:
    """Make a killed writer's temp file look idle for two minutes (the next write sweeps it)."""
    old = time.time() - 120
    os.utime(path, (old, old))


class TestKillDuringBackfill:
    @pytest.mark.parametrize("writer", [IN_PROCESS, CHILD], ids=["in-process", "writer-child"])
    def test_one_sigkill_mid_commits_then_restart(self, tmp_path: Path, writer: str) -> None:
        """The fast variant: one kill inside the commit loop, then a restart equals a clean run."""
        clean_db, clean_csv = tmp_path / "clean.sqlite", tmp_path / "clean-csv"
        run_to_end(clean_db, clean_csv)
        clean = dump_db(clean_db)
        db, csv_dir = tmp_path / "k.sqlite", tmp_path / "k-csv"
        lines = kill_after(
            db, csv_dir, 0.002, nth_commit=len(clean["date_state"]) // 2, writer=writer
        )
        stored = check_against_clean(db, csv_dir, clean, clean_csv)
        assert 0 < stored < len(clean["date_state"]), lines[-3:]
        run_to_end(db, csv_dir, writer)
        check_db(db)
        assert dump_db(db) == clean
        assert csv_files(csv_dir) == csv_files(clean_csv)

    @pytest.mark.slow
    def test_random_sigkills_then_restart_equal_a_clean_run(self, tmp_path: Path) -> None:
        """Kills at random moments leave whole dates only; a final run equals a clean one."""
        clean_db, clean_csv = tmp_path / "clean.sqlite", tmp_path / "clean-csv"
        stamps = run_to_end(clean_db, clean_csv)
        check_db(clean_db)
        clean = dump_db(clean_db)
        assert len(clean["date_state"]) == LOOKBACK - 2
        assert clean["ccloud_billing"], "the plugin table is part of the comparison"

        rng = random.Random()  # noqa: S311  (random kill moments, not cryptography)
        seed_note = f"REL_KILL_TRIALS={TRIALS}"
        history: list[tuple[int, float, int, int]] = []
        total = len(clean["date_state"])
        sequence, stored = 0, 0
        db, csv_dir = tmp_path / "k0.sqlite", tmp_path / "k0-csv"
        for trial in range(TRIALS):
            writer = CHILD if trial % 4 >= 2 else IN_PROCESS  # both write paths, mixed
            if trial % 2 == 0 or total - stored < 3:
                # any moment: start-up and migrations, the crawl, billing, metrics, commits
                per_commit = (stamps[-1] - stamps[1]) / total
                delay = rng.uniform(0.0, stamps[1] + per_commit * (total - stored))
                lines = kill_after(db, csv_dir, delay, writer=writer)
            else:  # inside the commit loop, at or just after the start of a commit
                delay = rng.choice([0.0, 0.0005, 0.002, 0.01, 0.03])
                nth = rng.randint(1, total - stored - 2)
                lines = kill_after(db, csv_dir, delay, nth_commit=nth, writer=writer)
            began = sum(1 for line in lines if line.startswith("commit "))
            stored = check_against_clean(db, csv_dir, clean, clean_csv)
            history.append((sequence, round(delay, 3), began, stored))
            if stored == total:  # this database is done: finish it, start another one
                # Every date is stored, but a kill after the last commit can leave an
                # emission pending (a date whose CSV was not yet written); the next run
                # emits it. That run must make the database equal a clean run's.
                run_to_end(db, csv_dir)
                check_db(db)
                assert dump_db(db) == clean, (seed_note, history)
                assert csv_files(csv_dir) == csv_files(clean_csv), history
                sequence += 1
                stored = 0
                db, csv_dir = tmp_path / f"k{sequence}.sqlite", tmp_path / f"k{sequence}-csv"
        run_to_end(db, csv_dir)
        check_db(db)
        assert dump_db(db) == clean, (seed_note, history)
        assert csv_files(csv_dir) == csv_files(clean_csv), history
        assert any(0 < s < total for *_, s in history), f"no kill landed mid-commits: {history}"


class TestKilledCsvWriteLeftovers:
    async def test_stale_temp_file_removed_by_the_next_write_live_one_kept(
        self, tmp_path: Path
    ) -> None:
        """A killed writer's idle temp file goes with the next write; a fresh one stays."""
        emitter = make_csv_emitter(str(tmp_path))
        day = dt.date(2026, 3, 1)
        path = emitter.path_for("rel", day)
        path.parent.mkdir(parents=True)
        stale = path.with_name(f".{path.name}.dead1234.tmp")
        live = path.with_name(f".{path.name}.live5678.tmp")
        other = path.with_name(".2026-03-02.csv.dead9999.tmp")
        for tmp in (stale, live, other):
            tmp.write_text("tenant_id,da")
        for tmp in (stale, other):
            age_temp_file(tmp)
        await emitter("rel", day, [])
        assert path.read_text().startswith("tenant_id,date,")
        assert not stale.exists()
        assert live.exists()  # another writer may still be busy with it
        assert other.exists()  # another date's leftover waits for that date's next write
