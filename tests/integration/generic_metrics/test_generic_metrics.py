"""The generic_metrics plugin against a real Prometheus holding 30 days of history.

The engine runs the built-in plugin in process on a real SQLite file; every number
asserted comes from the generator's own ground truth (``history.py``), never from the
plugin's output.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.integration.generic_metrics.history import (
    ARRIVES,
    BACKUP_FROM,
    DAYS,
    GAP_DAY,
    GIB,
    LATE_TEAM,
    RESET_DAY,
    STATIC,
    compute_rate,
    cost_types,
    history,
    identities,
    present,
    team_queries,
    team_sizes,
)
from tests.support import plugin_run
from tests.support.plugin_run import query_range_requests
from tests.support.prometheus import PrometheusServer, prometheus_with_history

from chargeback.core.models import UNALLOCATED, BillingLineItem
from chargeback.core.money import to_minor
from chargeback.core.reconcile import build_report
from chargeback.core.storage.sqlite import SQLiteBackend

NOW = dt.datetime(2026, 3, 10, 6, 0, tzinfo=dt.UTC)
TYPES = ("PG_COMPUTE", "PG_STORAGE", "PG_QUERIES", "PG_BACKUP")
AFTER_GAP = GAP_DAY + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """One Prometheus for the module, backfilled with the generated history."""
    with prometheus_with_history(history(), tmp_path_factory.mktemp("gm")) as prom:
        yield prom


def settings(url: str, **extra: Any) -> dict[str, Any]:
    """The tenant's plugin_settings."""
    return {
        "prometheus": {"url": url, "max_points": 7},
        "cost_types": cost_types(),
        "identities": identities(),
        "http": {"requests_per_second": None, "max_retries": 0},
    } | extra


class Stored(plugin_run.Stored):
    """What one run stored, with its lines found by what identifies them here."""

    def line(self, product_type: str, day: dt.date) -> BillingLineItem:
        return next(x for x in self.lines[day] if x.product_type == product_type)


async def run_tenant(
    tmp_path: Path, plugin_settings: dict[str, Any]
) -> tuple[Stored, SQLiteBackend]:
    """Run one tenant over the 30 days and read back what it stored."""
    return await plugin_run.run_stored(
        Stored, tmp_path, tenant="platform", ecosystem="generic_metrics",
        plugin_settings=plugin_settings, days=DAYS, now=NOW,
    )  # fmt: skip


@pytest.fixture
async def stored(
    server: PrometheusServer, tmp_path: Path
) -> AsyncIterator[tuple[Stored, SQLiteBackend]]:
    """A run of the default settings, with its open storage."""
    result = await run_tenant(tmp_path, settings(server.url))
    yield result
    await result[1].close()


def broken(product_type: str, day: dt.date) -> bool:
    """Whether the line cannot be computed: gap, counter reset, or no rate yet."""
    if product_type == "PG_STORAGE":
        return day == GAP_DAY
    if product_type == "PG_QUERIES":
        return day in (GAP_DAY, AFTER_GAP, RESET_DAY)
    if product_type == "PG_BACKUP":
        return day < BACKUP_FROM
    return False


def expected(product_type: str, day: dt.date) -> tuple[Decimal, Decimal]:
    """The (quantity, rate) of a line from the generator's numbers and the rates, by hand."""
    if product_type == "PG_COMPUTE":
        return Decimal(72), compute_rate(day)
    if product_type == "PG_BACKUP":
        return Decimal(24), Decimal("0.10")
    if product_type == "PG_STORAGE":
        return Decimal(sum(team_sizes(day).values()) * 24) / GIB, Decimal("0.0002")
    return Decimal(sum(team_queries(day).values())) / 1000, Decimal("0.003")


async def test_lines_are_known_rates_times_known_quantities(
    stored: tuple[Stored, SQLiteBackend],
) -> None:
    """Every computable line is the hand-read rate x the generated quantity, exactly."""
    result, _ = stored
    for day in DAYS:
        assert sorted(x.product_type for x in result.lines[day]) == sorted(TYPES)
        for product_type in TYPES:
            line = result.line(product_type, day)
            if broken(product_type, day):
                continue
            quantity, rate = expected(product_type, day)
            assert line.error is None, line
            assert (line.quantity, line.unit_price) == (quantity, rate), line
            assert line.amount == to_minor(quantity * rate), line


async def test_a_rate_change_applies_from_its_valid_from_day(
    stored: tuple[Stored, SQLiteBackend],
) -> None:
    """Compute is 0.50/h through Feb 14 and 0.60/h from Feb 15 (3 instances x 24 h)."""
    result, _ = stored
    before = result.line("PG_COMPUTE", dt.date(2026, 2, 14))
    after = result.line("PG_COMPUTE", dt.date(2026, 2, 15))
    assert (before.amount, after.amount) == (to_minor("36.00"), to_minor("43.20"))


async def test_storage_is_split_by_the_known_sizes(stored: tuple[Stored, SQLiteBackend]) -> None:
    """Each storage line goes to the teams in proportion to their bytes stored that day."""
    result, _ = stored
    for day in DAYS:
        if broken("PG_STORAGE", day):
            continue
        line = result.line("PG_STORAGE", day)
        parts, known = result.parts(line), team_sizes(day)
        assert set(parts) == set(known), (day, parts)
        assert sum(parts.values()) == line.amount
        for team, share in parts.items():
            assert abs(share - line.amount * known[team] / sum(known.values())) < 1


