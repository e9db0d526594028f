"""The ``focus`` emitter on a real sim backfill: conformance, conservation, layout."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
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


def read_typed(path: Path) -> list[dict[str, object]]:
    """A Parquet dataset's rows, with its types (Decimal, datetime, str, None)."""
    return list(pq.read_table(path).to_pylist())


def month_files(root: Path, suffix: str = ".csv") -> list[Path]:
    return sorted((root / TENANT).glob(f"*{suffix}"))


def as_text(value: object) -> str:
    """A Parquet cell as the CSV dataset writes it (null -> "", UTC instants with Z)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


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
    """Summed over the export, BilledCost equals the stored bill exactly (CSV and Parquet)."""
    total, _ = asyncio.run(
        _billed(backfill.db_path, backfill.first, backfill.last + dt.timedelta(days=1))
    )
    exported = sum(
        to_minor(Decimal(r["BilledCost"]))
        for path in month_files(backfill.out[version])
        for r in read_rows(path)
    )
    typed = [
        r["BilledCost"]
        for path in month_files(backfill.out[f"{version}/parquet"], ".parquet")
        for r in read_typed(path)
    ]
    assert total != 0
    assert exported == total
    decimals = [v for v in typed if isinstance(v, Decimal)]
    assert len(decimals) == len(typed) > 0
    assert sum(decimals, Decimal(0)) == Decimal(total).scaleb(-9)  # exact, no float on the way


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_parquet_datasets_hold_the_csv_rows(backfill: Backfill, version: str) -> None:
    """The Parquet emitter writes the same months and daily partials as the CSV one, and
    each row's every cell is the CSV row's (decimals equal as numbers, instants in UTC)."""
    csv_root = backfill.out[version] / TENANT
    pq_root = backfill.out[f"{version}/parquet"] / TENANT
    stems = sorted(p.relative_to(csv_root).with_suffix("") for p in csv_root.rglob("*.csv"))
    assert stems == sorted(
        p.relative_to(pq_root).with_suffix("") for p in pq_root.rglob("*.parquet")
    )
    assert ("2026-11.daily/2026-11-21") in {str(s) for s in stems}
    for month in ("2026-10", "2026-11"):
        text = read_rows(csv_root / f"{month}.csv")
        typed = read_typed(pq_root / f"{month}.parquet")
        assert len(typed) == len(text) > 0
        for want, got in zip(text, typed, strict=True):
            assert list(got) == list(want)  # the same columns, in the same order
            for name, cell in want.items():
                value = got[name]
                if isinstance(value, Decimal):
                    assert value == Decimal(cell), (name, cell, value)
                else:
                    assert as_text(value) == cell, (name, cell, value)


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


def test_version_12_parquet_conforms(backfill: Backfill) -> None:
    """The official validator reads the Parquet month dataset and finds no violation."""
    path = backfill.out["1.2/parquet"] / TENANT / "2026-11.parquet"
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
