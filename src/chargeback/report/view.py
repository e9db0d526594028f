"""What a report says, as data both renderers share (HTML and CSV say the same figures).

A table keeps every key it cannot show in one ``N others`` line, so each table still
sums to the team's total exactly; the day-by-day chart stacks the largest product types
and folds the rest the same way. The state of the month (days not calculated yet,
holes, days without a current attribution, days that do not reconcile) becomes
:attr:`ReportView.problems` (the figures they touch are not complete) or
:attr:`ReportView.notes` (honest, but worth knowing).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from chargeback.core.budgets import BudgetStatus, Forecast
from chargeback.report.model import NOT_ATTRIBUTED, Change, MonthFigures, TeamMonth, top_changes
from chargeback.report.read import ShowbackReport
from chargeback.service.ui.charts import Chart, stacked_columns

__all__ = ["Line", "ReportView", "TeamView", "build_view"]

TABLE_ROWS = 25
"""Keys a table shows before folding the rest into one line."""
CHART_SERIES = 6
"""Product types the day-by-day chart stacks before folding the rest."""
CHANGES = 10
"""Changes against last month a team's section lists."""
OTHER_PRODUCTS = "other products"


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a table: a key, its display name and its cost."""

    key: str
    name: str
    amount: int
    folded: int = 0
    """How many keys this line stands for (``0``: just ``key``)."""


@dataclass(frozen=True, slots=True)
class TeamView:
    """One team's section."""

    team: TeamMonth
    previous: TeamMonth
    share_of_tenant: int
    """The month's allocated total, the team's share is ``team.total`` of."""
    by_product: tuple[Line, ...]
    by_identity: tuple[Line, ...]
    chart: Chart
    days: tuple[dt.date, ...]
    missing_days: frozenset[str]
    changes: tuple[Change, ...]
    budgets: tuple[BudgetStatus, ...]
    forecast: Forecast | None

    @property
    def anchor(self) -> str:
        """The section's HTML id."""
        return "team-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in self.team.team)


@dataclass(frozen=True, slots=True)
class ReportView:
    """The report: its teams, the tenant's totals, and what is incomplete."""

    report: ShowbackReport
    teams: tuple[TeamView, ...]
    problems: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def current(self) -> MonthFigures:
        """The month."""
        return self.report.current


def _lines(sums: Mapping[str, int], names: Mapping[str, str], limit: int) -> tuple[Line, ...]:
    keys = list(sums)
    shown = [Line(k, names.get(k, ""), sums[k]) for k in keys[:limit]]
    rest = keys[limit:]
    if rest:
        shown.append(Line(f"{len(rest)} others", "", sum(sums[k] for k in rest), len(rest)))
    return tuple(shown)


def _chart(team: TeamMonth, days: tuple[dt.date, ...]) -> Chart:
    top = list(team.by_product)[:CHART_SERIES]
    folded = len(team.by_product) > CHART_SERIES
    values: dict[str, dict[str, int]] = {}
    for day in days:
        per = team.daily_product.get(day, {})
        column = {p: per[p] for p in top if p in per}
        rest = sum(v for p, v in per.items() if p not in column)
        if rest:
            column[OTHER_PRODUCTS] = rest
        values[day.isoformat()] = column
    return stacked_columns(values, series=(*top, *([OTHER_PRODUCTS] if folded else [])))


def _team_view(report: ShowbackReport, name: str) -> TeamView:
    team = report.current.team(name)
    previous = report.previous.team(name)
    budget = report.budgets.get(name)
    return TeamView(
        team=team,
        previous=previous,
        share_of_tenant=report.current.allocated,
        by_product=_lines(team.by_product, {}, TABLE_ROWS),
        by_identity=_lines(team.by_identity, report.names, TABLE_ROWS),
        chart=_chart(team, report.current.days),
        days=report.current.days,
        missing_days=frozenset(d.isoformat() for d in report.current.missing),
        changes=tuple(top_changes(team, previous, CHANGES)),
        budgets=() if budget is None else budget.budgets,
        forecast=None if budget is None else budget.forecast,
    )


def _days(days: tuple[dt.date, ...]) -> str:
    if len(days) <= 3:
        return ", ".join(d.isoformat() for d in days)
    return f"{days[0]} .. {days[-1]} ({len(days)} days)"


def _state(m: MonthFigures) -> tuple[list[str], list[str]]:
    problems, notes = [], []
    if m.gaps:
        problems.append(f"days not calculated before the newest one: {_days(m.gaps)}")
    if m.not_attributed:
        problems.append(
            f"days without a current team attribution (their cost is under "
            f"{NOT_ATTRIBUTED!r}): {_days(m.not_attributed)}"
        )
    if m.mismatched:
        problems.append(f"days whose allocated total differs from the bill: {_days(m.mismatched)}")
    future = [d for d in m.missing if d not in set(m.gaps)]
    if future:
        notes.append(
            f"month in progress: {len(m.calculated)} of {len(m.days)} days calculated; "
            f"not yet: {_days(tuple(future))}"
        )
    return problems, notes


def build_view(report: ShowbackReport) -> ReportView:
    """The report as its renderers show it."""
    problems, notes = _state(report.current)
    prev = report.previous
    if len(prev.calculated) != len(prev.days):
        notes.append(
            f"last month ({prev.month:%Y-%m}) has {len(prev.calculated)} of {len(prev.days)} "
            "days calculated: its figures, and the changes against it, cover those days only"
        )
    teams = tuple(_team_view(report, t) for t in report.teams)
    return ReportView(report, teams, tuple(problems), tuple(notes))
