"""``chargeback report`` over a real database: figures checked against the test's own SQL.

The HTML report is opened in headless Chromium (from its file: it must need nothing
else) and every figure read off the page is compared with sums the test makes itself
over ``chargeback_rows``, the inventory's names and the stored team totals: the team's
total, its product types, identities and days, its budget's thresholds and forecast, and
the changes against February. The CSV is checked the same way; bad arguments exit 2.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
import subprocess
import sys
from collections import defaultdict
from contextlib import closing
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import pytest
from playwright.sync_api import Page, expect
from tests.integration.report.conftest import LAST_DAY, TENANT

pytestmark = pytest.mark.e2e

TEAM = "payments"
BUDGET = "400.00"
FORECAST_DAYS = 5
NAME_RULE = re.compile(r"^(?:svc-)?(?P<team>[a-z]+)-")


def settings_file(tmp_path: Path, db: Path) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(
        f"storage: {{path: {db}}}\n"
        f"tenants:\n  {TENANT}:\n    ecosystem: confluent_cloud\n"
        "    plugin_settings: {api_key: K, api_secret: S}\n"
        f"budgets:\n  forecast_days: {FORECAST_DAYS}\n  rules:\n"
        f"    - {{name: pay, tenant: {TENANT}, team: {TEAM}, amount: '{BUDGET}',"
        " thresholds: [50, 80, 100, 400], forecast_threshold: 100}\n",
        encoding="utf-8",
    )
    return path


def run_report(*argv: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, in its own process (the page test's loop is busy)."""
    return subprocess.run(
        [sys.executable, "-m", "chargeback.cli", "report", *argv],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def nanos(text: str) -> int:
    return int(Decimal(text).scaleb(9))


class Row(NamedTuple):
    """A chargeback row, as much of it as the test needs."""

    date: str
    identity: str
    product_type: str
    amount: int


class Stored:
    """The test's own reading of the database (SQL and the ownership rule, nothing else)."""

    def __init__(self, db: Path) -> None:
        with closing(sqlite3.connect(db)) as conn:
            names = dict(conn.execute("SELECT identity_id, display_name FROM identities"))
            self.rows = [Row(*r) for r in conn.execute(
                "SELECT date, identity_id, product_type, amount FROM chargeback_rows"
            )]  # fmt: skip
            self.team_totals = conn.execute(
                "SELECT date, team, SUM(amount) FROM ownership_team_totals GROUP BY 1, 2"
            ).fetchall()
            self.billed = dict(conn.execute(
                "SELECT substr(date, 1, 7), SUM(amount) FROM billing_lines GROUP BY 1"
            ).fetchall())  # fmt: skip
        self.members = {
            i for i, n in names.items() if n and (m := NAME_RULE.match(n)) and m["team"] == TEAM
        }

    def by(self, month: str, field: str) -> dict[str, int]:
        """The team's rows of ``month`` (YYYY-MM) summed by ``field`` of :class:`Row`."""
        sums: dict[str, int] = defaultdict(int)
        for row in self.rows:
            if row.date.startswith(month) and row.identity in self.members:
                sums[getattr(row, field)] += row.amount
        return dict(sums)

    def team_totals_of(self, month: str) -> dict[str, int]:
        sums: dict[str, int] = defaultdict(int)
        for day, team, amount in self.team_totals:
            if day.startswith(month):
                sums[team] += amount
        return dict(sums)


def exact_of(page: Page, selector: str) -> int:
    return nanos(page.locator(selector).first.get_attribute("data-exact") or "")


def table(page: Page, table_id: str) -> dict[str, int]:
    """A lines table's first column -> the exact amount of its cost column."""
    out = {}
    for row in page.locator(f"#{table_id} tbody tr").all():
        key = row.locator("td").first.inner_text()
        out[key] = nanos(row.locator("td .num").first.get_attribute("data-exact") or "")
    return out


class TestHtmlReport:
    def test_every_figure_of_a_team_matches_the_database(
        self, report_db: Path, tmp_path: Path, browser_page: Page, screenshot_file
    ) -> None:
        """Team total, products, identities, days, budget, forecast and changes match the SQL."""
        out = tmp_path / "payments.html"
        config = settings_file(tmp_path, report_db)
        done = run_report("--config", str(config), "--tenant", TENANT, "--month", "2026-03",
                          "--team", TEAM, "--format", "html", "--out", str(out))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"wrote {out}: showback of tenant acme 2026-03, team payments" in done.stderr
        stored = Stored(report_db)
        page = browser_page
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(out.as_uri())
        assert requests == [out.as_uri()]  # self-contained: nothing else is fetched
        section = "#team-payments"
        expect(page.locator(f"{section} h2")).to_have_text(f"Team {TEAM}")
        total = sum(stored.by("2026-03", "product_type").values())
        assert total == stored.team_totals_of("2026-03")[TEAM]
        assert exact_of(page, f"{section} .team-total .num") == total
        assert table(page, "team-payments-products") == stored.by("2026-03", "product_type")
        assert table(page, "team-payments-identities") == stored.by("2026-03", "identity")
        days = stored.by("2026-03", "date")
        expect(page.locator(f"{section} svg.chart rect.missing")).to_have_count(31 - LAST_DAY.day)
        expect(page.locator(f"{section} svg.chart")).to_contain_text("grey: not calculated")
        self._budget_and_forecast(page, section, days)
        self._changes(page, stored)
        expect(page.locator("#notes")).to_contain_text("17 of 31 days calculated")
        expect(page.locator("#problems")).to_have_count(0)
        page.screenshot(path=screenshot_file("team-report"), full_page=True)

    def _budget_and_forecast(self, page: Page, section: str, days: dict[str, int]) -> None:
        ordered = sorted(days)
        budget = nanos(BUDGET)
        running, crossed = 0, {}
        for day in ordered:
            running += days[day]
            for pct in (50, 80, 100, 400):
                if pct not in crossed and running * 100 >= budget * pct:
                    crossed[pct] = day
        row = page.locator(f"{section} table.budgets tbody tr")
        expect(row).to_have_count(1)
        for pct in (50, 80, 100):
            expect(row).to_contain_text(f"{pct} % crossed {crossed[pct]}")
        assert 400 not in crossed
        expect(row).not_to_contain_text("400 % crossed")
        rate = Fraction(sum(days[d] for d in ordered[-FORECAST_DAYS:]), FORECAST_DAYS)
        point = sum(days.values()) + round(rate * (31 - len(ordered)))
        assert exact_of(page, f"{section} .forecast b .num") == point
        expect(page.locator(f"{section} .forecast")).to_contain_text(
            f"each of the {31 - len(ordered)} other days at the mean of the last {FORECAST_DAYS}"
        )

    def _changes(self, page: Page, stored: Stored) -> None:
        now, before = stored.by("2026-03", "identity"), stored.by("2026-02", "identity")
        rows = page.locator("#team-payments-changes tbody tr").all()
        assert rows
        for row in rows:
            cells = row.locator("td").all()
            if cells[0].inner_text() != "identity":
                continue
            key = cells[1].inner_text().split()[0]
            shown = [nanos(c.locator(".num").get_attribute("data-exact") or "") for c in cells[2:]]
            assert shown == [now.get(key, 0), before.get(key, 0),
                             now.get(key, 0) - before.get(key, 0)]  # fmt: skip

    def test_every_team_sums_to_the_bill(
        self, report_db: Path, tmp_path: Path, browser_page: Page
    ) -> None:
        """The all-teams report lists each stored team's total; together they are the bill."""
        out = tmp_path / "all.html"
        config = settings_file(tmp_path, report_db)
        done = run_report("--config", str(config), "--tenant", TENANT, "--month", "2026-03",
                          "--out", str(out))  # fmt: skip
        assert done.returncode == 0, done.stderr
        stored = Stored(report_db)
        page = browser_page
        page.goto(out.as_uri())
        shown = table(page, "teams")
        assert shown == stored.team_totals_of("2026-03")
        assert sum(shown.values()) == stored.billed["2026-03"]
        expect(page.locator("#reconciliation")).to_contain_text("✓ allocated = billed")
        expect(page.locator("section.team")).to_have_count(len(shown))


class TestCsvReport:
    def test_the_csv_has_the_same_figures(self, report_db: Path, tmp_path: Path) -> None:
        """The CSV's team total, products and days are the SQL's, and each section sums."""
        out = tmp_path / "payments.csv"
        config = settings_file(tmp_path, report_db)
        done = run_report("--config", str(config), "--tenant", TENANT, "--month", "2026-03",
                          "--team", TEAM, "--format", "csv", "--out", str(out))  # fmt: skip
        assert done.returncode == 0, done.stderr
        stored = Stored(report_db)
        rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))

        def section(name: str) -> dict[str, int]:
            return {r["key"]: nanos(r["amount"]) for r in rows
                    if r["section"] == name and r["amount"]}  # fmt: skip

        total = section("total")[""]
        assert total == sum(stored.by("2026-03", "product_type").values())
        assert section("product_type") == stored.by("2026-03", "product_type")
        assert section("identity") == stored.by("2026-03", "identity")
        assert section("day") == stored.by("2026-03", "date")
        missing = [r["key"] for r in rows if r["section"] == "day" and not r["amount"]]
        assert missing == [f"2026-03-{d:02}" for d in range(LAST_DAY.day + 1, 32)]
        assert section("budget")["pay:amount"] == nanos(BUDGET)
        assert section("budget")["pay:spent"] == total
        assert section("tenant")["billed"] == stored.billed["2026-03"]


