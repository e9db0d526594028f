"""The self_managed_kafka plugin against a real Prometheus holding 30 days of history.

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
from tests.integration.self_managed_kafka.history import (
    CLUSTERS,
    DAYS,
    GAP_CLUSTER,
    GAP_DAY,
    RATE_CARD,
    RESET_CLUSTER,
    RESET_DAY,
    expected_quantity,
    expected_rate,
    history,
    principal_bytes,
)
from tests.support import plugin_run
from tests.support.plugin_run import query_range_requests
from tests.support.prometheus import PrometheusServer, prometheus_with_history

from chargeback.core.models import UNALLOCATED, BillingLineItem
from chargeback.core.money import to_minor
from chargeback.core.reconcile import build_report
from chargeback.core.storage.sqlite import SQLiteBackend

NOW = dt.datetime(2026, 3, 10, 6, 0, tzinfo=dt.UTC)
TYPES = (
    "KAFKA_COMPUTE",
    "KAFKA_STORAGE",
    "KAFKA_PARTITION",
    "KAFKA_NETWORK_INGRESS",
    "KAFKA_NETWORK_EGRESS",
)
NETWORK = {"KAFKA_NETWORK_INGRESS": "in", "KAFKA_NETWORK_EGRESS": "out"}
AFTER_GAP = GAP_DAY + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """One Prometheus for the module, backfilled with the generated history."""
    with prometheus_with_history(history(), tmp_path_factory.mktemp("smk")) as prom:
        yield prom


def settings(url: str, **extra: Any) -> dict[str, Any]:
    """The tenant's plugin_settings."""
    return {
        "prometheus": {"url": url, "max_points": 7},
        "clusters": [{"id": c.id, "region": c.region} for c in CLUSTERS],
        "rate_card": RATE_CARD,
        "http": {"requests_per_second": None, "max_retries": 0},
    } | extra


class Stored(plugin_run.Stored):
    """What one run stored, with its lines found by what identifies them here."""

    def line(self, cluster: str, product_type: str, day: dt.date) -> BillingLineItem:
        return next(
            x
            for x in self.lines[day]
            if x.resource_id == cluster and x.product_type == product_type
        )


