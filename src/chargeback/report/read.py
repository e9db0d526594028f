"""Read a showback report's figures from storage: the month, the month before, budgets.

Everything comes from committed data: the chargeback rows grouped per day by product
type, identity and attribution key, each day's team from its current attribution
(:func:`chargeback.core.query.teams.current_teams`; a day without one is
``(not attributed)``, never guessed), the stored date states for the billed and allocated
totals, and the budgets and forecasts of :mod:`chargeback.core.budgets` (evaluated on the
stored team totals, as ``/api/v1/budgets`` does).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from chargeback.core.budgets import BudgetSettings, BudgetStatus, Forecast, month_days, read_month
from chargeback.core.query import Step, Window, query_source
from chargeback.core.query.aggregate import DayTotal
from chargeback.core.query.source import QuerySource
from chargeback.core.query.teams import current_teams, source_dimensions, team_groups
from chargeback.core.storage.backend import StorageBackend
from chargeback.report.model import MonthFigures, ReportRow, month_figures

__all__ = ["ShowbackReport", "TeamBudget", "previous_month", "read_report"]

_DIMENSIONS = ("team", "product_type", "identity")


def previous_month(month: dt.date) -> dt.date:
    """The first day of the month before ``month``'s."""
    return (month.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


@dataclass(frozen=True, slots=True)
class TeamBudget:
    """A team's budgets and forecast of the month (``forecast`` ``None``: no day observed)."""

    budgets: tuple[BudgetStatus, ...]
    forecast: Forecast | None


@dataclass(frozen=True, slots=True)
class ShowbackReport:
    """Everything one report shows.

    Attributes:
        tenant: the tenant.
        currency: the bill's currency.
        team: the team asked for (``None``: every team).
        current: the month.
        previous: the month before (for the changes).
        budgets: team -> its budgets and forecast.
        forecast_days: the forecast's run-rate days (the method is in the README).
        names: display names of the identities.
    """

    tenant: str
    currency: str
    team: str | None
    current: MonthFigures
    previous: MonthFigures
    budgets: dict[str, TeamBudget]
    forecast_days: int
    names: dict[str, str]

    @property
    def teams(self) -> list[str]:
        """The teams the report has a section for, largest first."""
        if self.team is not None:
            return [self.team]
        return list(self.current.teams)


async def read_figures(
    storage: StorageBackend, source: QuerySource, tenant: str, month: dt.date
) -> MonthFigures:
    """One month of a tenant, every team."""
    days = month_days(month)
    window = Window(days[0], days[-1] + dt.timedelta(days=1))
    states = await storage.get_date_states(tenant, window.start, window.end)
    asked = source_dimensions(_DIMENSIONS)
    groups = await source.allocation_groups(tenant, window, Step.DAY, asked, ())
    teams = await current_teams(storage, tenant, states)
    rows = [
        ReportRow(g.day, g.key[0], g.key[1], g.key[2], g.cost_type, g.amount)
        for g in team_groups(groups, asked, _DIMENSIONS, teams, ())
    ]
    totals = [
        DayTotal(s.day, s.billed_total, s.allocated_total, s.unallocated_total)
        for s in states.values()
    ]
    return month_figures(days[0], days, rows, totals)


async def read_report(
    storage: StorageBackend,
    tenant: str,
    month: dt.date,
    *,
    team: str | None,
    budgets: BudgetSettings,
    currency: str,
) -> ShowbackReport:
    """Read the report of ``tenant``'s ``month`` (one ``team``, or every team)."""
    source = query_source(storage)
    current = await read_figures(storage, source, tenant, month)
    previous = await read_figures(storage, source, tenant, previous_month(month))
    view = await read_month(storage, tenant, month, budgets)
    forecasts = view.forecasts()
    teams = [team] if team is not None else list(current.teams)
    per_team = {
        name: TeamBudget(tuple(b for b in view.budgets if b.rule.team == name), forecasts.get(name))
        for name in teams
    }
    identities = {i for t in (*current.teams.values(), *previous.teams.values())
                  for i in t.by_identity}  # fmt: skip
    names = await source.display_names(tenant, identities)
    return ShowbackReport(
        tenant, currency, team, current, previous, per_team, budgets.forecast_days, names
    )
