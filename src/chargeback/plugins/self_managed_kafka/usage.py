"""Bytes per principal and cluster per exact UTC day (the allocation's usage)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from chargeback.core.models import MetricQuery, UsageTable
from chargeback.core.sources.day_range import DayRangeQuery
from chargeback.core.sources.values import usage_value
from chargeback.plugins.self_managed_kafka.promql import expression, selector

__all__ = ["PrincipalBytesSource"]


class PrincipalBytesSource:
    """A :class:`~chargeback.core.plugin.protocols.MetricsSource`: counter deltas per principal.

    One request per query for every cluster and the whole range. A negative delta (a
    counter reset) is left out of the day's usage.
    """

    def __init__(self, query: DayRangeQuery) -> None:
        self._query = query

    async def fetch(
        self, query: MetricQuery, resource_ids: Sequence[str], start: dt.date, end: dt.date
    ) -> UsageTable:
        """Return ``(day, cluster) -> {principal: bytes}`` for ``start <= day < end``."""
        if start >= end or not resource_ids:
            return {}
        select = selector(query.metric, query.resource_label, resource_ids)
        promql = expression("counter_delta", select, [query.resource_label, query.group_by])
        table: UsageTable = {}
        for series in await self._query.days(promql, start, end):
            cluster = series.labels.get(query.resource_label)
            principal = series.labels.get(query.group_by)
            if cluster is None or not principal:
                continue
            for day, raw in series.values.items():
                value = usage_value(str(raw))
                if value is not None and value >= 0:
                    bucket = table.setdefault((day, cluster), {})
                    bucket[principal] = bucket.get(principal, 0) + value
        return table
