"""Pure budget arithmetic: a team's month so far, its forecast and the thresholds crossed.

Every amount is in integer minor units (DESIGN §5). The forecast is an estimate, not an
allocation: it is rounded half-to-even to a minor unit once, at the end.

Forecast (stated in the README): ``observed`` are the month's days that are calculated
and attributed up to ``as_of``; ``spent`` is the team's sum over them. The run-rate is the
mean of the team's amount over the last ``forecast_days`` observed days (a day without the
team counts as 0). Every other day of the month (the days after ``as_of`` and any day not
observed yet) is assumed to cost the run-rate::

    forecast = spent + rate * unobserved_days
    low      = spent + min(last N days) * unobserved_days
    high     = spent + max(last N days) * unobserved_days
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from chargeback.core.budgets.config import BudgetRule

__all__ = [
    "BudgetStatus",
    "Forecast",
    "ThresholdStatus",
    "evaluate_budget",
    "forecast_month",
    "month_days",
]


def month_days(month: dt.date) -> list[dt.date]:
    """Every date of ``month``'s calendar month."""
    count = calendar.monthrange(month.year, month.month)[1]
    return [dt.date(month.year, month.month, d) for d in range(1, count + 1)]


def _round_half_even(value: Fraction) -> int:
    return round(value)  # Fraction.__round__ rounds half to even


@dataclass(frozen=True, slots=True)
class Forecast:
    """A team's month-end estimate (minor units) and what it was made from.

    Attributes:
        spent: the team's total over the observed days.
        point: the month-end estimate; ``None`` when no day of the month is observed.
        low: ``spent`` plus the cheapest of the rate's days for every unobserved day.
        high: ``spent`` plus the dearest of the rate's days for every unobserved day.
        observed_days: days of the month with committed, attributed data (up to as_of).
        unobserved_days: the rest of the month, estimated at the run-rate.
        rate_days: the days the run-rate is the mean of.
    """

    spent: int
    point: int | None
    low: int | None
    high: int | None
    observed_days: int
    unobserved_days: int
    rate_days: tuple[dt.date, ...]


def forecast_month(
    daily: Mapping[dt.date, int], observed: Sequence[dt.date], month: dt.date, last_n: int
) -> Forecast:
    """Forecast one team's month from its amount on each observed day.

    Args:
        daily: the team's amount per date (a missing observed date counts as 0).
        observed: the month's dates with committed, attributed data.
        month: any date of the month.
        last_n: the run-rate's number of days.
    """
    days = sorted(d for d in observed if d.year == month.year and d.month == month.month)
    spent = sum(daily.get(d, 0) for d in days)
    unobserved = len(month_days(month)) - len(days)
    if not days:
        return Forecast(spent, None, None, None, 0, unobserved, ())
    rate_days = tuple(days[-last_n:])
    amounts = [daily.get(d, 0) for d in rate_days]
    rate = Fraction(sum(amounts), len(amounts))
    return Forecast(
        spent=spent,
        point=spent + _round_half_even(rate * unobserved),
        low=spent + min(amounts) * unobserved,
        high=spent + max(amounts) * unobserved,
        observed_days=len(days),
        unobserved_days=unobserved,
        rate_days=rate_days,
    )


@dataclass(frozen=True, slots=True)
class ThresholdStatus:
    """One threshold of a budget: crossed or not, and on which day it was first crossed."""

    percent: Decimal
    crossed: bool
    crossed_on: dt.date | None


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A budget evaluated on the committed data of one month.

    Attributes:
        rule: the budget.
        month: the first day of the month.
        as_of: the newest observed date (``None``: none yet).
        forecast: the team's forecast (``forecast.spent`` is what was spent).
        thresholds: every threshold, in order.
        forecast_crossed: the forecast reaches ``forecast_threshold`` (``None``: no
            forecast threshold, or no forecast yet).
        missing_days: dates up to ``as_of`` that are not calculated or not attributed:
            the spend excludes them (so it may be low), and the forecast estimates them.
    """

    rule: BudgetRule
    month: dt.date
    as_of: dt.date | None
    forecast: Forecast
    thresholds: tuple[ThresholdStatus, ...]
    forecast_crossed: bool | None
    missing_days: tuple[dt.date, ...]

    @property
    def spent_ratio(self) -> Fraction:
        """Spent over the budget's amount (exact)."""
        return Fraction(self.forecast.spent, self.rule.amount_minor)


def _reaches(amount: int, budget: int, percent: Decimal) -> bool:
    return Fraction(amount) * 100 >= Fraction(budget) * Fraction(percent)


def _thresholds(
    rule: BudgetRule, daily: Mapping[dt.date, int], days: Sequence[dt.date]
) -> tuple[ThresholdStatus, ...]:
    budget = rule.amount_minor
    out = []
    for percent in rule.thresholds:
        crossed_on = None
        running = 0
        for day in days:
            running += daily.get(day, 0)
            if _reaches(running, budget, percent):
                crossed_on = day
                break
        out.append(ThresholdStatus(percent, crossed_on is not None, crossed_on))
    return tuple(out)


def evaluate_budget(
    rule: BudgetRule,
    daily: Mapping[dt.date, int],
    observed: Sequence[dt.date],
    month: dt.date,
    *,
    last_n: int,
) -> BudgetStatus:
    """Evaluate ``rule`` on its team's amount per observed date of ``month``.

    A threshold is crossed once the running total of the observed days reaches it; its
    day is the first observed day on which it did (a restated bill may move it).
    """
    first = month.replace(day=1)
    days = sorted(d for d in observed if d.year == first.year and d.month == first.month)
    forecast = forecast_month(daily, days, first, last_n)
    as_of = days[-1] if days else None
    missing = (
        ()
        if as_of is None
        else tuple(d for d in month_days(first) if d <= as_of and d not in set(days))
    )
    crossed = None
    if rule.forecast_threshold is not None and forecast.point is not None:
        crossed = _reaches(forecast.point, rule.amount_minor, rule.forecast_threshold)
    return BudgetStatus(
        rule, first, as_of, forecast, _thresholds(rule, daily, days), crossed, missing
    )
