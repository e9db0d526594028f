"""PostgreSQL's set-based reads and their row decoding (errors translated by the caller).

Text is ordered ``COLLATE "C"`` (by code point, as SQLite orders it), whatever collation
the database was created with, so both backends return the same order.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg

from chargeback.core.models import ChargebackRow
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

Conn = psycopg.AsyncConnection[tuple[Any, ...]]

_RECONCILE = """
WITH billed AS (
    SELECT date, product_type, SUM(amount) AS amount, COUNT(*) AS lines,
        COUNT(*) FILTER (WHERE error LIKE 'refused: %%') AS refused
    FROM billing_lines WHERE tenant_id = %(tenant)s AND date >= %(start)s AND date < %(end)s
    GROUP BY date, product_type
), allocated AS (
    SELECT date, product_type, SUM(amount) AS amount
    FROM chargeback_rows
    WHERE tenant_id = %(tenant)s AND date >= %(start)s AND date < %(end)s
    GROUP BY date, product_type
)
SELECT date, product_type, COALESCE(b.amount, 0), COALESCE(a.amount, 0),
    COALESCE(b.lines, 0), COALESCE(b.refused, 0)
FROM billed AS b FULL JOIN allocated AS a USING (date, product_type)
ORDER BY date, product_type COLLATE "C"
"""

_COST_TOTALS = """
SELECT tenant_id, identity_id, product_type, cost_type, COALESCE(env_id, ''), SUM(amount)
FROM chargeback_rows
WHERE {tenant_filter} date >= %s AND date < %s
GROUP BY tenant_id, identity_id, product_type, cost_type, COALESCE(env_id, '')
ORDER BY tenant_id COLLATE "C", identity_id COLLATE "C", product_type COLLATE "C",
    cost_type COLLATE "C", COALESCE(env_id, '') COLLATE "C"
"""

_READ_ROWS = """
SELECT line_id, identity_id, product_type, product_category, resource_id, env_id,
    cost_type, rule, amount, reason
FROM chargeback_rows WHERE tenant_id = %s AND date = %s
ORDER BY row_id
"""

RECORD_EMISSION = """
INSERT INTO emissions AS e (tenant_id, emitter, date, calc_seq, attempted_at, error,
    attempts, emitted_seq, emitted_at)
VALUES (%(tenant)s, %(emitter)s, %(date)s, %(seq)s, %(at)s, %(error)s, 1,
    CASE WHEN %(ok)s THEN %(seq)s END, CASE WHEN %(ok)s THEN %(at)s::timestamptz END)
ON CONFLICT (tenant_id, emitter, date) DO UPDATE SET
    attempts = CASE WHEN e.calc_seq = %(seq)s THEN e.attempts + 1 ELSE 1 END,
    calc_seq = %(seq)s,
    attempted_at = %(at)s,
    error = %(error)s,
    emitted_seq = CASE WHEN %(ok)s
        THEN GREATEST(COALESCE(e.emitted_seq, %(seq)s), %(seq)s)
        ELSE e.emitted_seq END,
    emitted_at = CASE WHEN %(ok)s THEN %(at)s::timestamptz ELSE e.emitted_at END
"""
"""Upsert of one emission attempt: the last attempt, and the newest successful calc_seq."""


async def _all(conn: Conn, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query, params)
    return await cur.fetchall()


async def list_runs(conn: Conn, tenant_id: str, limit: int) -> list[RunRecord]:
    """Return the newest runs of a tenant, newest first."""
    rows = await _all(
        conn,
        "SELECT run_id, tenant_id, trigger, status, started_at, finished_at, counts, error "
        "FROM runs WHERE tenant_id = %s ORDER BY started_at DESC, seq DESC LIMIT %s",
        (tenant_id, limit),
    )
    return [
        RunRecord(
            run_id=r[0],
            tenant_id=r[1],
            trigger=r[2],
            status=r[3],
            started_at=r[4],
            finished_at=r[5],
            counts={str(k): int(v) for k, v in json.loads(r[6]).items()},
            error=r[7],
        )
        for r in rows
    ]


async def date_states(
    conn: Conn, tenant_id: str, start: dt.date, end: dt.date
) -> dict[dt.date, DateState]:
    """Return the state of every calculated date with ``start <= day < end``."""
    rows = await _all(
        conn,
        "SELECT date, billing_fingerprint, settings_fingerprint, inventory_fingerprint, "
        "calc_seq, calculated_at, line_count, row_count, billed_total, allocated_total, "
        "unallocated_total FROM date_state "
        "WHERE tenant_id = %s AND date >= %s AND date < %s ORDER BY date",
        (tenant_id, start, end),
    )
    return {r[0]: DateState(*r) for r in rows}


async def pending_reruns(conn: Conn, tenant_id: str) -> list[RerunRequest]:
    """Return the rerun requests not yet completed, oldest first."""
    rows = await _all(
        conn,
        "SELECT request_id, tenant_id, start_date, end_date, requested_at "
        "FROM rerun_requests WHERE tenant_id = %s AND completed_at IS NULL "
        "ORDER BY request_id",
        (tenant_id,),
    )
    return [RerunRequest(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


async def pending_emissions(conn: Conn, tenant_id: str, emitter: str) -> list[tuple[dt.date, int]]:
    """Return ``(date, calc_seq)`` of dates not successfully emitted at their calc_seq."""
    rows = await _all(
        conn,
        "SELECT s.date, s.calc_seq FROM date_state AS s "
        "LEFT JOIN emissions AS e ON e.tenant_id = s.tenant_id AND e.date = s.date "
        "AND e.emitter = %s "
        "WHERE s.tenant_id = %s AND e.emitted_seq IS DISTINCT FROM s.calc_seq ORDER BY s.date",
        (emitter, tenant_id),
    )
    return [(r[0], int(r[1])) for r in rows]


async def read_rows(conn: Conn, tenant_id: str, day: dt.date) -> list[ChargebackRow]:
    """Return the rows of one tenant-date in commit order."""
    rows = await _all(conn, _READ_ROWS, (tenant_id, day))
    return [ChargebackRow(tenant_id, day, *r) for r in rows]


async def reconcile(conn: Conn, tenant_id: str, start: dt.date, end: dt.date) -> list[ReconcileRow]:
    """Return billed vs allocated per date and product type (one set-based query)."""
    rows = await _all(conn, _RECONCILE, {"tenant": tenant_id, "start": start, "end": end})
    return [
        ReconcileRow(day=r[0], product_type=r[1], billed=int(r[2]), allocated=int(r[3]),
                     lines=int(r[4]), refused=int(r[5]))
        for r in rows
    ]  # fmt: skip


async def cost_totals(
    conn: Conn, tenant_id: str | None, start: dt.date, end: dt.date
) -> list[CostTotal]:
    """Sum amounts per tenant, identity, product type, cost type and env (one query)."""
    params: tuple[object, ...]
    if tenant_id is None:
        tenant_filter, params = "", (start, end)
    else:
        tenant_filter, params = "tenant_id = %s AND", (tenant_id, start, end)
    rows = await _all(conn, _COST_TOTALS.format(tenant_filter=tenant_filter), params)
    return [CostTotal(r[0], r[1], r[2], r[3], r[4], int(r[5])) for r in rows]
