"""Runs and rerun requests: one set of methods for both core backends.

:class:`RunStore` is a mixin of :class:`~chargeback.core.storage.sqlite.SQLiteBackend`
and of the PostgreSQL backend. Each backend names its
:class:`~chargeback.core.storage._dialect.Dialect` (``_dialect``) and opens the
transactions (``_write``: its write lock and error translation). Only the search for
stale runs differs (PostgreSQL's replicas hold leases), so PostgreSQL overrides it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Protocol

from chargeback.core.storage._dialect import Dialect
from chargeback.core.storage.owner import current_owner, owner_is_gone
from chargeback.errors import StorageError

__all__ = ["INTERRUPT", "RunStore"]

_START = (
    "INSERT INTO runs (run_id, tenant_id, trigger, status, started_at, owner) "
    "VALUES (?, ?, ?, 'running', ?, ?)"
)
_FINISH = "UPDATE runs SET status = ?, finished_at = ?, counts = ?, error = ? WHERE run_id = ?"
INTERRUPT = (
    "UPDATE runs SET status = 'interrupted', finished_at = ?, "
    "error = 'the process stopped before the run finished' "
    "WHERE run_id = ? AND status = 'running'"
)
"""Mark one run, if still running, interrupted (a stale run's owner is gone)."""
_RUNNING = "SELECT run_id, owner FROM runs WHERE status = 'running'"
_REQUEST = (
    "INSERT INTO rerun_requests (tenant_id, start_date, end_date, requested_at) "
    "VALUES (?, ?, ?, ?) RETURNING request_id"
)
_COMPLETE = (
    "UPDATE rerun_requests SET completed_at = ? WHERE request_id = ? AND completed_at IS NULL"
)


class _Backend(Protocol):
    _dialect: ClassVar[Dialect]

    def _write(self, action: str) -> AbstractAsyncContextManager[Any]: ...


class RunStore:
    """The run and rerun-request methods of a core backend."""

    async def start_run(
        self: _Backend, tenant_id: str, run_id: str, trigger: str, started_at: dt.datetime
    ) -> None:
        """Record a run as started (status ``running``, owned by this process)."""
        d = self._dialect
        params = (run_id, tenant_id, trigger, d.time(started_at), current_owner())
        async with self._write(f"recording the start of run {run_id!r}") as conn:
            await d.execute(conn, d.sql(_START), params)

    async def finish_run(
        self: _Backend,
        run_id: str,
        *,
        status: str,
        finished_at: dt.datetime,
        counts: Mapping[str, int],
        error: str | None = None,
    ) -> None:
        """Record a run's outcome.

        Raises:
            StorageError: no run with this id was started.
        """
        d = self._dialect
        text = json.dumps(dict(counts), sort_keys=True)
        params = (str(status), d.time(finished_at), text, error, run_id)
        action = f"recording the outcome of run {run_id!r}"
        async with self._write(action) as conn:
            if await d.execute(conn, d.sql(_FINISH), params) != 1:
                raise StorageError(f"{action} failed: no run {run_id!r} was started")

    async def interrupt_stale_runs(self: _Backend, finished_at: dt.datetime) -> int:
        """Mark every run still ``running`` whose owner process is gone ``interrupted``.

        Returns how many (see :mod:`~chargeback.core.storage.owner`).
        """
        d = self._dialect
        async with self._write("marking interrupted runs") as conn:
            running = await d.fetch(conn, d.sql(_RUNNING), ())
            orphans = [str(run_id) for run_id, owner in running if owner_is_gone(owner)]
            rows = [(d.time(finished_at), run_id) for run_id in orphans]
            await d.executemany(conn, d.sql(INTERRUPT), rows)
        return len(orphans)

    async def request_rerun(
        self: _Backend, tenant_id: str, start: dt.date, end: dt.date, requested_at: dt.datetime
    ) -> int:
        """Record an operator's rerun request (inclusive range); return its id.

        Raises:
            ValueError: ``start`` is after ``end``.
        """
        if start > end:
            raise ValueError(f"a rerun range must have start <= end, got {start} > {end}")
        d = self._dialect
        params = (tenant_id, d.date(start), d.date(end), d.time(requested_at))
        async with self._write(f"recording a rerun request for tenant {tenant_id!r}") as conn:
            rows = await d.fetch(conn, d.sql(_REQUEST), params)
        if not rows:  # pragma: no cover - RETURNING always gives the row
            raise StorageError("recording a rerun request failed: no id was assigned")
        return int(rows[0][0])

    async def complete_reruns(
        self: _Backend, request_ids: Sequence[int], completed_at: dt.datetime
    ) -> None:
        """Mark rerun requests as done (unknown or already completed ids are ignored)."""
        if not request_ids:
            return
        d = self._dialect
        rows = [(d.time(completed_at), int(i)) for i in request_ids]
        async with self._write("completing rerun requests") as conn:
            await d.executemany(conn, d.sql(_COMPLETE), rows)
