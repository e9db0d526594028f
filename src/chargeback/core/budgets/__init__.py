"""Budgets and month-end forecasts per team (DESIGN §17), on committed data.

- :mod:`.config`: the ``budgets`` settings (a monthly amount per tenant and team, with
  spend thresholds and a forecast threshold).
- :mod:`.evaluate`: the pure arithmetic (spent, thresholds crossed and when, the
  forecast and its interval; the method is in its docstring and the README).
- :mod:`.read`: a tenant-month read from the stored team totals, budgets evaluated.

The daemon evaluates every tenant's current month after each run
(:mod:`chargeback.service.budget_metrics`); ``/api/v1/budgets`` and ``/forecast``
evaluate the month asked for on each request.
"""

from chargeback.core.budgets.config import BudgetRule, BudgetSettings
from chargeback.core.budgets.evaluate import (
    BudgetStatus,
    Forecast,
    ThresholdStatus,
    evaluate_budget,
    forecast_month,
    month_days,
)
from chargeback.core.budgets.read import MonthView, current_month, read_month

__all__ = [
    "BudgetRule",
    "BudgetSettings",
    "BudgetStatus",
    "Forecast",
    "MonthView",
    "ThresholdStatus",
    "current_month",
    "evaluate_budget",
    "forecast_month",
    "month_days",
    "read_month",
]
