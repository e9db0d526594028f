"""The stored chargeback as daily OpenMetrics history, for ``promtool tsdb create-blocks-from``.

Prometheus holds current state (the ``prometheus`` emitter's series) and the database
holds history (DESIGN §15); this text carries the history into Prometheus::

    chargeback_cost_daily{tenant,identity,product_type,cost_type,env}   a day's cost
    chargeback_billed_daily{tenant}                                       a day's bill
    chargeback_unallocated_daily{tenant}                                  its UNALLOCATED part

in currency units, one sample per calculated day, timestamped at the day's 00:00 UTC.
Values are the exact decimal amounts (nine places; Prometheus reads them as float64).
Each series' samples are in time order, as promtool needs (within a block it drops a
sample not after the previous one, silently), and the text ends with ``# EOF``.

Prometheus looks back 5 minutes from a query's time: a range query with ``step=1d``
starting at a midnight returns one point per day; a dashboard at any other step reads
``last_over_time(chargeback_cost_daily[1d])``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from chargeback.core.money import format_amount
from chargeback.core.query.aggregate import DayTotal, GroupRow

__all__ = ["COST_DIMENSIONS", "FAMILY_LABELS", "DailyHistory", "render_openmetrics"]

COST_DIMENSIONS = ("identity", "product_type", "cost_type", "environment")
"""The dimensions of ``chargeback_cost_daily``, in label order (``env`` is environment)."""

_LABELS = ("identity", "product_type", "cost_type", "env")

FAMILY_LABELS: dict[str, tuple[str, ...]] = {
    "chargeback_cost_daily": ("tenant", *_LABELS),
    "chargeback_billed_daily": ("tenant",),
    "chargeback_unallocated_daily": ("tenant",),
}
"""Every family the export writes and its labels (the dashboard's tests check against it)."""

_TOTAL_FIELDS = {"chargeback_billed_daily": "billed", "chargeback_unallocated_daily": "unallocated"}
"""The per-tenant families and the :class:`DayTotal` field each shows."""

_FAMILIES = (
    ("chargeback_cost_daily", "Chargeback cost of one day, in currency units."),
    ("chargeback_billed_daily", "Billed cost of one day, in currency units."),
    ("chargeback_unallocated_daily", "Cost of one day charged to UNALLOCATED, in currency units."),
)


@dataclass(frozen=True, slots=True)
class DailyHistory:
    """One tenant's daily amounts: cost groups by :data:`COST_DIMENSIONS`, and day totals."""

    tenant: str
    groups: list[GroupRow]
    totals: list[DayTotal]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)


def _timestamp(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def _cost_lines(history: DailyHistory) -> Iterator[str]:
    series: dict[tuple[str, ...], dict[dt.date, int]] = {}
    for group in history.groups:
        points = series.setdefault(group.key, {})
        points[group.day] = points.get(group.day, 0) + group.amount
    for key in sorted(series):
        labels = _labels((("tenant", history.tenant), *zip(_LABELS, key, strict=True)))
        points = series[key]
        for day in sorted(points):
            value = format_amount(points[day])
            yield f"chargeback_cost_daily{{{labels}}} {value} {_timestamp(day)}\n"


def _total_lines(history: DailyHistory, name: str, field: str) -> Iterator[str]:
    labels = _labels([("tenant", history.tenant)])
    for total in sorted(history.totals):
        value = format_amount(getattr(total, field))
        yield f"{name}{{{labels}}} {value} {_timestamp(total.day)}\n"


def render_openmetrics(histories: Iterable[DailyHistory]) -> Iterator[str]:
    """The OpenMetrics text of ``histories`` (one per tenant), in lines, ending ``# EOF``."""
    chosen = list(histories)
    for name, help_ in _FAMILIES:
        yield f"# HELP {name} {help_}\n# TYPE {name} gauge\n"
        for history in chosen:
            if name == "chargeback_cost_daily":
                yield from _cost_lines(history)
            else:
                yield from _total_lines(history, name, _TOTAL_FIELDS[name])
    yield "# EOF\n"
