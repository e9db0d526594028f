"""The date commit, the hot path: replace one tenant-date's rows in one transaction.

Rows arrive as :class:`~chargeback.core.models.ChargebackRow` and lines as
:class:`~chargeback.core.models.BillingLineItem` named tuples. Their stored columns
are their fields (:data:`ROW_COLUMNS`, :data:`LINE_COLUMNS`): a field added to
either type is stored once its migration adds the column, with no other change here.
The per-row Python work is a row's fields after its tenant and date behind the
commit's tenant and date text (for a line, its fields behind the tenant, the date as
text, the Decimals and attributes encoded); ``executemany`` does the rest in C. The
whole transaction runs on the connection's thread in one call (:func:`write_commit`),
or in the writer child (:mod:`._writer`).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter

from chargeback.core.models import UNALLOCATED, BillingLineItem, ChargebackRow
from chargeback.core.plugin.protocols import PluginRows
from chargeback.core.storage._transaction import (
    CORE_TABLES,
    Batch,
    StateRecord,
    write_transaction,
)
from chargeback.core.storage._util import (
    attrs_to_text,
    check_identifier,
    datetime_from_text,
    datetime_to_text,
)
from chargeback.core.storage.backend import DateState

__all__ = [
    "CORE_TABLES",
    "LINE_COLUMNS",
    "ROW_COLUMNS",
    "PreparedCommit",
    "date_state_of",
    "prepare_commit",
    "write_commit",
]

ROW_COLUMNS: tuple[str, ...] = ChargebackRow._fields
"""The ``chargeback_rows`` columns a commit writes: the row type's fields."""
LINE_COLUMNS: tuple[str, ...] = ("tenant_id", *BillingLineItem._fields)
"""The ``billing_lines`` columns a commit writes: the tenant, then the line's fields."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ROW_KEY = ("tenant_id", "date")
"""A chargeback row's leading fields, the same for every row of a commit: its parameters
are the commit's tenant and date text followed by the row's other fields."""
if ChargebackRow._fields[: len(_ROW_KEY)] != _ROW_KEY:  # pragma: no cover - a type changed
    raise TypeError(f"ChargebackRow must start with the fields {_ROW_KEY}")
_row_tenant = attrgetter("tenant_id")
_row_date = attrgetter("date")
_row_tenant_and_date = attrgetter("tenant_id", "date")
_row_amount = attrgetter("amount")


def _opt_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


_LINE_ENCODERS: dict[str, Callable[..., object]] = {
    "quantity": _opt_text,  # Decimals are stored as exact text
    "unit_price": _opt_text,
    "attributes": attrs_to_text,  # canonical JSON
}
"""How a line's fields that SQLite cannot bind as they are get stored (the date aside)."""
_ENCODE_AT = tuple((LINE_COLUMNS.index(name), fn) for name, fn in _LINE_ENCODERS.items())
_LINE_DATE = LINE_COLUMNS.index("date")


@dataclass(frozen=True, slots=True)
class PreparedCommit:
    """The parameters of one date commit, built before the transaction opens.

    Attributes:
        tenant_id: the tenant.
        day: the date.
        batches: one per table (billing lines, chargeback rows, each plugin table).
        state: the ``date_state`` values the commit writes.
    """

    tenant_id: str
    day: dt.date
    batches: list[Batch]
    state: StateRecord


def _line_params(tenant_id: str, day: dt.date, lines: Sequence[BillingLineItem]) -> Batch:
    day_text = day.isoformat()
    params: list[tuple[object, ...]] = []
    append = params.append
    for line in lines:
        if line.date != day:
            raise ValueError(
                f"billing line {line.line_id!r} is dated {line.date}, but the commit is for "
                f"{day}; commit each date's lines separately"
            )
        values: list[object] = [tenant_id, *line]
        values[_LINE_DATE] = day_text
        for at, encode in _ENCODE_AT:
            values[at] = encode(values[at])
        append(tuple(values))
    return Batch("billing_lines", LINE_COLUMNS, params)


def _row_insert(tenant_id: str, day: dt.date, rows: Sequence[ChargebackRow]) -> Batch:
    """Check the rows belong to the commit and fit 64 bits; build their parameters."""
    if rows:
        # Two C passes without a pair per row.
        if set(map(_row_tenant, rows)) != {tenant_id} or set(map(_row_date, rows)) != {day}:
            keys = set(map(_row_tenant_and_date, rows))
            wrong = sorted((t, str(d)) for t, d in keys if (t, d) != (tenant_id, day))
            raise ValueError(
                f"chargeback rows for {wrong[:3]} were passed to the commit of tenant "
                f"{tenant_id!r} date {day}; commit each tenant-date's rows separately"
            )
        amounts = list(map(_row_amount, rows))
        if min(amounts) < _INT64_MIN or max(amounts) > _INT64_MAX:
            raise ValueError(
                f"a chargeback row amount of tenant {tenant_id!r} date {day} does not fit "
                "a 64-bit integer of minor units"
            )
    key, width = (tenant_id, day.isoformat()), len(_ROW_KEY)
    return Batch("chargeback_rows", ROW_COLUMNS, [key + r[width:] for r in rows])


