"""The report as one self-contained HTML file, or as CSV rows (the same figures).

HTML: one Jinja2 template with its style inline and the chart as inline SVG; no script,
no font, no image and no stylesheet is fetched, so the file opens offline and prints.

CSV: one header, then rows of sections; every amount is an exact decimal string::

    tenant,month,currency,team,section,key,name,amount,previous_amount,change,note

============  ==============================  ==========================================
section       key                             amount (previous_amount, change)
============  ==============================  ==========================================
tenant        billed, allocated, unallocated  the month's total (last month's, the change)
problem       (empty)                         (empty): ``note`` says what is incomplete
total         (empty)                         the team's cost (last month's, the change)
unallocated   (empty)                         its part charged to UNALLOCATED (likewise)
product_type  the product type                its cost; the section sums to ``total``
identity      the identity (``name``)         its cost; the section sums to ``total``
day           YYYY-MM-DD                      its cost, empty when ``note`` is
                                              ``not calculated``; sums to ``total``
change        product_type:X or identity:X    this month (last month, the change)
budget        NAME:amount, NAME:spent         the budget and what was spent of it
threshold     NAME:PERCENT                    (empty): ``note`` is ``crossed on D`` or
                                              ``not crossed``
forecast      point, low, high, spent         the month-end forecast and its interval
============  ==============================  ==========================================

A folded line (``N others``) says so in ``note``; tenant rows have an empty team.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import jinja2

from chargeback.core.models import UNALLOCATED
from chargeback.core.money import format_amount
from chargeback.report.view import ReportView, TeamView
from chargeback.service.ui.pages import exact, money, percent

__all__ = ["CSV_HEADER", "csv_rows", "render_csv", "render_html"]

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
_ENV.filters.update(money=money, exact=exact)
_ENV.globals.update(percent=percent, UNALLOCATED=UNALLOCATED)

CSV_HEADER = (
    "tenant", "month", "currency", "team", "section", "key", "name",
    "amount", "previous_amount", "change", "note",
)  # fmt: skip


def render_html(view: ReportView, *, generated: dt.datetime) -> str:
    """The report as one HTML document."""
    return _ENV.get_template("report.html").render(
        view=view,
        report=view.report,
        month=f"{view.current.month:%Y-%m}",
        generated=f"{generated:%Y-%m-%d %H:%M} UTC",
    )


def _amount(minor: int | None) -> str:
    return "" if minor is None else format_amount(minor)


def _row(
    team: str, section: str, key: str, amount: int | None = None, previous: int | None = None,
    *, name: str = "", note: str = "",
) -> list[str]:  # fmt: skip
    """``team`` onwards: the change is ``amount - previous`` when both are given."""
    change = None if amount is None or previous is None else amount - previous
    return [team, section, key, name, _amount(amount), _amount(previous), _amount(change), note]


def _team_rows(t: TeamView, missing: frozenset[str]) -> Iterator[list[str]]:
    team = t.team.team
    yield _row(team, "total", "", t.team.total, t.previous.total)
    yield _row(team, "unallocated", "", t.team.unallocated, t.previous.unallocated)
    for section, lines in (("product_type", t.by_product), ("identity", t.by_identity)):
        for line in lines:
            note = f"{line.folded} keys folded" if line.folded else ""
            yield _row(team, section, line.key, line.amount, name=line.name, note=note)
    for day, amount in ((d, t.team.daily.get(d)) for d in t.days):
        if day.isoformat() in missing:
            yield _row(team, "day", day.isoformat(), note="not calculated")
        else:
            yield _row(team, "day", day.isoformat(), amount or 0)
    for c in t.changes:
        yield _row(team, "change", f"{c.dimension}:{c.key}", c.current, c.previous)
    yield from _budget_rows(t)


def _budget_rows(t: TeamView) -> Iterator[list[str]]:
    team = t.team.team
    for b in t.budgets:
        note = ""
        if b.forecast_crossed is not None:
            over = str(b.forecast_crossed).lower()
            note = f"forecast over {b.rule.forecast_threshold} %: {over}"
        yield _row(team, "budget", f"{b.rule.name}:amount", b.rule.amount_minor, note=note)
        yield _row(team, "budget", f"{b.rule.name}:spent", b.forecast.spent)
        for th in b.thresholds:
            crossed = f"crossed on {th.crossed_on}" if th.crossed_on else "not crossed"
            yield _row(team, "threshold", f"{b.rule.name}:{th.percent}", note=crossed)
    f = t.forecast
    if f is not None and f.point is not None:
        note = f"observed_days={f.observed_days}; unobserved_days={f.unobserved_days}"
        yield _row(team, "forecast", "point", f.point, note=note)
        yield _row(team, "forecast", "low", f.low)
        yield _row(team, "forecast", "high", f.high)
        yield _row(team, "forecast", "spent", f.spent)


def csv_rows(view: ReportView) -> Iterator[list[str]]:
    """Every CSV row after the header."""
    r, m, prev = view.report, view.current, view.report.previous
    head = [r.tenant, f"{m.month:%Y-%m}", r.currency]
    days = f"{len(m.calculated)} of {len(m.days)} days calculated"
    yield [*head, *_row("", "tenant", "billed", m.billed, prev.billed, note=days)]
    yield [*head, *_row("", "tenant", "allocated", m.allocated, prev.allocated)]
    yield [*head, *_row("", "tenant", "unallocated", m.unallocated, prev.unallocated)]
    for problem in view.problems:
        yield [*head, *_row("", "problem", "", note=problem)]
    missing = frozenset(d.isoformat() for d in m.missing)
    for t in view.teams:
        for row in _team_rows(t, missing):
            yield [*head, *row]


def render_csv(view: ReportView) -> str:
    """The report as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(csv_rows(view))
    return out.getvalue()
