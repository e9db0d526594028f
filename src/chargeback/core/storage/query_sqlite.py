"""The query API's reads of a SQLite file (a :class:`~chargeback.core.query.QuerySource`).

Each call opens its own read-only connection (``mode=ro``) in a worker thread, reads
one WAL snapshot and closes it: no connection is shared with the backend or bound to
an event loop, so the HTTP server's loop never waits for a query (SQLite releases the
GIL while it steps) and nothing is left open when the server stops. Opening costs a
fraction of a millisecond beside the reads themselves.

Reads go by each date's ``row_id`` range (migration 2), like the backend's own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Callable, Collection, Sequence
from contextlib import closing
from pathlib import Path
from typing import TypeVar

from chargeback.core.models import ChargebackRow
from chargeback.core.query.aggregate import GroupRow
from chargeback.core.query.source import BillingLine
from chargeback.core.query.spec import DIMENSIONS, TEAM, Filter
from chargeback.core.query.window import Step, Window
from chargeback.core.storage._util import date_from_text, translate_error
from chargeback.core.storage.query_rollup import ROLLUPS

__all__ = ["SQLiteQuerySource"]

_T = TypeVar("_T")

_DATE_ROWS = """date_state AS s CROSS JOIN chargeback_rows AS r
    ON r.row_id >= s.first_row_id AND r.row_id < s.first_row_id + s.row_count
    AND +r.tenant_id = s.tenant_id AND +r.date = s.date"""
"""As in :mod:`._queries`: each calculated date's rows by their ``row_id`` range."""

_BUCKET = {
    None: ":start",
    Step.DAY: "s.date",
    Step.WEEK: "MAX(date(s.date, 'weekday 0', '-6 days'), :start)",
    Step.MONTH: "MAX(substr(s.date, 1, 7) || '-01', :start)",
}
"""The day that names a row's bucket: its step period's first day, clipped to the window."""

_CHUNK = 500
"""Ids per ``IN (...)`` list of a names lookup."""

_LINE_COLUMNS = (
    "date, line_id, product_type, product_category, resource_id, env_id, amount, quantity, "
    "unit, unit_price, original_amount, discount_amount, description, error"
)


def _column(dimension: str, rollup: str | None = None) -> str:
    if dimension == "date":
        return "s.date"
    if dimension == TEAM:
        return "t.team"
    if rollup is not None:  # rollup columns are never NULL
        return f"t.{DIMENSIONS[dimension]}"
    return f"COALESCE(r.{DIMENSIONS[dimension]}, '')"


_CURRENT = """EXISTS (SELECT 1 FROM query_rollup_state AS q WHERE q.tenant_id = s.tenant_id
    AND q.date = s.date AND q.calc_seq = s.calc_seq)"""
"""A date whose rollups sum its current calculation."""


_TEAM_CURRENT = """CROSS JOIN ownership_dates AS o ON o.tenant_id = s.tenant_id
    AND o.date = s.date AND o.calc_seq = s.calc_seq AND o.rule_version = q.team_rule_version"""
"""Dates whose team rollup was made from the attribution they still have."""


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return found is not None


def _has_rollups(conn: sqlite3.Connection) -> bool:
    return _has_table(conn, "query_rollup_state")


