"""Billing lines built from the rate card and Prometheus quantities, per exact UTC day.

For each cost type ONE ``query_range`` over the whole run answers every cluster and
day. A cluster-day whose quantity has no samples (a scrape gap) gets a line with
``error`` set and no amount: it is reported on the line and in the log, never billed
as zero. So is a day whose rate the card does not set, and a counter that went down
(a broker restart resets it; the day's bytes are unknown).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

import structlog

from chargeback.core.models import BillingLineItem
from chargeback.core.money import to_minor
from chargeback.core.sources.day_range import MIN_PART, PART_LABEL, SCRAPE_GAP, DayRangeQuery
from chargeback.plugins.self_managed_kafka.config import ClusterSettings, SelfManagedKafkaSettings
from chargeback.plugins.self_managed_kafka.costs import CATEGORY, COSTS, CostSpec
from chargeback.plugins.self_managed_kafka.promql import quantity, selector
from chargeback.plugins.self_managed_kafka.rates import RateCard

__all__ = ["SCRAPE_GAP", "KafkaCostInput"]

_log = structlog.get_logger(__name__)

Quantities = dict[tuple[str, dt.date], Decimal]
"""The day's value of one cost type per ``(cluster, day)``."""


class KafkaCostInput:
    """A :class:`~chargeback.core.plugin.protocols.CostInput` for self-managed clusters."""

    def __init__(self, query: DayRangeQuery, settings: SelfManagedKafkaSettings) -> None:
        self._query = query
        self._settings = settings
        self._card = RateCard(settings.rate_card)

    async def gather(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> AsyncIterator[BillingLineItem]:
        """Yield one line per cluster, cost type and day ``start <= day < end``."""
        days = [start + dt.timedelta(days=i) for i in range((end - start).days)]
        for cost in COSTS:
            values = await self.quantities(cost, start, end)
            for day in days:
                for cluster in self._settings.clusters:
                    yield self._line(cost, cluster, day, values.get((cluster.id, day)))

    async def quantities(self, cost: CostSpec, start: dt.date, end: dt.date) -> Quantities:
        """Return the day's value of ``cost`` per cluster and day (one request)."""
        names = self._settings.metrics
        ids = [c.id for c in self._settings.clusters]
        select = selector(cost.series(names), names.cluster_label, ids)
        promql = quantity(cost.kind, select, [names.cluster_label])
        out: Quantities = {}
        smallest: Quantities = {}
        for series in await self._query.days(promql, start, end):
            cluster = series.labels.get(names.cluster_label)
            if cluster is not None:
                into = smallest if series.labels.get(PART_LABEL) == MIN_PART else out
                into.update({(cluster, day): v for day, v in series.values.items()})
        # A counter of one series went down: the day's bytes are unknown; the negative
        # value marks the day for _problem (counter_reset).
        out.update({key: low for key, low in smallest.items() if low < 0 and key in out})
        return out

    def _line(
        self, cost: CostSpec, cluster: ClusterSettings, day: dt.date, value: Decimal | None
    ) -> BillingLineItem:
        rate = self._card.rate(cost.rate, cluster, day)
        error = _problem(cost, cluster, day, value, rate)
        base = BillingLineItem(
            line_id=f"{cluster.id}:{cost.product_type}:{day.isoformat()}",
            date=day,
            product_type=cost.product_type,
            product_category=CATEGORY,
            amount=0,
            resource_id=cluster.id,
            unit=cost.unit,
            unit_price=rate,
            attributes=_attributes(cluster),
        )
        if error is not None or value is None or rate is None:
            _log.warning("billing line not computed", line_id=base.line_id, reason=error)
            return base._replace(error=error)
        quantity = cost.quantity(value)
        return base._replace(amount=to_minor(cost.price(quantity, rate)), quantity=quantity)


def _problem(
    cost: CostSpec,
    cluster: ClusterSettings,
    day: dt.date,
    value: Decimal | None,
    rate: Decimal | None,
) -> str | None:
    if value is None:
        return f"{SCRAPE_GAP}no samples of {cost.metric} for cluster {cluster.id} on {day}" + (
            " or the day before" if cost.kind == "counter_delta" else ""
        )
    if value < 0:
        return f"counter_reset: {cost.metric} of cluster {cluster.id} went down on {day}"
    if rate is None:
        return f"no_rate: the rate card sets no {cost.rate} for cluster {cluster.id} on {day}"
    return None


def _attributes(cluster: ClusterSettings) -> dict[str, str]:
    return {"cluster": cluster.id} | ({"region": cluster.region} if cluster.region else {})
