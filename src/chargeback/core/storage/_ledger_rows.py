"""The usage ledger's rows, the same on every backend (see migration 3 of the core schema).

A cell with usage is one row per principal; a cell fetched with no usage is one row
with ``principal_id ''`` and ``value NULL`` (a principal named ``''`` with a value is
still a principal: the marker is the NULL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

from chargeback.core.ledger.records import UsageCell, UsageEntry

__all__ = ["EMPTY_PRINCIPAL", "entries_of", "rows_of", "span_of"]

EMPTY_PRINCIPAL = ""

LedgerRow = tuple[Any, ...]
"""``(date, query, resource_id, principal_id, value, source, fetched_at)`` as stored."""


def rows_of(
    tenant_id: str,
    entries: Iterable[UsageEntry],
    *,
    day: Callable[[dt.date], Any],
    at: Callable[[dt.datetime], Any],
) -> Iterator[tuple[Any, ...]]:
    """Insert parameters ``(tenant, date, query, resource, principal, value, source, at)``.

    ``day`` and ``at`` encode dates and datetimes for the backend (text for SQLite).

    Raises:
        ValueError: a value is not an ``int``.
    """
    for entry in entries:
        stamp = at(entry.fetched_at)
        date = day(entry.day)
        if not entry.values:
            yield (tenant_id, date, entry.query, entry.resource_id, EMPTY_PRINCIPAL, None,
                   entry.source, stamp)  # fmt: skip
            continue
        for principal, value in sorted(entry.values.items()):
            if type(value) is not int:
                raise ValueError(
                    f"usage of {principal!r} on {entry.resource_id} {entry.day} is "
                    f"{value!r}, not an int"
                )
            yield (tenant_id, date, entry.query, entry.resource_id, principal, value,
                   entry.source, stamp)  # fmt: skip


_CELL = itemgetter(0, 1, 2)


def entries_of(
    rows: Iterable[LedgerRow],
    *,
    day: Callable[[Any], dt.date],
    at: Callable[[Any], dt.datetime],
    queries: Collection[str] | None = None,
    resource_ids: Collection[str] | None = None,
) -> list[UsageEntry]:
    """Group rows ordered by (date, query, resource, principal) into entries."""
    out: list[UsageEntry] = []
    for (date, query, resource), group in groupby(rows, key=_CELL):
        if queries is not None and query not in queries:
            continue
        if resource_ids is not None and resource not in resource_ids:
            continue
        values: dict[str, int] = {}
        source, fetched = "", None
        for row in group:
            principal, value, source, fetched = row[3], row[4], row[5], row[6]
            if value is not None:
                values[str(principal)] = int(value)
        out.append(
            UsageEntry(day(date), str(query), str(resource), values, str(source), at(fetched))
        )
    return out


def span_of(cells: Collection[UsageCell]) -> tuple[dt.date, dt.date] | None:
    """``(first, last)`` dates of ``cells`` (inclusive), ``None`` if there are none."""
    if not cells:
        return None
    days: Sequence[dt.date] = sorted({c.day for c in cells})
    return days[0], days[-1]
