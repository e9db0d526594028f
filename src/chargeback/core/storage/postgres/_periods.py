"""PostgreSQL's period methods: the plan of :mod:`chargeback.core.storage._periods`."""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import psycopg

from chargeback.core.storage import _periods as shared
from chargeback.core.storage._dialect import pg as _pg
from chargeback.core.storage.backend import PeriodSync, Restatement

__all__ = ["PostgresPeriodStore"]

Conn = psycopg.AsyncConnection[tuple[Any, ...]]


_SELECT = _pg(shared.SELECT_DAYS)  # one writer per tenant (leases): no row locks needed


class _Backend(Protocol):
    def _read(self, action: str) -> AbstractAsyncContextManager[Conn]: ...

    def _write(self, action: str) -> AbstractAsyncContextManager[Conn]: ...


class PostgresPeriodStore:
    """The period methods of the PostgreSQL backend."""

    async def sync_periods(
        self: _Backend, tenant_id: str, open_from: dt.date, at: dt.datetime
    ) -> PeriodSync:
        """See :meth:`~chargeback.core.storage.backend.StorageBackend.sync_periods`."""
        today = at.astimezone(dt.UTC).date()
        async with self._write(f"syncing the periods of tenant {tenant_id!r}") as conn:
            cur = await conn.execute(_SELECT, (tenant_id,))
            rows = await cur.fetchall()
            plan = shared.plan_sync((shared.DayPeriod(*r) for r in rows), open_from, at)
            async with conn.cursor() as cur:
                await cur.executemany(
                    _pg(shared.INSERT_NEW),
                    [(tenant_id, d, s, at, fp, b) for d, s, fp, b in plan.new],
                )
                await cur.executemany(
                    _pg(shared.CLOSE),
                    [(at, p.fingerprint, p.billed_total, tenant_id, p.day) for p in plan.close],
                )
                await cur.executemany(
                    _pg(shared.REOPEN), [(at, today, tenant_id, r.day) for r in plan.reopen]
                )
                await cur.executemany(
                    _pg(shared.INSERT_RESTATEMENT),
                    [
                        (
                            tenant_id,
                            r.day,
                            at,
                            r.billed_before,
                            r.billed_after,
                            r.fingerprint_before,
                            r.fingerprint_after,
                        )
                        for r in plan.reopen
                    ],
                )
        return plan.result()

    async def period_statuses(
        self: _Backend, tenant_id: str, start: dt.date, end: dt.date
    ) -> dict[dt.date, str]:
        """See :meth:`~chargeback.core.storage.backend.StorageBackend.period_statuses`."""
        async with self._read(f"reading the periods of tenant {tenant_id!r}") as conn:
            cur = await conn.execute(_pg(shared.STATUSES), (tenant_id, start, end))
            rows = await cur.fetchall()
        return {r[0]: str(r[1]) for r in rows}

    async def restatement_counts(self: _Backend) -> dict[str, int]:
        """See :meth:`~chargeback.core.storage.backend.StorageBackend.restatement_counts`."""
        async with self._read("counting restatements") as conn:
            cur = await conn.execute(shared.COUNTS.replace("tenant_id", 'tenant_id COLLATE "C"', 1))
            rows = await cur.fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    async def list_restatements(
        self: _Backend, tenant_id: str, limit: int = 100
    ) -> list[Restatement]:
        """See :meth:`~chargeback.core.storage.backend.StorageBackend.list_restatements`."""
        async with self._read(f"listing the restatements of tenant {tenant_id!r}") as conn:
            cur = await conn.execute(_pg(shared.LIST), (tenant_id, limit))
            rows = await cur.fetchall()
        return [Restatement(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]
