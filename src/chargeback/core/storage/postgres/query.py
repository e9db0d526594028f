"""The query API's reads on PostgreSQL (a :class:`~chargeback.core.query.QuerySource`).

The same questions as :mod:`chargeback.core.storage.query_sqlite`, on the backend's own
pool (the HTTP server's read-only backend, on the server's loop): a date's rows through
the ``(tenant_id, date, row_id)`` index, weeks and months by ``date_trunc`` (ISO weeks
from Monday, as SQLite's ``weekday 0, -6 days``), filters as ``= ANY`` / ``<> ALL`` of
one array parameter each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from chargeback.core.models import ChargebackRow
from chargeback.core.query.aggregate import GroupRow
from chargeback.core.query.source import BillingLine
from chargeback.core.query.spec import DIMENSIONS, Filter
from chargeback.core.query.window import Step, Window
from chargeback.core.storage.postgres.backend import PostgresBackend

__all__ = ["PostgresQuerySource"]

_BUCKET = {
    None: "%(start)s::date",
    Step.DAY: "date",
    Step.WEEK: "GREATEST(date_trunc('week', date)::date, %(start)s::date)",
    Step.MONTH: "GREATEST(date_trunc('month', date)::date, %(start)s::date)",
}
"""The day that names a row's bucket: its step period's first day, clipped to the window."""

_LINE_COLUMNS = (
    "date, line_id, product_type, product_category, resource_id, env_id, amount, quantity, "
    "unit, unit_price, original_amount, discount_amount, description, error"
)


def _column(dimension: str) -> str:
    column = DIMENSIONS[dimension]
    if column == "date":  # a key is text: the day as ISO text, as SQLite stores it
        return "to_char(date, 'YYYY-MM-DD')"
    return f"COALESCE({column}, '')"


def _filter_sql(filters: Sequence[Filter], params: dict[str, object]) -> str:
    clauses: list[str] = []
    for i, f in enumerate(filters):
        params[f"f{i}"] = list(f.values)
        test = f"<> ALL(%(f{i})s::text[])" if f.negate else f"= ANY(%(f{i})s::text[])"
        clauses.append(f" AND {_column(f.dimension)} {test}")
    return "".join(clauses)


class PostgresQuerySource:
    """Grouped reads of the database of an open :class:`PostgresBackend`."""

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend

    def __repr__(self) -> str:
        return f"PostgresQuerySource({self._backend.display!r})"

    async def _all(self, action: str, sql: str, params: Any) -> list[tuple[Any, ...]]:
        async with self._backend.connection(action) as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def allocation_groups(
        self,
        tenant_id: str,
        window: Window,
        step: Step | None,
        dimensions: tuple[str, ...],
        filters: tuple[Filter, ...],
    ) -> list[GroupRow]:
        """See :meth:`~chargeback.core.query.QuerySource.allocation_groups`."""
        params: dict[str, object] = {
            "tenant": tenant_id, "start": window.start, "end": window.end,
        }  # fmt: skip
        keys = ", ".join(_column(d) for d in dimensions)
        sql = (
            f"SELECT {_BUCKET[step]} AS bucket, {keys}, cost_type, SUM(amount) "
            "FROM chargeback_rows "
            "WHERE tenant_id = %(tenant)s AND date >= %(start)s AND date < %(end)s"
            f"{_filter_sql(filters, params)} "
            f"GROUP BY bucket, {keys}, cost_type"
        )
        width = len(dimensions)
        rows = await self._all(f"allocation query of tenant {tenant_id}", sql, params)
        return [
            GroupRow(r[0], tuple(r[1 : 1 + width]), r[1 + width], int(r[2 + width])) for r in rows
        ]

    async def team_rollup_groups(
        self,
        tenant_id: str,
        window: Window,
        step: Step | None,
        dimensions: tuple[str, ...],
        filters: tuple[Filter, ...],
    ) -> tuple[list[GroupRow], set[dt.date]]:
        """No date has a team rollup on PostgreSQL (SQLite's rollup tables are SQLite's):
        the caller reads every date through the attributions."""
        return [], set()

    async def billing_lines(
        self, tenant_id: str, line_id: str, days: list[dt.date]
    ) -> list[BillingLine]:
        """See :meth:`~chargeback.core.query.QuerySource.billing_lines`."""
        if not days:
            return []
        sql = (
            f"SELECT {_LINE_COLUMNS} FROM billing_lines "
            "WHERE tenant_id = %s AND date = ANY(%s::date[]) AND line_id = %s ORDER BY date"
        )
        rows = await self._all(
            f"read billing line {line_id!r} of tenant {tenant_id}", sql,
            (tenant_id, list(days), line_id),
        )  # fmt: skip
        return [BillingLine(*r) for r in rows]

    async def line_rows(self, tenant_id: str, day: dt.date, line_id: str) -> list[ChargebackRow]:
        """See :meth:`~chargeback.core.query.QuerySource.line_rows`."""
        sql = (
            "SELECT identity_id, product_type, product_category, resource_id, env_id, "
            "cost_type, rule, amount, reason FROM chargeback_rows "
            "WHERE tenant_id = %s AND date = %s AND line_id = %s ORDER BY row_id"
        )
        rows = await self._all(
            f"read the rows of line {line_id!r} of tenant {tenant_id}", sql,
            (tenant_id, day, line_id),
        )  # fmt: skip
        return [ChargebackRow(tenant_id, day, line_id, *r) for r in rows]

    async def display_names(self, tenant_id: str, ids: Collection[str]) -> dict[str, str]:
        """See :meth:`~chargeback.core.query.QuerySource.display_names`."""
        wanted = sorted({i for i in ids if i})
        if not wanted:
            return {}
        sql = (
            "SELECT resource_id, display_name FROM resources WHERE tenant_id = %(t)s "
            "AND resource_id = ANY(%(ids)s::text[]) AND display_name IS NOT NULL "
            "UNION ALL SELECT identity_id, display_name FROM identities WHERE tenant_id = %(t)s "
            "AND identity_id = ANY(%(ids)s::text[]) AND display_name IS NOT NULL"
        )
        rows = await self._all(
            f"read display names of tenant {tenant_id}", sql, {"t": tenant_id, "ids": wanted}
        )
        return {str(k): str(v) for k, v in rows}