def _group_sql(
    rollup: str | None,
    step: Step | None,
    dimensions: Sequence[str],
    where: Sequence[tuple[str, str]],
    *,
    skip_rolled: bool = False,
    dates_only: bool = False,
) -> str:
    """One grouped read: from a rollup table (its current dates) or from the rows."""
    keys = ", ".join(_column(d, rollup) for d in dimensions)
    if rollup is None:
        source = _DATE_ROWS
        cost, amount = "r.cost_type", "r.amount"
        condition = "s.tenant_id = :tenant AND s.date >= :start AND s.date < :end"
        if skip_rolled:
            condition += f" AND NOT {_CURRENT}"
    else:
        # The current rollup dates drive the join; the unary + keeps SQLite from carrying
        # the window's range over to the rollup table, which it would then scan once per
        # date instead of looking each date up (10x slower on 90 days).
        source = (
            "query_rollup_state AS q CROSS JOIN date_state AS s ON s.tenant_id = q.tenant_id "
            "AND s.date = q.date AND s.calc_seq = q.calc_seq "
            f"CROSS JOIN {rollup} AS t ON t.tenant_id = s.tenant_id AND t.date = s.date"
        )
        cost, amount = "t.cost_type", "t.amount"
        condition = "q.tenant_id = :tenant AND +q.date >= :start AND +q.date < :end"
        if rollup == "query_rollup_team":
            source = source.replace(f"CROSS JOIN {rollup}", f"{_TEAM_CURRENT} CROSS JOIN {rollup}")
    filters = _render_filters(where, rollup)
    if dates_only:  # the dates a rollup covers: the same joins without the rollup table
        source = source.rsplit(" CROSS JOIN ", 1)[0]
        return f"SELECT DISTINCT s.date FROM {source} WHERE {condition}"
    return (
        f"SELECT {_BUCKET[step]} AS bucket, {keys}, {cost}, SUM({amount}) FROM {source} "
        f"WHERE {condition}{filters} GROUP BY bucket, {keys}, {cost}"
    )


def _filter_sql(filters: Sequence[Filter], params: dict[str, object]) -> list[tuple[str, str]]:
    """Each filter as (dimension, ``IN (...)`` condition), its values bound in ``params``."""
    clauses: list[tuple[str, str]] = []
    for i, f in enumerate(filters):
        names = []
        for j, value in enumerate(f.values):
            params[f"f{i}_{j}"] = value
            names.append(f":f{i}_{j}")
        op = "NOT IN" if f.negate else "IN"
        clauses.append((f.dimension, f"{op} ({', '.join(names)})"))
    return clauses


def _render_filters(clauses: Sequence[tuple[str, str]], rollup: str | None) -> str:
    return "".join(f" AND {_column(d, rollup)} {cond}" for d, cond in clauses)


