"""The rule tester's report: what every identity and resource maps to, and what leaks.

``chargeback ownership`` builds an :class:`OwnershipReport` from the stored inventory
and the stored keys of the last 30 days (:func:`build_report`) and prints
:func:`render_report`. The same rules decide here as in the daemon (a
:class:`~chargeback.core.ownership.matcher.Matcher`), so what the tester says is
what attribution will do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chargeback.core.models import Identity, Resource
from chargeback.core.money import format_amount
from chargeback.core.ownership.matcher import Decision, Key, Matcher
from chargeback.core.ownership.rules import LEVELS, UNASSIGNED
from chargeback.core.ownership.store import OwnershipStore
from chargeback.core.storage.backend import StorageBackend

__all__ = [
    "OwnershipReport",
    "SubjectLine",
    "UnmappedCost",
    "WindowTeams",
    "build_report",
    "render_report",
    "window_teams",
]

DayKeys = Mapping[Key, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class SubjectLine:
    """One identity or resource, and what it maps to on the report's date."""

    subject_id: str
    subject_type: str
    name: str
    active: bool
    decision: Decision


@dataclass(frozen=True, slots=True)
class UnmappedCost:
    """An identity whose cost (some of it) no rule assigns to a team."""

    identity_id: str
    name: str
    amount: int


@dataclass(frozen=True, slots=True)
class OwnershipReport:
    """The tester's findings for one tenant and date.

    Attributes:
        tenant_id: the tenant.
        day: the date rules are evaluated on (validity periods).
        rules: how many rules apply to the tenant.
        identities: every identity of the inventory with its decision.
        resources: every resource (clusters, connectors, ...) with its decision.
        unmapped: identities with UNASSIGNED cost in the cost window, most first.
        start: first day of the cost window.
        total: the window's allocated total (minor units).
        unassigned: the part of ``total`` no rule assigns.
        days_missing: days of the window with nothing stored.
    """

    tenant_id: str
    day: dt.date
    rules: int
    identities: tuple[SubjectLine, ...]
    resources: tuple[SubjectLine, ...]
    unmapped: tuple[UnmappedCost, ...]
    start: dt.date
    total: int
    unassigned: int
    days_missing: int

    def conflicts(self) -> list[SubjectLine]:
        """Subjects decided despite a conflicting rule."""
        return [s for s in (*self.identities, *self.resources) if s.decision.conflicts]


def build_report(
    tenant_id: str,
    day: dt.date,
    matcher: Matcher,
    *,
    resources: Iterable[Resource],
    identities: Iterable[Identity],
    window: Mapping[dt.date, DayKeys | None],
) -> OwnershipReport:
    """Decide every subject on ``day`` and the window's keys on their own dates.

    Args:
        tenant_id: the tenant.
        day: the date rules are evaluated on for the subject lists.
        matcher: the tenant's matcher (rules and inventory).
        resources: the stored resources.
        identities: the stored identities.
        window: per day of the cost window, its keys and amounts (``None``: not stored).
    """
    ident_lines = tuple(
        SubjectLine(i.identity_id, i.identity_type, i.display_name or "", i.active_on(day),
                    matcher.decide(Key(i.identity_id, "", ""), day))
        for i in sorted(identities, key=lambda i: (i.identity_type, i.identity_id))
    )  # fmt: skip
    res_lines = tuple(
        SubjectLine(r.resource_id, r.resource_type, r.display_name or "", r.active_on(day),
                    matcher.decide(Key("", r.resource_id, r.env_id or ""), day))
        for r in sorted(resources, key=lambda r: (r.resource_type, r.resource_id))
        if r.resource_type != "environment"
    )  # fmt: skip
    total = unassigned = missing = 0
    per_identity: dict[str, int] = {}
    for d, keys in sorted(window.items()):
        if keys is None:
            missing += 1
            continue
        for key, (amount, _rows) in keys.items():
            total += amount
            if matcher.decide(key, d).team == UNASSIGNED:
                unassigned += amount
                per_identity[key.identity_id] = per_identity.get(key.identity_id, 0) + amount
    names = matcher.directory.names
    unmapped = tuple(
        UnmappedCost(i, names.get(i, ""), a)
        for i, a in sorted(per_identity.items(), key=lambda p: (-p[1], p[0]))
    )
    start = min(window) if window else day
    return OwnershipReport(
        tenant_id, day, len(matcher.rules.rules), ident_lines, res_lines, unmapped,
        start, total, unassigned, missing,
    )  # fmt: skip


