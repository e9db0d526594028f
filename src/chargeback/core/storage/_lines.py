"""Reading a date's stored billing lines back (the FOCUS export's origin charges).

:class:`LineReads` is a mixin of :class:`~chargeback.core.storage.sqlite.SQLiteBackend`,
kept apart so the export's reads do not grow the backend module; PostgreSQL's
(:mod:`chargeback.core.storage.postgres._lines`) decodes rows with the same
:func:`line_from_row`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Protocol

import aiosqlite

from chargeback.core.models import BillingLineItem
from chargeback.core.storage._util import attrs_from_text

__all__ = ["LINE_COLUMNS", "LineReads", "line_from_row"]

LINE_COLUMNS = (
    "line_id, product_type, product_category, amount, resource_id, env_id, quantity, unit, "
    "unit_price, original_amount, discount_amount, description, attributes, error"
)
"""The ``billing_lines`` columns :func:`line_from_row` decodes, in its order (both backends)."""
_READ_LINES = (
    f"SELECT {LINE_COLUMNS} FROM billing_lines WHERE tenant_id = ? AND date = ? ORDER BY line_id"
)


class _Readable(Protocol):
    def _read(self, action: str) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...


def _decimal(text: object) -> Decimal | None:
    return None if text is None else Decimal(str(text))


class LineReads:
    """``read_lines``: the billing lines a date was last calculated from."""

    async def read_lines(self: _Readable, tenant_id: str, day: dt.date) -> list[BillingLineItem]:
        """Return the stored billing lines of one tenant-date, by ``line_id``."""
        async with self._read(f"reading the billing lines of {tenant_id!r} date {day}") as conn:
            rows = await conn.execute_fetchall(_READ_LINES, (tenant_id, day.isoformat()))
        return [line_from_row(day, r) for r in rows]


def line_from_row(day: dt.date, r: Sequence[object]) -> BillingLineItem:
    """A stored ``billing_lines`` row (the columns :data:`LINE_COLUMNS`) as a line."""
    return BillingLineItem(
        line_id=str(r[0]), date=day, product_type=str(r[1]), product_category=str(r[2]),
        amount=int(r[3]),  # type: ignore[call-overload]
        resource_id=_opt(r[4]), env_id=_opt(r[5]), quantity=_decimal(r[6]), unit=_opt(r[7]),
        unit_price=_decimal(r[8]), original_amount=_opt_int(r[9]),
        discount_amount=_opt_int(r[10]), description=_opt(r[11]),
        attributes=attrs_from_text(_opt(r[12])), error=_opt(r[13]),
    )  # fmt: skip


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
