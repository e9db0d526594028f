"""The ``focus`` emitter on a real sim backfill: conformance, conservation, layout."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from tests.integration.focus.conftest import RESTATED, TENANT, Backfill
from tests.support.focus import available_versions, run_focus_validator

from chargeback.core.money import to_minor
from chargeback.core.storage.sqlite import SQLiteBackend

pytestmark = pytest.mark.e2e

SUPPORTED = (
    "SUB_ACCOUNT_SUPPORTED",
    "REGION_SUPPORTED",
    "TAGGING_SUPPORTED",
    "USAGE_MEASUREMENT_SUPPORTED",
    "BILLING_BASED_ON_PROVISIONED_RESOURCES_SUPPORTED",
    "RESOURCE_TYPE_ASSIGNMENT_SUPPORTED",
)
"""The FOCUS features Confluent Cloud has that the export fills (README: FOCUS export)."""


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def month_files(root: Path) -> list[Path]:
    return sorted((root / TENANT).glob("*.csv"))


async def _billed(db: Path, first: dt.date, end: dt.date) -> tuple[int, dict[str, int]]:
    storage = SQLiteBackend(db, read_only=True)
    await storage.open()
    try:
        total = 0
        by_line: dict[str, int] = {}
        day = first
        while day < end:
            for line in await storage.read_lines(TENANT, day):
                total += line.amount
                by_line[f"{day}/{line.line_id}"] = line.amount
            day += dt.timedelta(days=1)
        return total, by_line
    finally:
        await storage.close()


def test_one_dataset_per_month(backfill: Backfill) -> None:
    """October and November each have one dataset; only the open month keeps partials."""
    root = backfill.out["1.3"] / TENANT
    assert [p.name for p in month_files(backfill.out["1.3"])] == ["2026-10.csv", "2026-11.csv"]
    daily = sorted((root / "2026-11.daily").glob("*.csv"))
    assert [p.stem for p in daily][-1] == "2026-11-21"
    assert not (root / "2026-10.daily").exists(), "a closed month's partials are removed"
    statuses = {r["x_BillingPeriodStatus"] for r in read_rows(root / "2026-10.csv")}
    assert statuses == {"closed"}
    november = read_rows(root / "2026-11.csv")
    assert {r["x_BillingPeriodStatus"] for r in november} == {"open"}
    by_day = {r["ChargePeriodStart"][:10]: r["x_ChargePeriodStatus"] for r in november}
    assert by_day["2026-11-06"] == "closed"
    assert by_day[RESTATED.isoformat()] == "open"  # restated after it closed
    assert by_day["2026-11-21"] == "open"


async def _restatements(db: Path) -> tuple[list[object], dict[str, int], dict[dt.date, str]]:
    storage = SQLiteBackend(db, read_only=True)
    await storage.open()
    try:
        return (
            list(await storage.list_restatements(TENANT)),
            await storage.restatement_counts(),
            await storage.period_statuses(TENANT, dt.date(2026, 10, 1), dt.date(2026, 12, 1)),
        )
    finally:
        await storage.close()


def test_the_restated_closed_day_reopened_and_was_counted(backfill: Backfill) -> None:
    """The rerun found 2026-11-07's settled bill: one restatement, before < after."""
    restatements, counts, statuses = asyncio.run(_restatements(backfill.db_path))
    [restated] = restatements
    assert restated.day == RESTATED  # type: ignore[attr-defined]
    assert restated.billed_after > restated.billed_before  # type: ignore[attr-defined]
    assert counts == {TENANT: 1}
    assert statuses[RESTATED] == "open"
    assert statuses[dt.date(2026, 10, 31)] == "closed"
    assert statuses[dt.date(2026, 11, 20)] == "open"
    assert statuses[dt.date(2026, 11, 19)] == "closed"


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_billed_cost_sums_to_the_bill_to_the_nano(backfill: Backfill, version: str) -> None:
    """Summed over the export, BilledCost equals the stored bill exactly."""
    total, _ = asyncio.run(
        _billed(backfill.db_path, backfill.first, backfill.last + dt.timedelta(days=1))
    )
    exported = sum(
        to_minor(Decimal(r["BilledCost"]))
        for path in month_files(backfill.out[version])
        for r in read_rows(path)
    )
    assert total != 0
    assert exported == total


def test_allocated_rows_of_an_origin_sum_to_the_origin(backfill: Backfill) -> None:
    """Per origin charge: BilledCost of its allocated rows = the line, ratios sum to 1."""
    _, by_line = asyncio.run(
        _billed(backfill.db_path, backfill.first, backfill.last + dt.timedelta(days=1))
    )
    billed: dict[str, int] = defaultdict(int)
    ratios: dict[str, Decimal] = defaultdict(Decimal)
    for path in month_files(backfill.out["1.3"]):
        for r in read_rows(path):
            key = f"{r['ChargePeriodStart'][:10]}/{r['x_LineId']}"
            billed[key] += to_minor(Decimal(r["BilledCost"]))
            ratio = r["AllocatedMethodDetails"].split('"AllocatedRatio":', 1)[1].split("}", 1)[0]
            ratios[key] += Decimal(ratio)
    assert billed == by_line
    assert set(ratios.values()) == {Decimal(1)}


def test_credits_and_unallocated_parts_are_exported(backfill: Backfill) -> None:
    """The scenario the validator checks holds credits and unallocated portions."""
    rows = [r for p in month_files(backfill.out["1.3"]) for r in read_rows(p)]
    credits = [r for r in rows if r["ChargeCategory"] == "Credit"]
    unallocated = [r for r in rows if r["x_IdentityId"] == "UNALLOCATED"]
    assert credits
    assert all(Decimal(r["BilledCost"]) < 0 for r in credits)
    assert unallocated
    assert all(r["AllocatedResourceId"] == "" for r in unallocated)


def test_version_12_conforms(backfill: Backfill) -> None:
    """The official validator finds no violation in the 1.2 month dataset."""
    path = backfill.out["1.2"] / TENANT / "2026-11.csv"
    report = run_focus_validator(path, "1.2", applicability_criteria=SUPPORTED)
    assert report.tests > 400
    assert report.conforms, report.describe()


def test_version_13_conforms_when_a_13_rule_set_is_given(
    backfill: Backfill, focus_rule_set_path: Path | None
) -> None:
    """With a 1.3 rule set (``pytest --focus-rule-set-path DIR``) the validator checks 1.3.

    Offline the validator ships the 1.2 rules only (1.3 downloads from the spec's
    releases): without the setting this test says so and skips; the 1.3 split allocation
    requirements are held by tests/unit/core/emitters/test_focus_records.py either way.
    """
    if "1.3" not in available_versions(focus_rule_set_path):
        pytest.skip("no FOCUS 1.3 rule set: give one with --focus-rule-set-path DIR")
    path = backfill.out["1.3"] / TENANT / "2026-11.csv"
    report = run_focus_validator(
        path, "1.3", rule_set_path=focus_rule_set_path, applicability_criteria=SUPPORTED
    )
    assert report.conforms, report.describe()
