"""The usage ledger on SQLite (DESIGN §13): the ledger methods of the SQLite backend.

:class:`SQLiteLedger` is mixed into :class:`~chargeback.core.storage.sqlite.SQLiteBackend`
and uses its transaction helpers: every write is one ``BEGIN IMMEDIATE`` transaction,
every read goes to the reader's WAL snapshot. A write of many rows (a backfill's batch
of clusters, ~50 k rows) goes to the backend's writer child process like a large date
commit (:mod:`~chargeback.core.storage._writer`), so binding and inserting them does not
take this process's CPU; a smaller one runs on the writer connection's thread. Both run
:func:`~chargeback.core.storage._transaction.write_usage_transaction`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager

import aiosqlite

from chargeback.core.ledger.records import UNAVAILABLE_RULE, UsageCell, UsageEntry
from chargeback.core.storage._ledger_rows import entries_of, rows_of, span_of
from chargeback.core.storage._queries import DATE_ROWS
from chargeback.core.storage._transaction import write_usage_transaction
from chargeback.core.storage._util import (
    date_from_text,
    datetime_from_text,
    datetime_to_text,
)
from chargeback.core.storage._writer import CommitWriter

__all__ = ["SQLiteLedger"]

_READ = (
    "SELECT date, query, resource_id, principal_id, value, source, fetched_at "
    "FROM usage_ledger WHERE tenant_id = ? AND date >= ? AND date < ? "
    "ORDER BY date, query, resource_id, principal_id"
)
_CELLS = (
    "SELECT DISTINCT date, query, resource_id FROM usage_ledger "
    "WHERE tenant_id = ? AND date >= ? AND date <= ?"
)
_BILLED = (
    "SELECT DISTINCT product_type, resource_id FROM billing_lines WHERE tenant_id = ? "
    "AND date >= ? AND date < ? AND resource_id IS NOT NULL AND error IS NULL"
)

_UNAVAILABLE = f"""
SELECT s.date, r.product_type, COUNT(DISTINCT r.line_id) FROM {DATE_ROWS}
WHERE s.tenant_id = ? AND s.date >= ? AND s.date < ? AND r.rule = ?
GROUP BY s.date, r.product_type
"""


class SQLiteLedger:
    """The usage-ledger half of the SQLite backend's storage protocol."""

    async def _through_writer(
        self,
        action: str,
        size: int,
        encode: Callable[[CommitWriter], bytes],
        work: Callable[..., int],
        *args: object,
    ) -> int:
        raise NotImplementedError  # pragma: no cover - SQLiteBackend's

    def _read(self, action: str) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        raise NotImplementedError  # pragma: no cover - SQLiteBackend's

    async def write_usage(self, tenant_id: str, entries: Sequence[UsageEntry]) -> None:
        """Store fetched cells, replacing any stored version of them, in one transaction.

        Raises:
            ValueError: a value is not an int (nothing was written).
            StorageError: the database failed (nothing was written).
        """
        if not entries:
            return
        rows = list(rows_of(tenant_id, entries, day=dt.date.isoformat, at=datetime_to_text))
        cells = [(tenant_id, e.day.isoformat(), e.query, e.resource_id) for e in entries]
        await self._through_writer(
            f"storing usage of tenant {tenant_id!r}", len(rows),
            lambda child: child.encode_usage(cells, rows), write_usage_transaction, cells, rows,
        )  # fmt: skip

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
            rows = await conn.execute_fetchall(
                _READ, (tenant_id, start.isoformat(), end.isoformat())
            )
        return entries_of(
            (tuple(r) for r in rows),
            day=date_from_text,
            at=datetime_from_text,
            queries=None if queries is None else set(queries),
            resource_ids=None if resource_ids is None else set(resource_ids),
        )

    async def missing_usage(self, tenant_id: str, wanted: Collection[UsageCell]) -> set[UsageCell]:
        """Return the cells of ``wanted`` the ledger does not hold."""
        span = span_of(wanted)
        if span is None:
            return set()
        first, last = span
        async with self._read(f"reading the usage cells of tenant {tenant_id!r}") as conn:
            rows = await conn.execute_fetchall(
                _CELLS, (tenant_id, first.isoformat(), last.isoformat())
            )
        stored = {UsageCell(date_from_text(r[0]), str(r[1]), str(r[2])) for r in rows}
        return set(wanted) - stored

    async def billed_resources(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> set[tuple[str, str]]:
        """Return ``(product_type, resource_id)`` of the stored lines, ``start <= day < end``."""
        async with self._read(f"reading the billed resources of tenant {tenant_id!r}") as conn:
            rows = await conn.execute_fetchall(
                _BILLED, (tenant_id, start.isoformat(), end.isoformat())
            )
        return {(str(r[0]), str(r[1])) for r in rows}

    async def unavailable_lines(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> dict[tuple[dt.date, str], int]:
        """Count the lines split by ``usage_unavailable``, per date and product type."""
        async with self._read(f"counting unavailable usage of tenant {tenant_id!r}") as conn:
            rows = await conn.execute_fetchall(
                _UNAVAILABLE, (tenant_id, start.isoformat(), end.isoformat(), UNAVAILABLE_RULE)
            )
        return {(date_from_text(r[0]), str(r[1])): int(r[2]) for r in rows}
