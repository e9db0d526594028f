"""The period series of ``/metrics`` (DESIGN §16), from storage, per tenant.

``chargeback_period_closed{tenant,period}``   gauge: 1 when every calculated day of the
                                              billing period (``YYYY-MM``) is closed, else 0
``chargeback_restatements_total{tenant}``     counter: restatements of closed days, ever
                                              (stored, so a restart keeps counting on)

The collector serves a snapshot; :meth:`PeriodMetrics.refresh` rebuilds a tenant's part
from storage after each run and at start-up. Periods are months: a tenant has a dozen a
year, so the label set stays small.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from chargeback.core.storage.backend import StorageBackend

__all__ = ["PeriodMetrics", "month_statuses"]


def month_statuses(days: dict[dt.date, str]) -> dict[str, bool]:
    """``YYYY-MM`` -> whether every day of it in ``days`` is closed."""
    months: dict[str, bool] = {}
    for day, status in days.items():
        key = f"{day.year:04d}-{day.month:02d}"
        months[key] = months.get(key, True) and status == "closed"
    return months


class PeriodMetrics(Collector):
    """Collector of the period series (registered in the daemon's registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._closed: dict[str, dict[str, bool]] = {}
        self._restatements: dict[str, int] = {}
        registry.register(self)

    async def refresh(self, storage: StorageBackend, tenant_id: str) -> None:
        """Rebuild ``tenant_id``'s series (and every tenant's restatement count) from storage."""
        days = await storage.period_statuses(tenant_id, dt.date.min, dt.date.max)
        counts = await storage.restatement_counts()
        self._closed[tenant_id] = month_statuses(days)
        self._restatements[tenant_id] = counts.get(tenant_id, 0)

    def forget(self, tenant_id: str) -> None:
        """Drop a removed tenant's series."""
        self._closed.pop(tenant_id, None)
        self._restatements.pop(tenant_id, None)

    def collect(self) -> Iterator[Metric]:
        """Yield the snapshot; never touches storage."""
        closed = GaugeMetricFamily(
            "chargeback_period_closed",
            "1 when every calculated day of the billing period (month) is closed, else 0.",
            labels=("tenant", "period"),
        )
        restated = CounterMetricFamily(
            "chargeback_restatements",
            "Closed days whose bill changed and that were reopened.",
            labels=("tenant",),
        )
        for tenant in sorted(self._closed):
            for period, is_closed in sorted(self._closed[tenant].items()):
                closed.add_metric([tenant, period], 1.0 if is_closed else 0.0)
            restated.add_metric([tenant], float(self._restatements.get(tenant, 0)))
        yield closed
        yield restated
