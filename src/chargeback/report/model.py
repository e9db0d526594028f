"""A month's showback figures per team: exact sums of the stored rows (DESIGN §5, §17).

Pure arithmetic: the rows come in already keyed by team (each day's ownership
attribution, :mod:`chargeback.core.query.teams`), product type, identity and cost type.
Every figure is an integer of minor units, summed exactly, so each breakdown of a team
(by product type, by identity, by day) adds up to the team's total, and the teams' totals
add up to the month's allocated total.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from chargeback.core.models import CostType
from chargeback.core.query.aggregate import DayTotal
from chargeback.core.query.teams import NOT_ATTRIBUTED

__all__ = [
    "NOT_ATTRIBUTED",
    "Change",
    "MonthFigures",
    "ReportRow",
    "TeamMonth",
    "month_figures",
    "top_changes",
]


class ReportRow(NamedTuple):
    """The sum of one day's rows of one (team, product type, identity, cost type)."""

    day: dt.date
    team: str
    product_type: str
    identity: str
    cost_type: str
    amount: int


def _ranked(sums: Mapping[str, int]) -> dict[str, int]:
    """``sums`` largest first, ties by key (a deterministic order for tables and charts)."""
    return dict(sorted(sums.items(), key=lambda kv: (-kv[1], kv[0])))


def _add(sums: dict[str, int], key: str, amount: int) -> None:
    sums[key] = sums.get(key, 0) + amount


@dataclass(frozen=True, slots=True)
class TeamMonth:
    """One team's month.

    Attributes:
        team: the team (``UNASSIGNED``: no rule matched; ``(not attributed)``: days
            without a current attribution).
        total: the team's cost over the month's calculated days.
        unallocated: the part of ``total`` charged to UNALLOCATED (nobody could be charged).
        by_product: product type -> cost, largest first.
        by_identity: identity -> cost, largest first.
        daily: calculated day -> cost (a calculated day without the team is 0).
        daily_product: calculated day -> product type -> cost.
    """

    team: str
    total: int
    unallocated: int
    by_product: dict[str, int]
    by_identity: dict[str, int]
    daily: dict[dt.date, int]
    daily_product: dict[dt.date, dict[str, int]]


@dataclass(frozen=True, slots=True)
class MonthFigures:
    """A tenant's month: its days, its totals from the stored date states, and every team.

    Attributes:
        month: the month's first day.
        days: every day of the month.
        calculated: the days with a calculation, ascending.
        not_attributed: calculated days whose rows have no current team attribution.
        mismatched: calculated days whose allocated total differs from the billed one.
        billed: the billing lines' total of the calculated days.
        allocated: the chargeback rows' total of those days (equals ``billed``).
        unallocated: the part of ``allocated`` charged to UNALLOCATED.
        teams: team -> its month, largest first.
    """

    month: dt.date
    days: tuple[dt.date, ...]
    calculated: tuple[dt.date, ...]
    not_attributed: tuple[dt.date, ...]
    mismatched: tuple[dt.date, ...]
    billed: int
    allocated: int
    unallocated: int
    teams: dict[str, TeamMonth]

    @property
    def missing(self) -> tuple[dt.date, ...]:
        """The month's days without a calculation (nothing is known of them yet)."""
        done = set(self.calculated)
        return tuple(d for d in self.days if d not in done)

    @property
    def gaps(self) -> tuple[dt.date, ...]:
        """Missing days before the newest calculated day: holes, not the month's future."""
        if not self.calculated:
            return ()
        return tuple(d for d in self.missing if d < self.calculated[-1])

    def team(self, name: str) -> TeamMonth:
        """The team's month (all zero when the team had no cost this month)."""
        found = self.teams.get(name)
        if found is not None:
            return found
        zero = dict.fromkeys(self.calculated, 0)
        return TeamMonth(name, 0, 0, {}, {}, zero, {d: {} for d in self.calculated})


def _team_month(team: str, rows: list[ReportRow], calculated: tuple[dt.date, ...]) -> TeamMonth:
    by_product: dict[str, int] = {}
    by_identity: dict[str, int] = {}
    daily = dict.fromkeys(calculated, 0)
    daily_product: dict[dt.date, dict[str, int]] = {d: {} for d in calculated}
    unallocated = 0
    for row in rows:
        _add(by_product, row.product_type, row.amount)
        _add(by_identity, row.identity, row.amount)
        daily[row.day] = daily.get(row.day, 0) + row.amount
        _add(daily_product.setdefault(row.day, {}), row.product_type, row.amount)
        if row.cost_type == CostType.UNALLOCATED.value:
            unallocated += row.amount
    return TeamMonth(
        team, sum(by_product.values()), unallocated, _ranked(by_product), _ranked(by_identity),
        dict(sorted(daily.items())), {d: _ranked(v) for d, v in sorted(daily_product.items())},
    )  # fmt: skip


def month_figures(
    month: dt.date, days: Iterable[dt.date], rows: Iterable[ReportRow], totals: Iterable[DayTotal]
) -> MonthFigures:
    """Sum a month's rows per team.

    Args:
        month: the month's first day.
        days: every day of the month.
        rows: the month's rows, summed per day and key (days outside ``days`` are ignored).
        totals: the stored totals of each calculated day.
    """
    all_days = tuple(days)
    inside = set(all_days)
    states = sorted((t for t in totals if t.day in inside), key=lambda t: t.day)
    calculated = tuple(t.day for t in states)
    per_team: dict[str, list[ReportRow]] = {}
    for row in rows:
        if row.day in inside:
            per_team.setdefault(row.team, []).append(row)
    teams = {name: _team_month(name, r, calculated) for name, r in per_team.items()}
    unattributed = {r.day for r in per_team.get(NOT_ATTRIBUTED, ())}
    return MonthFigures(
        month=month,
        days=all_days,
        calculated=calculated,
        not_attributed=tuple(sorted(unattributed)),
        mismatched=tuple(t.day for t in states if t.billed != t.allocated),
        billed=sum(t.billed for t in states),
        allocated=sum(t.allocated for t in states),
        unallocated=sum(t.unallocated for t in states),
        teams=dict(sorted(teams.items(), key=lambda kv: (-kv[1].total, kv[0]))),
    )


@dataclass(frozen=True, slots=True)
class Change:
    """One key's cost this month against last month.

    Attributes:
        dimension: ``product_type`` or ``identity``.
        key: the product type or identity.
        current: this month's cost.
        previous: last month's cost.
    """

    dimension: str
    key: str
    current: int
    previous: int

    @property
    def delta(self) -> int:
        """``current - previous``."""
        return self.current - self.previous


def top_changes(current: TeamMonth, previous: TeamMonth, limit: int) -> list[Change]:
    """The ``limit`` largest changes (by size, either way) by product type and by identity."""
    changes: list[Change] = []
    for dimension, now, before in (
        ("product_type", current.by_product, previous.by_product),
        ("identity", current.by_identity, previous.by_identity),
    ):
        for key in now.keys() | before.keys():
            change = Change(dimension, key, now.get(key, 0), before.get(key, 0))
            if change.delta:
                changes.append(change)
    changes.sort(key=lambda c: (-abs(c.delta), c.dimension, c.key))
    return changes[:limit]
