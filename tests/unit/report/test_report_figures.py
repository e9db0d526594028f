"""The showback report's arithmetic: every figure conserves exactly (DESIGN §5, §17)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.core.budgets import month_days
from chargeback.core.query.aggregate import DayTotal
from chargeback.report import (
    CSV_HEADER,
    ReportRow,
    ShowbackReport,
    TeamMonth,
    build_view,
    month_figures,
    render_csv,
    render_html,
    top_changes,
)
from chargeback.report.model import NOT_ATTRIBUTED
from chargeback.report.view import TABLE_ROWS

MARCH = dt.date(2026, 3, 1)
FEBRUARY = dt.date(2026, 2, 1)
TEAMS = ["payments", "search", "UNASSIGNED", NOT_ATTRIBUTED]
PRODUCTS = ["KAFKA_BASE", "KAFKA_NETWORK_READ", "CONNECT_CAPACITY", "PROMO_CREDIT"]
COST_TYPES = ["usage", "shared", "unallocated"]


def rows_of(month: dt.date) -> st.SearchStrategy[list[ReportRow]]:
    days = month_days(month)
    return st.lists(
        st.builds(
            ReportRow,
            day=st.sampled_from(days),
            team=st.sampled_from(TEAMS),
            product_type=st.sampled_from(PRODUCTS),
            identity=st.sampled_from([f"sa-{i}" for i in range(40)] + ["UNALLOCATED"]),
            cost_type=st.sampled_from(COST_TYPES),
            amount=st.integers(min_value=-(10**12), max_value=10**13),
        ),
        max_size=120,
    )


def totals_of(rows: list[ReportRow], extra_days: list[dt.date]) -> list[DayTotal]:
    """Each day's stored totals as the engine keeps them: billed = allocated = the rows' sum."""
    per_day: dict[dt.date, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        per_day[r.day][0] += r.amount
        if r.cost_type == "unallocated":
            per_day[r.day][1] += r.amount
    for day in extra_days:
        per_day.setdefault(day, [0, 0])
    return [DayTotal(d, a, a, u) for d, (a, u) in per_day.items()]


def report_of(current: list[ReportRow], previous: list[ReportRow], team: str | None = None,
              *, extra: list[dt.date] | None = None) -> ShowbackReport:  # fmt: skip
    now = month_figures(MARCH, month_days(MARCH), current, totals_of(current, extra or []))
    before = month_figures(FEBRUARY, month_days(FEBRUARY), previous, totals_of(previous, []))
    return ShowbackReport("acme", "USD", team, now, before, {}, 7, {"sa-1": "svc-payments-1"})


class TestMonthFigures:
    @given(rows_of(MARCH), st.lists(st.sampled_from(month_days(MARCH)), max_size=5))
    def test_teams_sum_to_the_allocated_total_and_each_breakdown_to_its_team(
        self, rows: list[ReportRow], extra: list[dt.date]
    ) -> None:
        """Team totals sum to the month's allocated total; product, identity and day to the team."""
        m = month_figures(MARCH, month_days(MARCH), rows, totals_of(rows, extra))
        assert sum(t.total for t in m.teams.values()) == m.allocated == sum(r.amount for r in rows)
        for t in m.teams.values():
            assert sum(t.by_product.values()) == t.total
            assert sum(t.by_identity.values()) == t.total
            assert sum(t.daily.values()) == t.total
            assert sum(sum(p.values()) for p in t.daily_product.values()) == t.total
            assert t.unallocated == sum(
                r.amount for r in rows if r.team == t.team and r.cost_type == "unallocated"
            )
        assert sum(t.unallocated for t in m.teams.values()) == m.unallocated
        assert set(m.not_attributed) == {r.day for r in rows if r.team == NOT_ATTRIBUTED}

    def test_missing_days_are_future_or_gaps(self) -> None:
        """Days not calculated before the newest calculated day are gaps; after it, the future."""
        days = [dt.date(2026, 3, d) for d in (1, 2, 4)]
        m = month_figures(MARCH, month_days(MARCH), [], [DayTotal(d, 0, 0, 0) for d in days])
        assert m.gaps == (dt.date(2026, 3, 3),)
        assert len(m.missing) == 31 - 3
        assert m.team("nobody").total == 0
        assert list(m.team("nobody").daily) == days

    def test_a_day_that_does_not_reconcile_is_named(self) -> None:
        """A stored day whose allocated total differs from its billed total is listed."""
        day = dt.date(2026, 3, 2)
        m = month_figures(MARCH, month_days(MARCH), [], [DayTotal(day, 5, 4, 0)])
        assert m.mismatched == (day,)