class SQLiteQuerySource:
    """Grouped reads of one SQLite database file.

    Args:
        path: the database file the backend opened.
    """

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._uri = Path(self._path).absolute().as_uri() + "?mode=ro"

    def __repr__(self) -> str:
        return f"SQLiteQuerySource({self._path!r})"

    async def _run(self, action: str, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        def call() -> _T:
            try:
                with closing(sqlite3.connect(self._uri, uri=True)) as conn:
                    conn.execute("PRAGMA query_only = ON")
                    return fn(conn)
            except (sqlite3.Error, OverflowError) as exc:
                raise translate_error(exc, action, self._path) from exc

        return await asyncio.to_thread(call)

    async def allocation_groups(
        self,
        tenant_id: str,
        window: Window,
        step: Step | None,
        dimensions: tuple[str, ...],
        filters: tuple[Filter, ...],
    ) -> list[GroupRow]:
        """See :meth:`~chargeback.core.query.QuerySource.allocation_groups`.

        Dates whose rollup (:mod:`.query_rollup`) is current and covers the query's
        dimensions are read from it; every other date from its rows.
        """
        params: dict[str, object] = {
            "tenant": tenant_id,
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
        }
        where = _filter_sql(filters, params)
        needed = {*dimensions, *(f.dimension for f in filters)}
        rollup = next((t for t, dims in ROLLUPS.items() if needed <= dims), None)
        width = len(dimensions)

        def read(conn: sqlite3.Connection) -> list[GroupRow]:
            statements = [_group_sql(None, step, dimensions, where)]
            if rollup is not None and _has_rollups(conn):
                statements = [
                    _group_sql(rollup, step, dimensions, where),
                    _group_sql(None, step, dimensions, where, skip_rolled=True),
                ]
            days: dict[str, dt.date] = {}  # a few distinct buckets, parsed once each
            out: list[GroupRow] = []
            for sql in statements:
                for r in conn.execute(sql, params):
                    day = days.get(r[0])
                    if day is None:
                        day = days[r[0]] = date_from_text(r[0])
                    out.append(GroupRow(day, tuple(r[1 : 1 + width]), r[1 + width], r[2 + width]))
            return out

        return await self._run(f"allocation query of tenant {tenant_id}", read)

    async def team_rollup_groups(
        self,
        tenant_id: str,
        window: Window,
        step: Step | None,
        dimensions: tuple[str, ...],
        filters: tuple[Filter, ...],
    ) -> tuple[list[GroupRow], set[dt.date]]:
        """Groups of the dates with a current team rollup, and those dates.

        Only for dimensions and filters within team, product type, cost type and date; the caller
        reads every other date through the attributions.
        """
        params: dict[str, object] = {
            "tenant": tenant_id, "start": window.start.isoformat(), "end": window.end.isoformat(),
        }  # fmt: skip
        where = _filter_sql(filters, params)
        width = len(dimensions)
        rollup = "query_rollup_team"

        def read(conn: sqlite3.Connection) -> tuple[list[GroupRow], set[dt.date]]:
            if not _has_rollups(conn) or not _has_table(conn, "ownership_dates"):
                return [], set()
            covered_sql = _group_sql(rollup, None, (), [], dates_only=True)
            covered = {date_from_text(r[0]) for r in conn.execute(covered_sql, params)}
            sql = _group_sql(rollup, step, dimensions, where)
            groups = [
                GroupRow(date_from_text(r[0]), tuple(r[1 : 1 + width]), r[1 + width], r[2 + width])
                for r in conn.execute(sql, params)
            ]
            return groups, covered

        return await self._run(f"team query of tenant {tenant_id}", read)

    async def billing_lines(
        self, tenant_id: str, line_id: str, days: list[dt.date]
    ) -> list[BillingLine]:
        """See :meth:`~chargeback.core.query.QuerySource.billing_lines`."""
        if not days:
            return []
        marks = ", ".join("?" for _ in days)
        sql = (
            f"SELECT {_LINE_COLUMNS} FROM billing_lines "
            f"WHERE tenant_id = ? AND date IN ({marks}) AND line_id = ? ORDER BY date"
        )
        params = [tenant_id, *(d.isoformat() for d in days), line_id]

        def read(conn: sqlite3.Connection) -> list[BillingLine]:
            return [BillingLine(date_from_text(r[0]), *r[1:]) for r in conn.execute(sql, params)]

        return await self._run(f"read billing line {line_id!r} of tenant {tenant_id}", read)

    async def line_rows(self, tenant_id: str, day: dt.date, line_id: str) -> list[ChargebackRow]:
        """See :meth:`~chargeback.core.query.QuerySource.line_rows`."""
        sql = (
            "SELECT r.identity_id, r.product_type, r.product_category, r.resource_id, "
            f"r.env_id, r.cost_type, r.rule, r.amount, r.reason FROM {_DATE_ROWS} "
            "WHERE s.tenant_id = ? AND s.date = ? AND r.line_id = ? ORDER BY r.row_id"
        )

        def read(conn: sqlite3.Connection) -> list[ChargebackRow]:
            rows = conn.execute(sql, (tenant_id, day.isoformat(), line_id))
            return [ChargebackRow(tenant_id, day, line_id, *r) for r in rows]

        return await self._run(f"read the rows of line {line_id!r} of tenant {tenant_id}", read)

    async def display_names(self, tenant_id: str, ids: Collection[str]) -> dict[str, str]:
        """See :meth:`~chargeback.core.query.QuerySource.display_names`."""
        wanted = sorted({i for i in ids if i})

        def read(conn: sqlite3.Connection) -> dict[str, str]:
            names: dict[str, str] = {}
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ", ".join("?" for _ in chunk)
                for table, column in (("resources", "resource_id"), ("identities", "identity_id")):
                    sql = (
                        f"SELECT {column}, display_name FROM {table} WHERE tenant_id = ? "
                        f"AND {column} IN ({marks}) AND display_name IS NOT NULL"
                    )
                    names.update(conn.execute(sql, [tenant_id, *chunk]).fetchall())
            return names

        return await self._run(f"read display names of tenant {tenant_id}", read)
