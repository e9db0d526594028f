"""PostgreSQL's read of a date's stored billing lines (see ``core/storage/_lines.py``)."""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import psycopg

from chargeback.core.models import BillingLineItem
from chargeback.core.storage._lines import LINE_COLUMNS, line_from_row

__all__ = ["PostgresLineReads"]

Conn = psycopg.AsyncConnection[tuple[Any, ...]]

_READ_LINES = (
    f"SELECT {LINE_COLUMNS} FROM billing_lines WHERE tenant_id = %s AND date = %s "
    'ORDER BY line_id COLLATE "C"'
)


class _Readable(Protocol):
    def _read(self, action: str) -> AbstractAsyncContextManager[Conn]: ...


class PostgresLineReads:
    """``read_lines`` of the PostgreSQL backend."""

    async def read_lines(self: _Readable, tenant_id: str, day: dt.date) -> list[BillingLineItem]:
        """Return the stored billing lines of one tenant-date, by ``line_id``."""
        async with self._read(f"reading the billing lines of {tenant_id!r} date {day}") as conn:
            cur = await conn.execute(_READ_LINES, (tenant_id, day))
            rows = await cur.fetchall()
        return [line_from_row(day, r) for r in rows]