async def test_queries_are_split_by_usage_and_shared_ratio(
    stored: tuple[Stored, SQLiteBackend],
) -> None:
    """80 % by each team's queries, 20 % evenly over everyone active that day."""
    result, _ = stored
    for day in DAYS:
        if broken("PG_QUERIES", day):
            continue
        line = result.line("PG_QUERIES", day)
        parts, known = result.parts(line), team_queries(day)
        everyone = present(day)
        assert set(parts) == everyone, (day, parts)
        assert sum(parts.values()) == line.amount
        total = sum(known.values())
        for who, share in parts.items():
            exact = line.amount * 0.8 * known.get(who, 0) / total + line.amount * 0.2 / len(
                everyone
            )
            assert abs(share - exact) < 2, (day, who, share, exact)


async def test_even_rules_split_over_the_identities_of_the_day(
    stored: tuple[Stored, SQLiteBackend],
) -> None:
    """Compute goes evenly to the static identity and the teams discovered that day."""
    result, _ = stored
    for day in (DAYS[0], ARRIVES - dt.timedelta(days=1), ARRIVES, DAYS[-1]):
        line = result.line("PG_COMPUTE", day)
        parts = result.parts(line)
        assert set(parts) == present(day)
        assert (LATE_TEAM in parts) == (day >= ARRIVES)
        assert STATIC in parts
        assert max(parts.values()) - min(parts.values()) <= 1
        assert sum(parts.values()) == line.amount


async def test_a_scrape_gap_is_reported_never_billed_as_zero(
    stored: tuple[Stored, SQLiteBackend],
) -> None:
    """The gap day's measured lines (queries also the day after) say why they have no amount."""
    result, _ = stored
    gaps = [("PG_STORAGE", GAP_DAY), ("PG_QUERIES", GAP_DAY), ("PG_QUERIES", AFTER_GAP)]
    for product_type, day in gaps:
        line = result.line(product_type, day)
        assert line.error is not None
        assert line.error.startswith("scrape_gap: no samples of "), line
        assert (line.amount, line.quantity) == (0, None)
        rows = [r for r in result.rows[day] if r.line_id == line.line_id]
        assert [(r.identity_id, r.amount) for r in rows] == [(UNALLOCATED, 0)]
        assert rows[0].reason is not None
        assert "scrape_gap" in rows[0].reason
    assert result.line("PG_COMPUTE", GAP_DAY).error is None
    assert result.line("PG_STORAGE", AFTER_GAP).error is None
    assert result.summary.scrape_gap_lines == len(gaps)
    assert result.summary.counts()["scrape_gap_lines"] == len(gaps)


async def test_a_counter_reset_and_a_missing_rate_are_reported(
    stored: tuple[Stored, SQLiteBackend],
) -> None:
    """team-b's restarted counter leaves its day unknown; the backup has no rate before Feb 5."""
    result, _ = stored
    reset = result.line("PG_QUERIES", RESET_DAY)
    assert reset.error is not None
    assert reset.error.startswith("counter_reset: "), reset
    assert reset.amount == 0
    after = result.line("PG_QUERIES", RESET_DAY + dt.timedelta(days=1))
    quantity, _ = expected("PG_QUERIES", after.date)
    assert (after.error, after.quantity) == (None, quantity)
    for day in DAYS:
        backup = result.line("PG_BACKUP", day)
        if day < BACKUP_FROM:
            assert backup.error is not None
            assert backup.error.startswith("no_rate: "), backup
            assert backup.amount == 0
        else:
            assert backup.error is None


async def test_reconcile_balances_every_day(stored: tuple[Stored, SQLiteBackend]) -> None:
    """Allocated equals billed for every date and product type; no date missing."""
    result, storage = stored
    report = await build_report(storage, "platform", DAYS[0], DAYS[-1] + dt.timedelta(days=1))
    assert report.ok, report.mismatches
    assert not report.missing_dates
    billed = sum(x.amount for d in DAYS for x in result.lines[d])
    assert report.billed_total == report.allocated_total == billed > 0


async def test_usage_labels_are_identities_with_from_usage(
    server: PrometheusServer, tmp_path: Path
) -> None:
    """Without discovery, the teams come from the usage selectors' label, on their days."""
    ids = {"from_usage": True}
    result, storage = await run_tenant(tmp_path, settings(server.url, identities=ids))
    try:
        day = DAYS[3]
        parts = result.parts(result.line("PG_COMPUTE", day))
        assert set(parts) == set(team_sizes(day))
        assert UNALLOCATED not in parts
    finally:
        await storage.close()


async def test_usage_of_an_unknown_label_value_goes_unallocated(
    server: PrometheusServer, tmp_path: Path
) -> None:
    """With only a static list, usage by teams not on it is UNALLOCATED, not charged to them."""
    ids = {"static": [{"id": "team-a"}], "from_usage": False}
    result, storage = await run_tenant(tmp_path, settings(server.url, identities=ids))
    try:
        day = DAYS[3]
        line = result.line("PG_STORAGE", day)
        parts, known = result.parts(line), team_sizes(day)
        assert set(parts) == {"team-a", UNALLOCATED}
        exact = line.amount * known["team-a"] / sum(known.values())
        assert abs(parts["team-a"] - exact) < 1
    finally:
        await storage.close()


async def test_one_request_per_query_and_chunk(server: PrometheusServer, tmp_path: Path) -> None:
    """2 measured quantities + 2 usage queries over 30 days in 7-day chunks, plus the listing."""
    before = query_range_requests(server)
    _, storage = await run_tenant(tmp_path, settings(server.url))
    await storage.close()
    listing = math.ceil((400 + 1) / 7)  # identities.lookback_days back from today, to today
    # The usage queries also cover the days up to yesterday, which the run does not bill
    # yet: the usage ledger keeps them while the source holds them (no second round).
    usage_days = (NOW.date() - dt.timedelta(days=1) - DAYS[0]).days + 1
    chunks = 2 * math.ceil(30 / 7) + 2 * math.ceil(usage_days / 7)
    assert query_range_requests(server) - before == chunks + listing
