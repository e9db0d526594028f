"""PostgreSQL's run records: a run's start, outcome and listing, and the stale runs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import psycopg

from chargeback.core.storage.backend import RunRecord
from chargeback.core.storage.owner import current_owner, owner_alive_here
from chargeback.core.storage.postgres import _queries
from chargeback.errors import StorageError

__all__ = ["PostgresRuns"]

Conn = psycopg.AsyncConnection[tuple[Any, ...]]


class _Backend(Protocol):
    def _read(self, action: str) -> AbstractAsyncContextManager[Conn]: ...

    def _write(self, action: str) -> AbstractAsyncContextManager[Conn]: ...


class PostgresRuns:
    """The run methods of the PostgreSQL backend."""

    async def start_run(
        self: _Backend, tenant_id: str, run_id: str, trigger: str, started_at: dt.datetime
    ) -> None:
        """Record a run as started (status ``running``, owned by this process)."""
        async with self._write(f"recording the start of run {run_id!r}") as conn:
            await conn.execute(
                "INSERT INTO runs (run_id, tenant_id, trigger, status, started_at, owner) "
                "VALUES (%s, %s, %s, 'running', %s, %s)",
                (run_id, tenant_id, trigger, started_at, current_owner()),
            )

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
        action = f"recording the outcome of run {run_id!r}"
        async with self._write(action) as conn:
            cur = await conn.execute(
                "UPDATE runs SET status = %s, finished_at = %s, counts = %s, error = %s "
                "WHERE run_id = %s",
                (str(status), finished_at, json.dumps(dict(counts), sort_keys=True), error,
                 run_id),
            )  # fmt: skip
            if cur.rowcount != 1:
                raise StorageError(f"{action} failed: no run {run_id!r} was started")

    async def interrupt_stale_runs(self: _Backend, finished_at: dt.datetime) -> int:
        """Mark runs left ``running`` as ``interrupted``; return how many.

        With replicas, a run is stale only if no live lease covers its tenant (another
        replica may be running it right now): runs of tenants without a lease row, or
        whose lease expired, are interrupted, unless their owner is a live process of
        this host (a ``chargeback once`` beside the daemon holds no lease).
        """
        async with self._write("marking interrupted runs") as conn:
            cur = await conn.execute(
                "SELECT run_id, owner FROM runs WHERE status = 'running' AND NOT EXISTS "
                "(SELECT 1 FROM tenant_leases AS l "
                "WHERE l.tenant_id = runs.tenant_id AND l.expires_at > now())"
            )
            stale = [str(r[0]) for r in await cur.fetchall() if not owner_alive_here(r[1])]
            if stale:
                await conn.execute(
                    "UPDATE runs SET status = 'interrupted', finished_at = %s, "
                    "error = 'the process stopped before the run finished' "
                    "WHERE status = 'running' AND run_id = ANY(%s)",
                    (finished_at, stale),
                )
            return len(stale)

    async def list_runs(self: _Backend, tenant_id: str, limit: int = 20) -> list[RunRecord]:
        """Return the newest runs of a tenant, newest first."""
        async with self._read("listing runs") as conn:
            return await _queries.list_runs(conn, tenant_id, limit)
