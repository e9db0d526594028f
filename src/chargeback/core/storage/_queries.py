"""The SQLite backend's set-based reads and their row decoding.

Every function takes an open aiosqlite connection; errors are translated by the caller.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import aiosqlite

from chargeback.core.models import ChargebackRow
from chargeback.core.storage._util import date_from_text, datetime_from_text, opt_datetime_from_text
from chargeback.core.storage.backend import (
    CostTotal,
    DateState,
    ReconcileRow,
    RerunRequest,
    RunRecord,
)

__all__ = [
    "RECORD_EMISSION",
    "cost_totals",
    "date_states",
    "list_runs",
    "pending_emissions",
    "pending_reruns",
    "read_rows",
    "reconcile",
]

_RECONCILE = """
WITH billed AS (
    SELECT date, product_type, SUM(amount) AS amount, COUNT(*) AS lines
    FROM billing_lines WHERE tenant_id = :tenant AND date >= :start AND date < :end
    GROUP BY date, product_type
), allocated AS (
    SELECT date, product_type, SUM(amount) AS amount
    FROM chargeback_rows WHERE tenant_id = :tenant AND date >= :start AND date < :end
    GROUP BY date, product_type
)
SELECT b.date, b.product_type, b.amount, COALESCE(a.amount, 0), b.lines
FROM billed AS b LEFT JOIN allocated AS a USING (date, product_type)
UNION ALL
SELECT a.date, a.product_type, 0, a.amount, 0
FROM allocated AS a
WHERE NOT EXISTS (
    SELECT 1 FROM billed AS b WHERE b.date = a.date AND b.product_type = a.product_type
)
ORDER BY 1, 2
"""

_COST_TOTALS = """
SELECT tenant_id, identity_id, product_type, cost_type, COALESCE(env_id, ''), SUM(amount)
FROM chargeback_rows
WHERE {tenant_filter} AND date >= ? AND date < ?
GROUP BY tenant_id, identity_id, product_type, cost_type, COALESCE(env_id, '')
ORDER BY 1, 2, 3, 4, 5
"""

RECORD_EMISSION = """
INSERT INTO emissions (tenant_id, emitter, date, calc_seq, attempted_at, error,
    attempts, emitted_seq, emitted_at)
VALUES (:tenant, :emitter, :date, :seq, :at, :error, 1,
    CASE WHEN :ok THEN :seq END, CASE WHEN :ok THEN :at END)
ON CONFLICT (tenant_id, emitter, date) DO UPDATE SET
    attempts = CASE WHEN emissions.calc_seq = :seq THEN emissions.attempts + 1 ELSE 1 END,
    calc_seq = :seq,
    attempted_at = :at,
    error = :error,
    emitted_seq = CASE WHEN :ok
        THEN MAX(COALESCE(emissions.emitted_seq, :seq), :seq)
        ELSE emissions.emitted_seq END,
    emitted_at = CASE WHEN :ok THEN :at ELSE emissions.emitted_at END
