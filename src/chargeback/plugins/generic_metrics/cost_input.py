"""Billing lines of the cost types, per exact UTC day: rate x quantity.

For each cost type ONE ``query_range`` over the whole run answers every day (none for
a ``count_hours`` quantity). A day whose quantity has no samples (a scrape gap) gets a
line with ``error`` set and no amount: it is reported on the line, in the log and in
the run's summary, never billed as zero. So is a day no rate is valid on yet
(``no_rate``), and a counter that went down (``counter_reset``: the day's increase is
unknown).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Context, Decimal, localcontext

import structlog

from chargeback.core.models import BillingLineItem
from chargeback.core.money import to_minor
from chargeback.core.sources.day_range import (
    MIN_PART,
    PART_LABEL,
    SCRAPE_GAP,
    SUM_PART,
    DayRangeQuery,
)
from chargeback.plugins.generic_metrics.config import CostType, GenericMetricsSettings
from chargeback.plugins.generic_metrics.promql import quantity

__all__ = ["COUNTER_RESET", "NO_RATE", "DayQuantity", "MetricsCostInput", "rate_on"]

NO_RATE = "no_rate"
COUNTER_RESET = "counter_reset"
HOURS = 24
_EXACT = Context(prec=80)
"""Enough digits that a power-of-two divisor such as 2**30 never rounds."""

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DayQuantity:
    """A day's measured value: the sum over the series and the smallest series value."""

    total: Decimal
    smallest: Decimal


def rate_on(cost: CostType, day: dt.date) -> Decimal | None:
    """The rate with the latest ``valid_from`` on or before ``day``; ``None`` before the first."""
    valid = [r for r in cost.rates if r.valid_from <= day]
    return max(valid, key=lambda r: r.valid_from).rate if valid else None


class MetricsCostInput:
    """A :class:`~chargeback.core.plugin.protocols.CostInput` pricing Prometheus quantities."""

    def __init__(self, query: DayRangeQuery, settings: GenericMetricsSettings) -> None:
        self._query = query
        self._settings = settings

    async def gather(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> AsyncIterator[BillingLineItem]:
        """Yield one line per cost type and day ``start <= day < end``."""
        days = [start + dt.timedelta(days=i) for i in range((end - start).days)]
        for cost in self._settings.cost_types:
            values = await self.quantities(cost, start, end)
            for day in days:
                yield self._line(cost, day, values.get(day))

    async def quantities(
        self, cost: CostType, start: dt.date, end: dt.date
    ) -> dict[dt.date, DayQuantity]:
        """The measured value of ``cost`` per day (one request; none for a fixed count)."""
        spec = cost.quantity
        if spec.kind == "count_hours":
            assert spec.count is not None  # noqa: S101  (the settings check it)
            fixed = DayQuantity(spec.count * HOURS, spec.count)
            return dict.fromkeys(
                (start + dt.timedelta(days=i) for i in range((end - start).days)), fixed
            )
        assert spec.query is not None  # noqa: S101  (the settings check it)
        parts: dict[str, dict[dt.date, Decimal]] = {}
        for series in await self._query.days(quantity(spec.kind, spec.query), start, end):
            parts[series.labels.get(PART_LABEL, "")] = series.values
        totals, smallest = parts.get(SUM_PART, {}), parts.get(MIN_PART, {})
        return {day: DayQuantity(total, smallest.get(day, total)) for day, total in totals.items()}

    def _line(self, cost: CostType, day: dt.date, value: DayQuantity | None) -> BillingLineItem:
        rate = rate_on(cost, day)
        base = BillingLineItem(
            line_id=f"{cost.name}:{day.isoformat()}",
            date=day,
            product_type=cost.name,
            product_category=cost.category,
            amount=0,
            resource_id=cost.resource_id,
            unit=cost.unit,
            unit_price=rate,
        )
        error = _problem(cost, day, value, rate)
        if error is not None or value is None or rate is None:
            _log.warning("billing line not computed", line_id=base.line_id, reason=error)
            return base._replace(error=error)
        spec = cost.quantity
        with localcontext(_EXACT):
            billed = value.total * spec.multiplier / spec.divisor
            price = billed * rate
        return base._replace(amount=to_minor(price), quantity=billed)


def _problem(
    cost: CostType, day: dt.date, value: DayQuantity | None, rate: Decimal | None
) -> str | None:
    spec = cost.quantity
    if value is None:
        before = " or the day before" if spec.kind == "increase" else ""
        return f"{SCRAPE_GAP}no samples of {spec.query} on {day}{before} ({cost.name})"
    if spec.kind == "increase" and value.smallest < 0:
        return f"{COUNTER_RESET}: a series of {spec.query} went down on {day} ({cost.name})"
    if rate is None:
        first = min(r.valid_from for r in cost.rates)
        return f"{NO_RATE}: cost type {cost.name} has no rate on {day} (its first is from {first})"
    return None
