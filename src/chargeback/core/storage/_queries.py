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
    "DATE_ROWS",
    "RECORD_EMISSION",
    "cost_totals",
    "date_states",
    "latest_calculated_date",
    "list_runs",
    "pending_emissions",
    "pending_reruns",
    "read_rows",
    "reconcile",
    "tenants",
]

_DATE_ROWS = """date_state AS s CROSS JOIN chargeback_rows AS r
    ON r.row_id >= s.first_row_id AND r.row_id < s.first_row_id + s.row_count
    AND +r.tenant_id = s.tenant_id AND +r.date = s.date"""
"""Each calculated date's chargeback rows: its ``row_id`` range (migration 2), looked up
in the table's own B-tree. ``CROSS JOIN`` keeps ``date_state`` the outer loop; the
tenant and date are compared too, so a row in a range but of another date never
counts (the unary ``+`` keeps SQLite from building an automatic index on them when
no tenant is given)."""

DATE_ROWS = _DATE_ROWS
"""The same join, for the other SQLite read modules (the usage ledger's counts)."""

_RECONCILE = f"""
WITH billed AS (
    SELECT date, product_type, SUM(amount) AS amount, COUNT(*) AS lines,
        SUM(error LIKE 'refused: %') AS refused
    FROM billing_lines WHERE tenant_id = :tenant AND date >= :start AND date < :end
    GROUP BY date, product_type
), allocated AS (
    SELECT s.date AS date, r.product_type AS product_type, SUM(r.amount) AS amount
    FROM {_DATE_ROWS}
    WHERE s.tenant_id = :tenant AND s.date >= :start AND s.date < :end
    GROUP BY s.date, r.product_type
)
SELECT b.date, b.product_type, b.amount, COALESCE(a.amount, 0), b.lines, b.refused
FROM billed AS b LEFT JOIN allocated AS a USING (date, product_type)
UNION ALL
SELECT a.date, a.product_type, 0, a.amount, 0, 0
FROM allocated AS a
WHERE NOT EXISTS (
    SELECT 1 FROM billed AS b WHERE b.date = a.date AND b.product_type = a.product_type
)
ORDER BY 1, 2
"""

_COST_TOTALS = f"""
SELECT s.tenant_id, r.identity_id, r.product_type, r.cost_type, COALESCE(r.env_id, ''),
    SUM(r.amount)
FROM {_DATE_ROWS}
WHERE {{tenant_filter}} s.date >= ? AND s.date < ?
GROUP BY s.tenant_id, r.identity_id, r.product_type, r.cost_type, COALESCE(r.env_id, '')
ORDER BY 1, 2, 3, 4, 5
"""

_ROW_VALUES = ", ".join(f"r.{c}" for c in ChargebackRow._fields if c not in ("tenant_id", "date"))
"""A stored row's columns after its tenant and date: the row type's other fields, in order."""

_READ_ROWS = f"""
SELECT {_ROW_VALUES}
FROM {_DATE_ROWS}
WHERE s.tenant_id = ? AND s.date = ?
ORDER BY r.row_id
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
            run_id=run_id,
            tenant_id=tenant,
            trigger=trigger,
            status=status,
            started_at=datetime_from_text(started_at),
            finished_at=opt_datetime_from_text(finished_at),
            counts={str(k): int(v) for k, v in json.loads(counts).items()},
            error=error,
        )
        for run_id, tenant, trigger, status, started_at, finished_at, counts, error in rows
    ]


_STATE_COLUMNS = (
    "date", "billing_fingerprint", "settings_fingerprint", "inventory_fingerprint", "calc_seq",
    "calculated_at", "line_count", "row_count", "billed_total", "allocated_total",
    "unallocated_total",
)  # fmt: skip
"""The ``date_state`` columns a :class:`DateState` is read from."""


def _date_state(row: sqlite3.Row) -> DateState:
    value = dict(zip(_STATE_COLUMNS, row, strict=True))
    return DateState(
        day=date_from_text(value["date"]),
        billing_fingerprint=value["billing_fingerprint"],
        settings_fingerprint=value["settings_fingerprint"],
        inventory_fingerprint=value["inventory_fingerprint"],
        calc_seq=int(value["calc_seq"]),
        calculated_at=datetime_from_text(value["calculated_at"]),
        line_count=int(value["line_count"]),
        row_count=int(value["row_count"]),
        billed_total=int(value["billed_total"]),
        allocated_total=int(value["allocated_total"]),
        unallocated_total=int(value["unallocated_total"]),
    )


async def date_states(
    conn: aiosqlite.Connection, tenant_id: str, start: dt.date, end: dt.date
) -> dict[dt.date, DateState]:
    """Return the state of every calculated date with ``start <= day < end``."""
    rows = await conn.execute_fetchall(
        f"SELECT {', '.join(_STATE_COLUMNS)} FROM date_state "
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
            request_id=request_id,
            tenant_id=tenant,
            start=date_from_text(start),
            end=date_from_text(end),
            requested_at=datetime_from_text(requested_at),
        )
        for request_id, tenant, start, end, requested_at in rows
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
    return [(date_from_text(day), int(calc_seq)) for day, calc_seq in rows]


async def read_rows(
    conn: aiosqlite.Connection, tenant_id: str, day: dt.date
) -> list[ChargebackRow]:
    """Return the rows of one tenant-date in commit order."""
    rows = await conn.execute_fetchall(_READ_ROWS, (tenant_id, day.isoformat()))
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
            day=date_from_text(day),
            product_type=product_type,
            billed=int(billed),
            allocated=int(allocated),
            lines=int(lines),
            refused=int(refused or 0),
        )
        for day, product_type, billed, allocated, lines, refused in rows
    ]


async def cost_totals(
    conn: aiosqlite.Connection, tenant_id: str | None, start: dt.date, end: dt.date
) -> list[CostTotal]:
    """Sum amounts per tenant, identity, product type, cost type and env (one query)."""
    params: tuple[object, ...]
    if tenant_id is None:
        tenant_filter = ""
        params = (start.isoformat(), end.isoformat())
    else:
        tenant_filter = "s.tenant_id = ? AND"
        params = (tenant_id, start.isoformat(), end.isoformat())
    sql = _COST_TOTALS.format(tenant_filter=tenant_filter)
    rows = await conn.execute_fetchall(sql, params)
    return [
        CostTotal(
            tenant_id=tenant,
            identity_id=identity_id,
            product_type=product_type,
            cost_type=cost_type,
            env_id=env_id,
            amount=int(amount),
        )
        for tenant, identity_id, product_type, cost_type, env_id, amount in rows
    ]


async def latest_calculated_date(conn: aiosqlite.Connection, tenant_id: str) -> dt.date | None:
    """Return the newest calculated date of a tenant, if any."""
    rows = await conn.execute_fetchall(
        "SELECT MAX(date) FROM date_state WHERE tenant_id = ?", (tenant_id,)
    )
    for (value,) in rows:
        return None if value is None else date_from_text(value)
    return None


async def tenants(conn: aiosqlite.Connection) -> list[str]:
    """Return every tenant with stored state (dates, runs, reruns or inventory)."""
    rows = await conn.execute_fetchall(
        "SELECT tenant_id FROM date_state UNION SELECT tenant_id FROM runs "
        "UNION SELECT tenant_id FROM rerun_requests UNION SELECT tenant_id FROM resources "
        "UNION SELECT tenant_id FROM identities ORDER BY 1"
    )
    return [str(tenant) for (tenant,) in rows]
