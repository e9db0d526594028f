"""The budget and forecast series of ``/metrics`` (DESIGN §17), from storage, per tenant.

``chargeback_budget_amount{tenant,budget,team}``       gauge: the budget's monthly amount
                                                       (currency units)
``chargeback_budget_spent_ratio{tenant,budget,team}``  gauge: spent this month / amount
``chargeback_forecast_month_end{tenant,team}``         gauge: the team's month-end forecast
                                                       (currency units; method: README)

"This month" is the month of the tenant's newest calculated date. Labels are bounded:
budgets come from the settings, teams from the ownership rules. The collector serves a
snapshot; :meth:`BudgetMetrics.refresh` rebuilds a tenant's part after each run and at
start-up, never during a scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from chargeback.core.budgets import BudgetSettings, MonthView, current_month, read_month
from chargeback.core.money import MINOR_UNITS_PER_UNIT
from chargeback.core.storage.backend import StorageBackend

__all__ = ["BudgetMetrics"]


class BudgetMetrics(Collector):
    """Collector of the budget series (registered in the daemon's registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.settings = BudgetSettings()
        self._views: dict[str, MonthView] = {}
        registry.register(self)

    def configure(self, settings: BudgetSettings) -> None:
        """Use ``settings``' budgets from the next refresh on (start-up and SIGHUP)."""
        self.settings = settings

    async def refresh(self, storage: StorageBackend, tenant_id: str) -> None:
        """Re-evaluate ``tenant_id``'s current month from storage."""
        month = await current_month(storage, tenant_id)
        if month is None:
            self._views.pop(tenant_id, None)
            return
        self._views[tenant_id] = await read_month(storage, tenant_id, month, self.settings)

    def forget(self, tenant_id: str) -> None:
        """Drop a removed tenant's series."""
        self._views.pop(tenant_id, None)

    def collect(self) -> Iterator[Metric]:
        """Yield the snapshot; never touches storage."""
        labels = ("tenant", "budget", "team")
        amount = GaugeMetricFamily(
            "chargeback_budget_amount", "The budget's amount per month, in currency units.",
            labels=labels,
        )  # fmt: skip
        ratio = GaugeMetricFamily(
            "chargeback_budget_spent_ratio",
            "Spent in the current month (committed days) over the budget's amount.",
            labels=labels,
        )
        forecast = GaugeMetricFamily(
            "chargeback_forecast_month_end",
            "The team's forecast spend at the end of the current month, in currency units.",
            labels=("tenant", "team"),
        )
        for tenant, view in sorted(self._views.items()):
            for status in view.budgets:
                key = [tenant, status.rule.name, status.rule.team]
                amount.add_metric(key, status.rule.amount_minor / MINOR_UNITS_PER_UNIT)
                ratio.add_metric(key, float(status.spent_ratio))
            for team, fc in view.forecasts().items():
                if fc.point is not None:
                    forecast.add_metric([tenant, team], fc.point / MINOR_UNITS_PER_UNIT)
        yield amount
        yield ratio
        yield forecast