_PLAIN = frozenset({str, int, float, bytes, type(None)})
"""Cell types SQLite binds as they are."""


def _adapt(value: object) -> object:
    """Encode a plugin cell: dates and datetimes as ISO text, Decimals as exact text."""
    if isinstance(value, dt.datetime):
        return datetime_to_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _plugin_inserts(tenant_id: str, day: dt.date, plugin_rows: Sequence[PluginRows]) -> list[Batch]:
    """Build one :class:`Batch` per PluginRows.

    ``tenant_id`` and ``date`` are prepended when the plugin leaves them out of
    ``columns``; when it includes them they must match the commit's tenant and date.
    """
    day_text = day.isoformat()
    batches: list[Batch] = []
    for block in plugin_rows:
        table = check_identifier(block.table, "plugin table")
        if table in CORE_TABLES:
            raise ValueError(f"plugin rows may not target the core table {table!r}")
        given = [check_identifier(c, f"column of plugin table {table!r}") for c in block.columns]
        fixed = {"tenant_id": tenant_id, "date": day_text}
        prefix = tuple(v for c, v in fixed.items() if c not in given)
        columns = (*(c for c in fixed if c not in given), *given)
        tenant_at, date_at = columns.index("tenant_id"), columns.index("date")
        params: list[tuple[object, ...]] = []
        for row in block.rows:
            values = tuple(row) if _PLAIN.issuperset(map(type, row)) else tuple(map(_adapt, row))
            if len(values) != len(given):
                raise ValueError(
                    f"a row for plugin table {table!r} has {len(row)} values, expected "
                    f"{len(given)} (columns {block.columns})"
                )
            full = prefix + values
            tenant, date = full[tenant_at], full[date_at]
            if tenant != tenant_id or date != day_text:
                raise ValueError(
                    f"a row for plugin table {table!r} is for tenant {tenant!r} date "
                    f"{date!r}, but the commit is for tenant {tenant_id!r} date {day}"
                )
            params.append(full)
        batches.append(Batch(table, columns, params))
    return batches


def prepare_commit(
    tenant_id: str,
    day: dt.date,
    *,
    lines: Sequence[BillingLineItem],
    rows: Sequence[ChargebackRow],
    plugin_rows: Sequence[PluginRows],
    billing_fingerprint: str,
    settings_fingerprint: str,
    inventory_fingerprint: str,
    calculated_at: dt.datetime,
) -> PreparedCommit:
    """Validate the inputs and build every parameter tuple (no I/O).

    Raises:
        ValueError: a line, row or plugin row belongs to another tenant or date, or a
            plugin table or column name is not a plain identifier.
    """
    batches = [
        _line_params(tenant_id, day, lines),
        _row_insert(tenant_id, day, rows),
        *_plugin_inserts(tenant_id, day, plugin_rows),
    ]
    state = StateRecord(
        tenant_id=tenant_id,
        date=day.isoformat(),
        billing_fingerprint=billing_fingerprint,
        settings_fingerprint=settings_fingerprint,
        inventory_fingerprint=inventory_fingerprint,
        calculated_at=datetime_to_text(calculated_at),
        line_count=len(lines),
        row_count=len(rows),
        billed_total=sum(line.amount for line in lines),
        allocated_total=sum(map(_row_amount, rows)),
        unallocated_total=sum(r.amount for r in rows if r.identity_id == UNALLOCATED),
    )
    return PreparedCommit(tenant_id, day, batches, state)


def write_commit(conn: sqlite3.Connection, prepared: PreparedCommit) -> int:
    """Run one date commit as a whole transaction, on the connection's own thread.

    ``BEGIN IMMEDIATE``, the deletes, the inserts, the ``date_state`` upsert and
    ``COMMIT`` run back to back in one call (:func:`~._transaction.write_transaction`):
    a statement does not wait for the event loop (busy allocating the next date) to
    send the next one. Any error rolls the transaction back and is raised. Returns
    the new ``calc_seq``.
    """
    return write_transaction(conn, prepared.batches, prepared.state)


def date_state_of(prepared: PreparedCommit, calc_seq: int) -> DateState:
    """Return the :class:`DateState` a successful commit of ``prepared`` stored."""
    state = prepared.state
    return DateState(
        day=prepared.day,
        billing_fingerprint=state.billing_fingerprint,
        settings_fingerprint=state.settings_fingerprint,
        inventory_fingerprint=state.inventory_fingerprint,
        calc_seq=calc_seq,
        calculated_at=datetime_from_text(state.calculated_at),
        line_count=state.line_count,
        row_count=state.row_count,
        billed_total=state.billed_total,
        allocated_total=state.allocated_total,
        unallocated_total=state.unallocated_total,
    )
