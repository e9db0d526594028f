"""Budgets and forecasts of a tenant's month, read from the stored team totals.

The only inputs are committed data: the team totals the ownership step stores per
attributed tenant-date (DESIGN §14). A date that is calculated but not attributed is not
observed: it is reported missing and estimated like a future day, never guessed as 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from chargeback.core.budgets.config import BudgetSettings
from chargeback.core.budgets.evaluate import (
    BudgetStatus,
    Forecast,
    evaluate_budget,
    forecast_month,
    month_days,
)
from chargeback.core.storage.backend import StorageBackend
from chargeback.core.storage.ownership import ownership_store

__all__ = ["MonthView", "current_month", "read_month"]


@dataclass(frozen=True, slots=True)
class MonthView:
    """One tenant-month: each team's amount per observed date, and its budgets.

    Attributes:
        tenant: the tenant.
        month: the month's first day.
        observed: attributed dates of the month, ascending.
        daily: team -> date -> amount (minor units; every dimension summed).
        budgets: the tenant's budgets evaluated on the month.
    """

    tenant: str
    month: dt.date
    observed: tuple[dt.date, ...]
    daily: dict[str, dict[dt.date, int]]
    budgets: tuple[BudgetStatus, ...]
    last_n: int

    def forecasts(self) -> dict[str, Forecast]:
        """Every team's forecast, by team name."""
        return {
            team: forecast_month(amounts, self.observed, self.month, self.last_n)
            for team, amounts in sorted(self.daily.items())
        }


async def current_month(storage: StorageBackend, tenant: str) -> dt.date | None:
    """The first day of the month of the tenant's newest calculated date (``None``: none)."""
    latest = await storage.latest_calculated_date(tenant)
    return None if latest is None else latest.replace(day=1)


async def read_month(
    storage: StorageBackend, tenant: str, month: dt.date, settings: BudgetSettings
) -> MonthView:
    """Read ``month``'s team totals of ``tenant`` and evaluate its budgets on them."""
    first = month.replace(day=1)
    end = month_days(first)[-1] + dt.timedelta(days=1)
    totals = await ownership_store(storage).team_totals(tenant, first, end)
    daily: dict[str, dict[dt.date, int]] = {}
    for day, rows in totals.items():
        for row in rows:
            team = daily.setdefault(row.team, {})
            team[day] = team.get(day, 0) + row.amount
    observed = tuple(sorted(totals))
    budgets = tuple(
        evaluate_budget(rule, daily.get(rule.team, {}), observed, first,
                        last_n=settings.forecast_days)
        for rule in settings.for_tenant(tenant)
    )  # fmt: skip
    return MonthView(tenant, first, observed, daily, budgets, settings.forecast_days)
