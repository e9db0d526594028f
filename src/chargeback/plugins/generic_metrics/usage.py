"""Usage per label value and cost type per exact UTC day (the allocation's weights)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import structlog

from chargeback.core.models import MetricQuery, UsageTable
from chargeback.core.sources.day_range import DayRangeQuery
from chargeback.core.sources.values import usage_value
from chargeback.plugins.generic_metrics.config import CostType
from chargeback.plugins.generic_metrics.promql import grouped

__all__ = ["LabelUsageSource"]

_log = structlog.get_logger(__name__)


class LabelUsageSource:
    """A :class:`~chargeback.core.plugin.protocols.MetricsSource`: a usage selector per label.

    The query's key is the cost type's name; one request per cost type for the whole
    range. A negative day value (a counter that went down) is left out of the day's
    usage, with a warning.
    """

    def __init__(self, query: DayRangeQuery, costs: Mapping[str, CostType]) -> None:
        self._query = query
        self._costs = costs

    async def fetch(
        self, query: MetricQuery, resource_ids: Sequence[str], start: dt.date, end: dt.date
    ) -> UsageTable:
        """Return ``(day, resource) -> {label value: weight}`` for ``start <= day < end``."""
        cost = self._costs.get(query.key)
        if start >= end or cost is None or cost.resource_id not in resource_ids:
            return {}
        spec = cost.allocation
        if spec.query is None:
            return {}
        table: UsageTable = {}
        promql = grouped(spec.kind, spec.query, spec.label)
        for series in await self._query.days(promql, start, end):
            who = series.labels.get(spec.label)
            if not who:
                continue
            for day, raw in series.values.items():
                value = usage_value(str(raw), spec.scale)
                if value is None or value < 0:
                    why = "not a number" if value is None else f"counter_reset: {spec.query}"
                    _log.warning(
                        "usage left out", cost_type=cost.name, identity=who, day=str(day),
                        reason=why,
                    )  # fmt: skip
                    continue
                bucket = table.setdefault((day, cost.resource_id), {})
                bucket[who] = bucket.get(who, 0) + value
        return table