def _line(s: SubjectLine) -> str:
    d = s.decision
    team = d.team + "".join(f" {k}={v}" for k, v in d.dimensions)
    rule = d.rule or "-"
    state = "" if s.active else " (not active)"
    return f"  {s.subject_type:<18} {s.subject_id:<28} {s.name[:34]:<34} {team:<30} {rule}{state}"


def render_report(report: OwnershipReport, *, places: int = 2) -> str:
    """The report as text for a terminal (amounts in currency units)."""
    out = [
        f"tenant {report.tenant_id}: {report.rules} ownership rules, evaluated on {report.day}",
        f"precedence: {', '.join(f'{i + 1} {name}' for i, name in enumerate(LEVELS))}",
        "",
        f"identities ({len(report.identities)})",
        f"  {'TYPE':<18} {'ID':<28} {'NAME':<34} {'TEAM':<30} RULE",
        *(_line(s) for s in report.identities),
        "",
        f"resources ({len(report.resources)}; the team of a row whose identity no rule maps)",
        f"  {'TYPE':<18} {'ID':<28} {'NAME':<34} {'TEAM':<30} RULE",
        *(_line(s) for s in report.resources),
    ]
    conflicts = report.conflicts()
    out += ["", f"conflicts ({len(conflicts)})"]
    out += [
        f"  {s.subject_id}: {s.decision.rule} decided, also matching: "
        f"{', '.join(s.decision.conflicts)}"
        for s in conflicts
    ]
    share = f"{100 * report.unassigned / report.total:.1f} %" if report.total else "n/a"
    out += [
        "",
        f"unmapped cost {report.start} .. {report.day}: "
        f"{format_amount(report.unassigned, places)} of {format_amount(report.total, places)}"
        f" ({share})"
        + (f"; {report.days_missing} days not calculated" if report.days_missing else ""),
        f"  {'IDENTITY':<28} {'NAME':<34} COST",
        *(
            f"  {u.identity_id:<28} {u.name[:34]:<34} {format_amount(u.amount, places)}"
            for u in report.unmapped
        ),
    ]
    return "\n".join(out) + "\n"


@dataclass(frozen=True, slots=True)
class WindowTeams:
    """Cost per team over a window of dates, from the stored attributions.

    Attributes:
        by_team: team -> amount (minor units), dimensions summed away.
        names: display names of the window's identities and resources.
        days_unattributed: calculated days of the window without an attribution.
    """

    by_team: dict[str, int]
    names: dict[str, str]
    days_unattributed: int


async def window_teams(
    store: OwnershipStore, storage: StorageBackend, tenant: str, first: dt.date, last: dt.date
) -> WindowTeams:
    """Sum the stored team totals of ``first .. last`` (inclusive) and collect names."""
    end = last + dt.timedelta(days=1)
    totals = await store.team_totals(tenant, first, end)
    by_team: dict[str, int] = {}
    for day_totals in totals.values():
        for t in day_totals:
            by_team[t.team] = by_team.get(t.team, 0) + t.amount
    names: dict[str, str] = {}
    latest = max(totals, default=None)
    if latest is not None:
        att = await store.read_attribution(tenant, latest)
        names = dict(att.names) if att is not None else {}
    calculated = await storage.get_date_states(tenant, first, end)
    return WindowTeams(by_team, names, len(set(calculated) - set(totals)))