"""
"""Upsert of one emission attempt: the last attempt, and the newest successful calc_seq."""


async def list_runs(conn: aiosqlite.Connection, tenant_id: str, limit: int) -> list[RunRecord]:
    """Return the newest runs of a tenant, newest first."""
    rows = await conn.execute_fetchall(
        "SELECT run_id, tenant_id, trigger, status, started_at, finished_at, counts, error "
        "FROM runs WHERE tenant_id = ? ORDER BY started_at DESC, rowid DESC LIMIT ?",
        (tenant_id, limit),
    )
    return [
        RunRecord(
            run_id=r[0],
            tenant_id=r[1],
            trigger=r[2],
            status=r[3],
            started_at=datetime_from_text(r[4]),
            finished_at=opt_datetime_from_text(r[5]),
            counts={str(k): int(v) for k, v in json.loads(r[6]).items()},
            error=r[7],
        )
        for r in rows
    ]


def _date_state(r: sqlite3.Row) -> DateState:
    return DateState(
        day=date_from_text(r[0]),
        billing_fingerprint=r[1],
        settings_fingerprint=r[2],
        inventory_fingerprint=r[3],
        calc_seq=int(r[4]),
        calculated_at=datetime_from_text(r[5]),
        line_count=int(r[6]),
        row_count=int(r[7]),
        billed_total=int(r[8]),
        allocated_total=int(r[9]),
        unallocated_total=int(r[10]),
    )


async def date_states(
    conn: aiosqlite.Connection, tenant_id: str, start: dt.date, end: dt.date
) -> dict[dt.date, DateState]:
    """Return the state of every calculated date with ``start <= day < end``."""
    rows = await conn.execute_fetchall(
        "SELECT date, billing_fingerprint, settings_fingerprint, inventory_fingerprint, "
        "calc_seq, calculated_at, line_count, row_count, billed_total, allocated_total, "
        "unallocated_total FROM date_state "
        "WHERE tenant_id = ? AND date >= ? AND date < ? ORDER BY date",
        (tenant_id, start.isoformat(), end.isoformat()),
    )
    states = (_date_state(r) for r in rows)
    return {s.day: s for s in states}


async def pending_reruns(conn: aiosqlite.Connection, tenant_id: str) -> list[RerunRequest]:
    """Return the rerun requests not yet completed, oldest first."""
    rows = await conn.execute_fetchall(
        "SELECT request_id, tenant_id, start_date, end_date, requested_at "
        "FROM rerun_requests WHERE tenant_id = ? AND completed_at IS NULL "
        "ORDER BY request_id",
        (tenant_id,),
    )
    return [
        RerunRequest(
            request_id=r[0],
            tenant_id=r[1],
            start=date_from_text(r[2]),
            end=date_from_text(r[3]),
            requested_at=datetime_from_text(r[4]),
        )
        for r in rows
    ]


async def pending_emissions(
    conn: aiosqlite.Connection, tenant_id: str, emitter: str
) -> list[tuple[dt.date, int]]:
    """Return ``(date, calc_seq)`` of dates not successfully emitted at their calc_seq."""
    rows = await conn.execute_fetchall(
        "SELECT s.date, s.calc_seq FROM date_state AS s "
        "LEFT JOIN emissions AS e ON e.tenant_id = s.tenant_id AND e.date = s.date "
        "AND e.emitter = ? "
        "WHERE s.tenant_id = ? AND e.emitted_seq IS NOT s.calc_seq ORDER BY s.date",
        (emitter, tenant_id),
    )
    return [(date_from_text(r[0]), int(r[1])) for r in rows]


async def read_rows(
    conn: aiosqlite.Connection, tenant_id: str, day: dt.date
) -> list[ChargebackRow]:
    """Return the rows of one tenant-date in commit order."""
    rows = await conn.execute_fetchall(
        "SELECT line_id, identity_id, product_type, product_category, resource_id, env_id, "
        "cost_type, rule, amount, reason FROM chargeback_rows "
        "WHERE tenant_id = ? AND date = ? ORDER BY rowid",
        (tenant_id, day.isoformat()),
    )
    return [ChargebackRow(tenant_id, day, *r) for r in rows]


async def reconcile(
    conn: aiosqlite.Connection, tenant_id: str, start: dt.date, end: dt.date
) -> list[ReconcileRow]:
    """Return billed vs allocated per date and product type (one set-based query)."""
    rows = await conn.execute_fetchall(
        _RECONCILE, {"tenant": tenant_id, "start": start.isoformat(), "end": end.isoformat()}
    )
    return [
        ReconcileRow(
            day=date_from_text(r[0]),
            product_type=r[1],
            billed=int(r[2]),
            allocated=int(r[3]),
            lines=int(r[4]),
        )
        for r in rows
    ]


async def cost_totals(
    conn: aiosqlite.Connection, tenant_id: str | None, start: dt.date, end: dt.date
) -> list[CostTotal]:
    """Sum amounts per tenant, identity, product type, cost type and env (one query)."""
    params: tuple[object, ...]
    if tenant_id is None:
        # Lets SQLite walk the (tenant_id, date) index once per tenant.
        tenant_filter = "tenant_id IN (SELECT tenant_id FROM date_state)"
        params = (start.isoformat(), end.isoformat())
    else:
        tenant_filter = "tenant_id = ?"
        params = (tenant_id, start.isoformat(), end.isoformat())
    rows = await conn.execute_fetchall(_COST_TOTALS.format(tenant_filter=tenant_filter), params)
    return [
        CostTotal(
            tenant_id=r[0],
            identity_id=r[1],
            product_type=r[2],
            cost_type=r[3],
            env_id=r[4],
            amount=int(r[5]),
        )
        for r in rows
    ]