async def run_tenant(
    tmp_path: Path, plugin_settings: dict[str, Any]
) -> tuple[Stored, SQLiteBackend]:
    """Run one tenant over the 30 days and read back what it stored."""
    return await plugin_run.run_stored(
        Stored, tmp_path, tenant="onprem", ecosystem="self_managed_kafka",
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


def unknown(cluster: str, product_type: str, day: dt.date) -> bool:
    """Whether the line has no data: the gap day, and for counters the day after too; the
    egress of the day a counter restarted."""
    if (cluster, product_type, day) == (RESET_CLUSTER, "KAFKA_NETWORK_EGRESS", RESET_DAY):
        return True
    if cluster != GAP_CLUSTER:
        return False
    return day == GAP_DAY or (day == AFTER_GAP and product_type in NETWORK)


async def test_lines_are_known_rates_times_known_quantities(
    stored: tuple[Stored, SQLiteBackend],
) -> None:
    """Every line of every cluster and day is the hand-read rate x the generated quantity."""
    result, _ = stored
    for day in DAYS:
        assert len(result.lines[day]) == len(CLUSTERS) * len(TYPES)
        for ci, cluster in enumerate(CLUSTERS):
            for product_type in TYPES:
                line = result.line(cluster.id, product_type, day)
                if unknown(cluster.id, product_type, day):
                    continue
                quantity = expected_quantity(product_type, ci, day)
                rate = expected_rate(product_type, cluster, day)
                assert line.error is None, line
                assert line.quantity == quantity, (line, quantity)
                assert line.unit_price == rate
                assert line.amount == to_minor(quantity * rate), line


async def test_rate_change_applies_from_its_valid_from_day(
    stored: tuple[Stored, SQLiteBackend],
) -> None:
    """Compute is 0.25 through Feb 14 and 0.30 from Feb 15; east-2 storage doubles from Feb 10."""
    result, _ = stored
    before = result.line("east-1", "KAFKA_COMPUTE", dt.date(2026, 2, 14))
    after = result.line("east-1", "KAFKA_COMPUTE", dt.date(2026, 2, 15))
    assert (before.unit_price, after.unit_price) == (Decimal("0.25"), Decimal("0.30"))
    assert before.amount == to_minor("18.00")
    assert after.amount == to_minor("21.60")
    storage = [result.line(c, "KAFKA_STORAGE", dt.date(2026, 2, d)).unit_price
               for c, d in (("east-2", 9), ("east-2", 10), ("east-1", 10))]  # fmt: skip
    assert storage == [Decimal("0.0001"), Decimal("0.0002"), Decimal("0.0001")]
    assert result.line("west-1", "KAFKA_NETWORK_EGRESS", DAYS[0]).unit_price == Decimal("0.05")
    assert result.line("east-1", "KAFKA_NETWORK_EGRESS", DAYS[0]).unit_price == Decimal("0.02")


async def test_network_is_split_by_the_known_principal_bytes(
    stored: tuple[Stored, SQLiteBackend],
) -> None:
    """Each network line goes to its cluster's principals in proportion to their bytes."""
    result, _ = stored
    for ci, cluster in enumerate(CLUSTERS):
        for product_type, direction in NETWORK.items():
            for day in DAYS:
                if unknown(cluster.id, product_type, day):
                    continue
                line = result.line(cluster.id, product_type, day)
                parts = result.parts(line)
                known = principal_bytes(ci, day, direction)
                assert set(parts) == set(known), (line, parts)
                assert sum(parts.values()) == line.amount
                for principal, share in parts.items():
                    exact = line.amount * known[principal] / known.total()
                    assert abs(share - exact) < 1, (principal, share, exact)


async def test_compute_is_split_by_usage_and_shared_ratio(
    stored: tuple[Stored, SQLiteBackend],
) -> None:
    """Compute: 70 % by bytes in + out, 30 % evenly over the cluster's principals."""
    result, _ = stored
    day = DAYS[3]
    line = result.line("east-1", "KAFKA_COMPUTE", day)
    weights = {
        p: principal_bytes(0, day, "in")[p] + principal_bytes(0, day, "out")[p]
        for p in CLUSTERS[0].principals
    }
    total = sum(weights.values())
    parts = result.parts(line)
    assert sum(parts.values()) == line.amount
    for principal, weight in weights.items():
        exact = line.amount * 0.7 * weight / total + line.amount * 0.3 / len(weights)
        assert abs(parts[principal] - exact) < 2, (principal, parts[principal], exact)


async def test_a_scrape_gap_is_reported_never_billed_as_zero(
    stored: tuple[Stored, SQLiteBackend],
) -> None:
    """The gap day's lines (and the day after's network lines) say why they have no amount."""
    result, _ = stored
    for product_type in TYPES:
        line = result.line(GAP_CLUSTER, product_type, GAP_DAY)
        assert line.error is not None
        assert line.error.startswith("scrape_gap:"), line
        assert line.quantity is None
        assert line.amount == 0
        rows = [r for r in result.rows[GAP_DAY] if r.line_id == line.line_id]
        assert [(r.identity_id, r.amount) for r in rows] == [(UNALLOCATED, 0)]
        assert rows[0].reason is not None
        assert "scrape_gap: no samples" in rows[0].reason
    for product_type in NETWORK:
        assert result.line(GAP_CLUSTER, product_type, AFTER_GAP).error is not None
    assert result.line(GAP_CLUSTER, "KAFKA_COMPUTE", AFTER_GAP).error is None
    assert result.line("east-1", "KAFKA_COMPUTE", GAP_DAY).error is None
    assert result.summary.scrape_gap_lines == len(TYPES) + len(NETWORK)


async def test_a_counter_that_went_down_is_reported_not_billed(
    stored: tuple[Stored, SQLiteBackend],
) -> None:
    """One principal's restarted counter makes its cluster's egress of the day unknown, though
    the cluster's sum of deltas stays positive; the next day is billed again, exactly."""
    result, _ = stored
    line = result.line(RESET_CLUSTER, "KAFKA_NETWORK_EGRESS", RESET_DAY)
    assert line.error is not None
    assert line.error.startswith(f"counter_reset: bytes_out of cluster {RESET_CLUSTER}"), line
    assert (line.amount, line.quantity) == (0, None)
    rows = [r for r in result.rows[RESET_DAY] if r.line_id == line.line_id]
    assert [(r.identity_id, r.amount) for r in rows] == [(UNALLOCATED, 0)]
    ci = next(i for i, c in enumerate(CLUSTERS) if c.id == RESET_CLUSTER)
    after = result.line(RESET_CLUSTER, "KAFKA_NETWORK_EGRESS", RESET_DAY + dt.timedelta(days=1))
    assert after.quantity == expected_quantity("KAFKA_NETWORK_EGRESS", ci, after.date)
    assert result.line(RESET_CLUSTER, "KAFKA_NETWORK_INGRESS", RESET_DAY).error is None
    assert result.summary.scrape_gap_lines == len(TYPES) + len(NETWORK)  # not a gap


async def test_a_day_without_a_rate_is_reported(server: PrometheusServer, tmp_path: Path) -> None:
    """An egress rate set only from Feb 10 leaves the earlier egress lines of clusters no
    override covers with no_rate and no amount; us-west's regional rate still applies."""
    base = {
        "compute_per_broker_hour": "0.25",
        "storage_per_gib_hour": "0.0001",
        "partition_per_hour": "0.001",
        "ingress_per_gib": "0.01",
    }  # RATE_CARD's, no egress
    card = [{"valid_from": "2026-01-01", "rates": base}, *RATE_CARD[1:],
            {"valid_from": "2026-02-10", "rates": {"egress_per_gib": "0.02"}}]  # fmt: skip
    result, storage = await run_tenant(tmp_path, settings(server.url, rate_card=card))
    try:
        for day in (DAYS[0], dt.date(2026, 2, 9)):
            line = result.line("east-1", "KAFKA_NETWORK_EGRESS", day)
            assert line.error is not None
            assert line.error.startswith("no_rate: the rate card sets no egress_per_gib"), line
            assert (line.amount, line.unit_price) == (0, None)
            assert result.line("west-1", "KAFKA_NETWORK_EGRESS", day).error is None
        feb10 = result.line("east-1", "KAFKA_NETWORK_EGRESS", dt.date(2026, 2, 10))
        assert (feb10.error, feb10.unit_price) == (None, Decimal("0.02"))
        report = await build_report(storage, "onprem", DAYS[0], DAYS[-1] + dt.timedelta(days=1))
        assert report.ok, report.mismatches
    finally:
        await storage.close()


async def test_reconcile_balances_every_day(stored: tuple[Stored, SQLiteBackend]) -> None:
    """Allocated equals billed for every date and product type; no date missing."""
    result, storage = stored
    report = await build_report(storage, "onprem", DAYS[0], DAYS[-1] + dt.timedelta(days=1))
    assert report.ok, report.mismatches
    assert not report.missing_dates
    billed = sum(x.amount for d in DAYS for x in result.lines[d])
    assert report.billed_total == report.allocated_total == billed > 0


async def test_static_identities_claim_principals(server: PrometheusServer, tmp_path: Path) -> None:
    """A static team takes its principals' bytes; without the label, others go UNALLOCATED."""
    identities = {
        "from_principal_label": False,
        "static": [{"id": "team-ab", "principals": ["User:alice", "User:bob"]}],
    }
    result, storage = await run_tenant(tmp_path, settings(server.url, identities=identities))
    try:
        day = DAYS[0]
        line = result.line("east-1", "KAFKA_NETWORK_INGRESS", day)
        parts = result.parts(line)
        known = principal_bytes(0, day, "in")
        assert set(parts) == {"team-ab", UNALLOCATED}
        exact = line.amount * known["User:carol"] / known.total()
        assert abs(parts[UNALLOCATED] - exact) < 1
        assert sum(parts.values()) == line.amount
    finally:
        await storage.close()


async def test_one_request_per_query_and_chunk(server: PrometheusServer, tmp_path: Path) -> None:
    """5 quantities + 2 usage metrics over 30 days in 7-day chunks, plus the principal listing."""
    before = query_range_requests(server)
    _, storage = await run_tenant(tmp_path, settings(server.url))
    await storage.close()
    listing = math.ceil((400 + 1) / 7)  # identities.lookback_days back from today, to today
    # The usage queries also cover the days up to yesterday, which the run does not bill
    # yet: the usage ledger keeps them while the source holds them (no second round).
    usage_days = (NOW.date() - dt.timedelta(days=1) - DAYS[0]).days + 1
    chunks = 5 * math.ceil(30 / 7) + 2 * math.ceil(usage_days / 7)
    assert query_range_requests(server) - before == chunks + listing