class TestIncompleteAndBadArguments:
    def test_a_day_without_attribution_is_said_and_exits_1(
        self, report_db: Path, tmp_path: Path
    ) -> None:
        """A day whose attribution is gone: its cost is '(not attributed)', named, exit 1."""
        with closing(sqlite3.connect(report_db)) as conn, conn:
            conn.execute("DELETE FROM ownership_dates WHERE date = '2026-03-05'")
        out = tmp_path / "r.csv"
        config = settings_file(tmp_path, report_db)
        done = run_report("--config", str(config), "--tenant", TENANT, "--month", "2026-03",
                          "--format", "csv", "--out", str(out))  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert "incomplete: days without a current team attribution" in done.stderr
        rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
        totals = {r["team"]: nanos(r["amount"]) for r in rows if r["section"] == "total"}
        with closing(sqlite3.connect(report_db)) as conn:
            (day_total,) = conn.execute(
                "SELECT SUM(amount) FROM chargeback_rows WHERE date = '2026-03-05'"
            ).fetchone()
        assert totals["(not attributed)"] == day_total
        billed = next(nanos(r["amount"]) for r in rows if r["key"] == "billed")
        assert sum(totals.values()) == billed
        assert any(r["section"] == "problem" and "2026-03-05" in r["note"] for r in rows)

    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            (["--month", "2026-3"], "--month: expected YYYY-MM"),
            (["--month", "2026-13"], "--month: expected YYYY-MM"),
            (["--month", "2026-06"], "no calculated day in it (its newest calculated day: 2026-03"),
            (["--month", "2026-03", "--team", "nobody"], "--team 'nobody': no cost and no budget"),
            (["--month", "2026-03", "--out", "/nonexistent/dir/r.html"], "no directory"),
        ],
    )  # fmt: skip
    def test_bad_arguments_exit_2_with_a_clear_message(
        self, report_db: Path, tmp_path: Path, extra: list[str], message: str
    ) -> None:
        """A malformed or empty month, an unknown team or output directory: exit 2, said why."""
        config = settings_file(tmp_path, report_db)
        done = run_report("--config", str(config), "--tenant", TENANT, *extra)
        assert (done.returncode, done.stdout) == (2, "")
        assert message in done.stderr

    def test_an_unknown_tenant_or_format_exits_2(self, report_db: Path, tmp_path: Path) -> None:
        """A tenant the settings do not have, or a format not offered: exit 2, saying so."""
        config = settings_file(tmp_path, report_db)
        done = run_report("--config", str(config), "--tenant", "x", "--month", "2026-03")
        assert done.returncode == 2
        assert "no tenant 'x'; its tenants: acme" in done.stderr
        done = run_report("--config", str(config), "--tenant", TENANT, "--month", "2026-03",
                          "--format", "pdf")  # fmt: skip
        assert done.returncode == 2
        assert "invalid choice: 'pdf'" in done.stderr
