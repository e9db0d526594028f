"""The web UI in headless Chromium over a real database: content asserted, screenshots kept."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from tests.integration.api.conftest import FIRST_DAY, LAST_DAY, _Health, _Source
from tests.support.browser import serve_in_thread

from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.service import api, ui
from chargeback.service.api._auth import ApiTokens
from chargeback.service.http import make_app

pytestmark = pytest.mark.e2e

WINDOW = "2026-03-01,2026-03-31"
Shot = Callable[[str], Path]


def cents(nanos: int) -> str:
    value = Decimal(nanos).scaleb(-9).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return f"{value:,}"


def totals_by(db: Path, column: str) -> list[tuple[str, int]]:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            f"SELECT COALESCE({column}, ''), SUM(amount) FROM chargeback_rows "
            "GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
    return [(str(k), int(v)) for k, v in rows]


def team_totals(db: Path) -> dict[str, int]:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT team, SUM(amount) FROM ownership_team_totals GROUP BY 1")
        return {str(t): int(a) for t, a in rows}


@pytest.fixture
def base(sim_db: Path) -> Iterator[str]:
    """The UI and the API served over the test's database copy."""
    tokens = ApiTokens.from_text("")
    app = make_app(
        _Source(), _Health(), storage=lambda: SQLiteBackend(sim_db, read_only=True),
        routes=[*api.routes(tokens=tokens), *ui.routes(tokens=tokens)],
    )  # fmt: skip
    with serve_in_thread(app) as url:
        yield url


class TestOverview:
    def test_overview_shows_totals_chart_and_top_identities(
        self, browser_page: Page, base: str, sim_db: Path, screenshot_file: Shot
    ) -> None:
        """The overview reconciles, charts identities by product type, and ranks them."""
        page = browser_page
        page.goto(f"{base}/?window={WINDOW}")  # / redirects to /ui/
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        expect(page.locator("#reconciliation")).to_contain_text("✓ allocated = billed")
        total = sum(v for _, v in totals_by(sim_db, "identity_id"))
        expect(page.locator(".cards")).to_contain_text(cents(total))
        expect(page.locator(".cards")).to_contain_text("8 calculated, 23 not yet")
        top_id, top_cost = totals_by(sim_db, "identity_id")[0]
        first = page.locator("#top-identities tbody tr").first
        expect(first).to_contain_text(top_id)
        expect(first).to_contain_text(cents(top_cost))
        expect(page.locator("svg.bars rect")).not_to_have_count(0)
        expect(page.locator("svg.columns rect")).not_to_have_count(0)
        expect(
            page.get_by_role("heading", name="Cost by team, stacked by product type")
        ).to_be_visible()
        expect(page.locator("svg.bars")).to_contain_text("UNASSIGNED")
        expect(page.locator(".legend").first).to_contain_text("KAFKA_NETWORK_READ")
        teams = team_totals(sim_db)
        top_team = max(teams, key=lambda t: (teams[t], t))
        expect(page.locator("#teams tbody tr").first).to_contain_text(top_team)
        expect(page.locator("#teams tbody tr").first).to_contain_text(cents(teams[top_team]))
        page.screenshot(path=screenshot_file("overview"), full_page=True)

    def test_a_bad_window_says_what_is_expected(self, browser_page: Page, base: str) -> None:
        """A malformed window renders the API's message, not a blank page."""
        browser_page.goto(f"{base}/ui/?window=fortnight")
        expect(browser_page.get_by_role("alert")).to_contain_text("lastmonth")


class TestDrillDown:
    def test_team_to_identity_to_product_to_line_to_explanation(
        self, browser_page: Page, base: str, sim_db: Path, screenshot_file: Shot
    ) -> None:
        """Team -> identity -> its lines of one product type -> one line's parts and reasons."""
        page = browser_page
        page.goto(f"{base}/ui/?window={WINDOW}")
        page.locator("#teams").get_by_role("link", name="payments").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("team payments")
        expect(page.locator(".sub")).to_contain_text(cents(team_totals(sim_db)["payments"]))
        page.screenshot(path=screenshot_file("team"), full_page=True)
        first = page.locator("#by-identity tbody tr").first
        top_id = first.locator("td").first.inner_text()
        with closing(sqlite3.connect(sim_db)) as conn:
            (top_cost,) = conn.execute(
                "SELECT SUM(amount) FROM chargeback_rows WHERE identity_id = ?", (top_id,)
            ).fetchone()
        first.get_by_role("link").first.click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("identity")
        expect(page.locator(".sub")).to_contain_text(cents(top_cost))
        expect(page.locator("#by-product_type tbody tr")).not_to_have_count(0)
        page.screenshot(path=screenshot_file("identity"), full_page=True)

        page.locator("#by-product_type tbody tr").first.get_by_role("link", name="lines").click()
        expect(page.get_by_role("heading", name="Billing lines")).to_be_visible()
        expect(page.locator(".sub")).to_contain_text(f"identity:{top_id}")
        page.screenshot(path=screenshot_file("lines"), full_page=True)

        page.locator("#lines tbody tr").first.get_by_role("link").first.click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Line ")
        expect(page.locator("#reconciliation")).to_contain_text("✓")
        expect(page.locator("#parts tbody")).to_contain_text(top_id)
        expect(page.locator("#parts tbody td code").first).not_to_be_empty()
        page.screenshot(path=screenshot_file("explain"), full_page=True)

    def test_one_environment_by_product_type(
        self, browser_page: Page, base: str, sim_db: Path, screenshot_file: Shot
    ) -> None:
        """An environment's page breaks its cost down by product type, summing exactly."""
        page = browser_page
        page.goto(f"{base}/ui/?window={WINDOW}")
        env, env_cost = next((k, v) for k, v in totals_by(sim_db, "env_id") if k)
        page.locator("#by-environment").get_by_role("link", name=env).click()
        expect(page.locator(".sub")).to_contain_text(cents(env_cost))
        with closing(sqlite3.connect(sim_db)) as conn:
            (n,) = conn.execute(
                "SELECT COUNT(DISTINCT product_type) FROM chargeback_rows WHERE env_id = ?", (env,)
            ).fetchone()
        expect(page.locator("#by-product_type tbody tr")).to_have_count(n)
        page.screenshot(path=screenshot_file("environment"), full_page=True)


class TestDatesAndRuns:
    def test_dates_runs_and_reconciliation(
        self, browser_page: Page, base: str, screenshot_file: Shot
    ) -> None:
        """Every day of the window is listed; calculated days reconcile; the run is shown."""
        page = browser_page
        page.goto(f"{base}/ui/dates?window={WINDOW}")
        expect(page.locator("#dates tbody tr")).to_have_count(31)
        expect(page.locator("#reconciliation")).to_contain_text("✓ 8 days")
        expect(page.locator("#dates tbody tr.missing")).to_have_count(31 - 8)
        row = page.locator("#dates tbody tr", has_text=LAST_DAY.isoformat())
        expect(row).to_contain_text("closed")
        expect(page.locator("#dates tbody tr", has_text=FIRST_DAY.isoformat())).to_contain_text("✓")
        expect(page.locator("#runs tbody tr")).to_have_count(1)
        expect(page.locator("#runs")).to_contain_text("success")
        page.screenshot(path=screenshot_file("dates"), full_page=True)
