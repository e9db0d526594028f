"""PostgreSQL's run records: the shared :class:`~chargeback.core.storage._runs.RunStore`,
with the stale-run search that respects the replicas' leases, and the run listing."""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Protocol

import psycopg

from chargeback.core.storage._dialect import Dialect
from chargeback.core.storage._runs import INTERRUPT, RunStore
from chargeback.core.storage.backend import RunRecord
from chargeback.core.storage.owner import owner_alive_here
from chargeback.core.storage.postgres import _queries

__all__ = ["PostgresRuns"]

Conn = psycopg.AsyncConnection[tuple[Any, ...]]

_STALE = (
    "SELECT run_id, owner FROM runs WHERE status = 'running' AND NOT EXISTS "
    "(SELECT 1 FROM tenant_leases AS l "
    "WHERE l.tenant_id = runs.tenant_id AND l.expires_at > now())"
)


class _Backend(Protocol):
    _dialect: ClassVar[Dialect]

    def _read(self, action: str) -> AbstractAsyncContextManager[Conn]: ...

    def _write(self, action: str) -> AbstractAsyncContextManager[Conn]: ...


class PostgresRuns(RunStore):
    """The run methods of the PostgreSQL backend."""

    async def interrupt_stale_runs(self: _Backend, finished_at: dt.datetime) -> int:
        """Mark runs left ``running`` as ``interrupted``; return how many.

        With replicas, a run is stale only if no live lease covers its tenant (another
        replica may be running it right now): runs of tenants without a lease row, or
        whose lease expired, are interrupted, unless their owner is a live process of
        this host (a ``chargeback once`` beside the daemon holds no lease).
        """
        d = self._dialect
        async with self._write("marking interrupted runs") as conn:
            running = await d.fetch(conn, _STALE, ())
            stale = [str(run_id) for run_id, owner in running if not owner_alive_here(owner)]
            rows = [(d.time(finished_at), run_id) for run_id in stale]
            await d.executemany(conn, d.sql(INTERRUPT), rows)
        return len(stale)

    async def list_runs(self: _Backend, tenant_id: str, limit: int = 20) -> list[RunRecord]:
        """Return the newest runs of a tenant, newest first."""
        async with self._read("listing runs") as conn:
            return await _queries.list_runs(conn, tenant_id, limit)