class TestChanges:
    def test_largest_changes_either_way_with_keys_gone_and_new(self) -> None:
        """Changes are ranked by size, up or down; a key of one month only counts in full."""
        now = TeamMonth("t", 0, 0, {"A": 10, "B": 3}, {"sa-1": 13}, {}, {})
        before = TeamMonth("t", 0, 0, {"A": 2, "C": 9}, {"sa-1": 11}, {}, {})
        got = [(c.dimension, c.key, c.delta) for c in top_changes(now, before, 3)]
        assert got == [("product_type", "C", -9), ("product_type", "A", 8),
                       ("product_type", "B", 3)]  # fmt: skip
        assert [c.key for c in top_changes(now, now, 5)] == []


def _csv(report: ShowbackReport) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(render_csv(build_view(report)))))
    assert rows
    assert list(rows[0]) == list(CSV_HEADER)
    return rows


def _sum(rows: list[dict[str, str]], team: str, section: str) -> Decimal:
    picked = (r for r in rows if r["team"] == team and r["section"] == section)
    return sum((Decimal(r["amount"]) for r in picked if r["amount"]), Decimal(0))


class TestRenderedReport:
    @settings(max_examples=40, deadline=None)
    @given(rows_of(MARCH), rows_of(FEBRUARY))
    def test_the_csv_conserves_every_section(
        self, rows: list[ReportRow], previous: list[ReportRow]
    ) -> None:
        """In the CSV the teams sum to the allocated total; products, identities, days to a team."""
        report = report_of(rows, previous)
        out = _csv(report)
        allocated = next(Decimal(r["amount"]) for r in out if r["key"] == "allocated")
        assert allocated == Decimal(sum(r.amount for r in rows)).scaleb(-9)
        teams = {r["team"] for r in out if r["section"] == "total"}
        assert teams == set(report.current.teams)
        assert sum(_sum(out, t, "total") for t in teams) == allocated
        for team in teams:
            total = _sum(out, team, "total")
            for section in ("product_type", "identity", "day"):
                assert _sum(out, team, section) == total, (team, section)

    def test_a_long_table_folds_its_tail_into_one_line_that_keeps_the_sum(self) -> None:
        """More identities than a table shows: the rest is one 'N others' line; the sum holds."""
        rows = [ReportRow(MARCH, "payments", "KAFKA_BASE", f"sa-{i:03}", "usage", 1000 + i)
                for i in range(TABLE_ROWS + 7)]  # fmt: skip
        view = build_view(report_of(rows, [], "payments"))
        (team,) = view.teams
        assert len(team.by_identity) == TABLE_ROWS + 1
        assert team.by_identity[-1].key == "7 others"
        assert team.by_identity[-1].folded == 7
        assert sum(line.amount for line in team.by_identity) == team.team.total

    def test_the_html_is_self_contained(self) -> None:
        """The HTML has no script and refers to nothing outside itself."""
        rows = [ReportRow(MARCH, "payments", "KAFKA_BASE", "sa-1", "usage", 10**9)]
        text = render_html(build_view(report_of(rows, [])), generated=dt.datetime.now(dt.UTC))
        assert "<script" not in text
        assert "<link" not in text
        assert "src=" not in text
        assert "url(" not in text
        assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "https://" not in text

    def test_problems_name_the_days(self) -> None:
        """A hole before the newest day and a day without attribution are problems, by date."""
        rows = [
            ReportRow(dt.date(2026, 3, 1), "payments", "KAFKA_BASE", "sa-1", "usage", 5),
            ReportRow(dt.date(2026, 3, 3), NOT_ATTRIBUTED, "KAFKA_BASE", "sa-1", "usage", 7),
        ]
        view = build_view(report_of(rows, []))
        text = " ".join(view.problems)
        assert "2026-03-02" in text  # not calculated, before 03-03
        assert f"{NOT_ATTRIBUTED!r}): 2026-03-03" in text
        assert any("month in progress" in n for n in view.notes)
