"""The usage ledger on PostgreSQL (DESIGN §13, §18): the ledger methods of its backend.

:class:`PostgresLedger` is mixed into
:class:`~chargeback.core.storage.postgres.backend.PostgresBackend` and uses its pooled
transaction helpers. Cells are replaced with one ``DELETE ... USING unnest(...)`` and
a ``COPY`` of the new rows, in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import psycopg

from chargeback.core.ledger.records import UNAVAILABLE_RULE, UsageCell, UsageEntry
from chargeback.core.storage._ledger_rows import entries_of, rows_of, span_of

__all__ = ["PostgresLedger"]

Conn = psycopg.AsyncConnection[tuple[Any, ...]]

_DELETE_CELLS = (
    "DELETE FROM usage_ledger AS u USING unnest(%s::date[], %s::text[], %s::text[]) "
    "AS c(date, query, resource_id) WHERE u.tenant_id = %s AND u.date = c.date "
    "AND u.query = c.query AND u.resource_id = c.resource_id"
)
_COPY = (
    "COPY usage_ledger (tenant_id, date, query, resource_id, principal_id, value, source, "
    "fetched_at) FROM STDIN"
)
_READ = (
    "SELECT date, query, resource_id, principal_id, value, source, fetched_at "
    "FROM usage_ledger WHERE tenant_id = %s AND date >= %s AND date < %s "
    'ORDER BY date, query COLLATE "C", resource_id COLLATE "C", principal_id COLLATE "C"'
)
_CELLS = (
    "SELECT DISTINCT date, query, resource_id FROM usage_ledger "
    "WHERE tenant_id = %s AND date >= %s AND date <= %s"
)
_BILLED = (
    "SELECT DISTINCT product_type, resource_id FROM billing_lines WHERE tenant_id = %s "
    "AND date >= %s AND date < %s AND resource_id IS NOT NULL AND error IS NULL"
)

_UNAVAILABLE = (
    "SELECT date, product_type, COUNT(DISTINCT line_id) FROM chargeback_rows "
    "WHERE tenant_id = %s AND date >= %s AND date < %s AND rule = %s "
    "GROUP BY date, product_type"
)


def _same(value: Any) -> Any:
    return value


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)


class PostgresLedger:
    """The usage-ledger half of the PostgreSQL backend's storage protocol."""

    def _write(self, action: str) -> AbstractAsyncContextManager[Conn]:
        raise NotImplementedError  # pragma: no cover - PostgresBackend's

    def _read(self, action: str) -> AbstractAsyncContextManager[Conn]:
        raise NotImplementedError  # pragma: no cover - PostgresBackend's

    async def write_usage(self, tenant_id: str, entries: Sequence[UsageEntry]) -> None:
        """Store fetched cells, replacing any stored version of them, in one transaction.

        Raises:
            ValueError: a value is not an int (nothing was written).
            StorageError: the database failed (nothing was written).
        """
        if not entries:
            return
        rows = list(rows_of(tenant_id, entries, day=_same, at=_same))
        days = [e.day for e in entries]
        queries = [e.query for e in entries]
        resources = [e.resource_id for e in entries]
        async with self._write(f"storing usage of tenant {tenant_id!r}") as conn:
            await conn.execute(_DELETE_CELLS, (days, queries, resources, tenant_id))
            async with conn.cursor().copy(_COPY) as copy:
                for row in rows:
                    await copy.write_row(row)

    async def read_usage(
        self,
        tenant_id: str,
        start: dt.date,
        end: dt.date,
        *,
        queries: Collection[str] | None = None,
        resource_ids: Collection[str] | None = None,
    ) -> list[UsageEntry]:
        """Return stored cells with ``start <= day < end``, by date, query and resource."""
        async with self._read(f"reading the usage of tenant {tenant_id!r}") as conn:
            cur = await conn.execute(_READ, (tenant_id, start, end))
            rows = await cur.fetchall()
        return entries_of(
            rows,
            day=_same,
            at=_utc,
            queries=None if queries is None else set(queries),
            resource_ids=None if resource_ids is None else set(resource_ids),
        )

    async def missing_usage(self, tenant_id: str, wanted: Collection[UsageCell]) -> set[UsageCell]:
        """Return the cells of ``wanted`` the ledger does not hold."""
        span = span_of(wanted)
        if span is None:
            return set()
        async with self._read(f"reading the usage cells of tenant {tenant_id!r}") as conn:
            cur = await conn.execute(_CELLS, (tenant_id, *span))
            rows = await cur.fetchall()
        stored = {UsageCell(r[0], str(r[1]), str(r[2])) for r in rows}
        return set(wanted) - stored

    async def billed_resources(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> set[tuple[str, str]]:
        """Return ``(product_type, resource_id)`` of the stored lines, ``start <= day < end``."""
        async with self._read(f"reading the billed resources of tenant {tenant_id!r}") as conn:
            cur = await conn.execute(_BILLED, (tenant_id, start, end))
            rows = await cur.fetchall()
        return {(str(r[0]), str(r[1])) for r in rows}

    async def unavailable_lines(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> dict[tuple[dt.date, str], int]:
        """Count the lines split by ``usage_unavailable``, per date and product type."""
        async with self._read(f"counting unavailable usage of tenant {tenant_id!r}") as conn:
            cur = await conn.execute(_UNAVAILABLE, (tenant_id, start, end, UNAVAILABLE_RULE))
            rows = await cur.fetchall()
        return {(r[0], str(r[1])): int(r[2]) for r in rows}
