"""Run owners: a run left 'running' is closed only when the process that owns it is gone."""

from __future__ import annotations

import datetime as dt
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from chargeback.core.storage.owner import current_owner, owner_is_gone
from chargeback.core.storage.sqlite import SQLiteBackend

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def ended_pid() -> int:
    """The pid of a process that has ended (a child that printed it and exited)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return int(child.stdout)


class TestOwnerIsGone:
    def test_this_process_is_alive(self) -> None:
        """The owner string of this very process is not gone."""
        assert current_owner().startswith(f"{socket.gethostname()}/{os.getpid()}/")
        assert not owner_is_gone(current_owner())

    def test_an_ended_process_is_gone(self) -> None:
        """A process that exited is gone; so is an owner recorded before owners existed."""
        assert owner_is_gone(f"{socket.gethostname()}/{ended_pid()}/12345")
        assert owner_is_gone(None)
        assert owner_is_gone("")

    def test_a_reused_pid_is_gone(self) -> None:
        """This pid with another start time (a restarted container's pid 1) is gone."""
        host, pid, start = current_owner().split("/")
        assert start != "-"  # /proc is there on the machines the suite runs on
        assert owner_is_gone(f"{host}/{pid}/{int(start) + 1}")

    def test_another_hosts_process_is_never_judged(self) -> None:
        """A run of another host is left alone: its process cannot be seen from here."""
        assert not owner_is_gone(f"not-{socket.gethostname()}/{ended_pid()}/1")


async def test_only_runs_of_ended_processes_are_interrupted(tmp_path: Path) -> None:
    """interrupt_stale_runs closes the dead owner's and the ownerless run, not a live one."""
    path = tmp_path / "cb.db"
    async with SQLiteBackend(path) as store:
        for run_id in ("live", "dead", "old"):
            await store.start_run("t1", run_id, "cli", T0)
    with sqlite3.connect(path) as conn:
        dead = f"{socket.gethostname()}/{ended_pid()}/1"
        conn.execute("UPDATE runs SET owner = ? WHERE run_id = 'dead'", (dead,))
        conn.execute("UPDATE runs SET owner = NULL WHERE run_id = 'old'")
    async with SQLiteBackend(path) as store:
        assert await store.interrupt_stale_runs(T0 + dt.timedelta(hours=1)) == 2
        status = {r.run_id: r.status for r in await store.list_runs("t1")}
    assert status == {"live": "running", "dead": "interrupted", "old": "interrupted"}
