"""The SQLite backend's small writes of runs and rerun requests, inside the caller's
transaction (the backend opens it and translates errors)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence

import aiosqlite

from chargeback.core.storage._util import datetime_to_text
from chargeback.core.storage.owner import current_owner, owner_is_gone

__all__ = ["complete_reruns", "finish_run", "interrupt_stale_runs", "request_rerun", "start_run"]


async def start_run(
    conn: aiosqlite.Connection, tenant_id: str, run_id: str, trigger: str, started_at: dt.datetime
) -> None:
    """Insert the run as ``running``, owned by this process (:mod:`.owner`)."""
    await conn.execute(
        "INSERT INTO runs (run_id, tenant_id, trigger, status, started_at, owner) "
        "VALUES (?, ?, ?, 'running', ?, ?)",
        (run_id, tenant_id, trigger, datetime_to_text(started_at), current_owner()),
    )


async def finish_run(
    conn: aiosqlite.Connection,
    run_id: str,
    *,
    status: str,
    finished_at: dt.datetime,
    counts: Mapping[str, int],
    error: str | None,
) -> bool:
    """Record the run's outcome; ``False`` if no run with this id was started."""
    cursor = await conn.execute(
        "UPDATE runs SET status = ?, finished_at = ?, counts = ?, error = ? WHERE run_id = ?",
        (
            str(status),
            datetime_to_text(finished_at),
            json.dumps(dict(counts), sort_keys=True),
            error,
            run_id,
        ),
    )
    return cursor.rowcount == 1


async def interrupt_stale_runs(conn: aiosqlite.Connection, finished_at: dt.datetime) -> int:
    """Mark every run still ``running`` whose owner is gone ``interrupted``; return how many."""
    running = await conn.execute_fetchall("SELECT run_id, owner FROM runs WHERE status = 'running'")
    orphans = [str(r[0]) for r in running if owner_is_gone(r[1])]
    await conn.executemany(
        "UPDATE runs SET status = 'interrupted', finished_at = ?, "
        "error = 'the process stopped before the run finished' "
        "WHERE run_id = ? AND status = 'running'",
        [(datetime_to_text(finished_at), run_id) for run_id in orphans],
    )
    return len(orphans)


async def request_rerun(
    conn: aiosqlite.Connection,
    tenant_id: str,
    start: dt.date,
    end: dt.date,
    requested_at: dt.datetime,
) -> int | None:
    """Insert a rerun request; return its id."""
    cursor = await conn.execute(
        "INSERT INTO rerun_requests (tenant_id, start_date, end_date, requested_at) "
        "VALUES (?, ?, ?, ?)",
        (tenant_id, start.isoformat(), end.isoformat(), datetime_to_text(requested_at)),
    )
    return cursor.lastrowid


async def complete_reruns(
    conn: aiosqlite.Connection, request_ids: Sequence[int], completed_at: dt.datetime
) -> None:
    """Mark rerun requests done (unknown or already completed ids are ignored)."""
    done = datetime_to_text(completed_at)
    await conn.executemany(
        "UPDATE rerun_requests SET completed_at = ? WHERE request_id = ? AND completed_at IS NULL",
        [(done, int(i)) for i in request_ids],
    )
