"""Smoke tests: the official FOCUS validator runs, passes a conforming file, names a violation."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tests.support.focus import RuleResult, available_versions, parse_report
from tests.support.plugin import FocusValidator

pytestmark = pytest.mark.e2e

# Two usage charges of one day with the FOCUS 1.2 mandatory columns (and ServiceSubcategory,
# InvoiceId, which the validator checks as well). Decimals are written as decimals.
BASE_ROW = {
    "BilledCost": "1.500000000",
    "BillingAccountId": "org-1",
    "BillingAccountName": "Acme",
    "BillingCurrency": "USD",
    "BillingPeriodStart": "2026-11-01T00:00:00Z",
    "BillingPeriodEnd": "2026-12-01T00:00:00Z",
    "ChargeCategory": "Usage",
    "ChargeClass": "",
    "ChargeDescription": "Kafka storage",
    "ChargeFrequency": "Usage-Based",
    "ChargePeriodStart": "2026-11-01T00:00:00Z",
    "ChargePeriodEnd": "2026-11-02T00:00:00Z",
    "ConsumedQuantity": "3.0",
    "ConsumedUnit": "GB-Hours",
    "ContractedCost": "1.500000000",
    "EffectiveCost": "1.500000000",
    "InvoiceId": "",
    "InvoiceIssuerName": "Confluent",
    "ListCost": "1.500000000",
    "PricingQuantity": "3.0",
    "PricingUnit": "GB-Hours",
    "ProviderName": "Confluent",
    "PublisherName": "Confluent",
    "ServiceCategory": "Integration",
    "ServiceSubcategory": "Messaging",
    "ServiceName": "Confluent Cloud Kafka",
    "Tags": '{"team": "payments"}',
}


def write_focus_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write FOCUS rows as CSV (header from the first row)."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def two_rows(**changes: str) -> list[dict[str, str]]:
    """The base row and a second day's network charge, both with ``changes`` applied."""
    second = {
        **BASE_ROW,
        "BilledCost": "0.250000000",
        "ContractedCost": "0.250000000",
        "EffectiveCost": "0.250000000",
        "ListCost": "0.250000000",
        "ChargeDescription": "Kafka network",
        "ChargePeriodStart": "2026-11-02T00:00:00Z",
        "ChargePeriodEnd": "2026-11-03T00:00:00Z",
        "Tags": "{}",
    }
    return [{**BASE_ROW, **changes}, {**second, **changes}]


class TestFocusValidator:
    def test_a_conforming_file_passes(
        self, tmp_path: Path, focus_validator: FocusValidator
    ) -> None:
        """A small hand-written FOCUS 1.2 CSV has no violation, and rules really ran."""
        report = focus_validator(write_focus_csv(tmp_path / "ok.csv", two_rows()))
        assert report.conforms, report.describe()
        assert report.tests > 500
        assert report.tests - report.skipped > 100  # rules checked, not all skipped
        # InvoiceId is null XOR not null: the alternative that did not hold is excused.
        assert {r.rule_id for r in report.excused} == {"InvoiceId-C-005-C"}

    def test_known_violations_are_named(
        self, tmp_path: Path, focus_validator: FocusValidator
    ) -> None:
        """A non-ISO currency and a missing BilledCost column fail their rules, by name."""
        rows = [
            {k: v for k, v in row.items() if k != "BilledCost"}
            for row in two_rows(BillingCurrency="ZZZ")
        ]
        report = focus_validator(write_focus_csv(tmp_path / "bad.csv", rows))
        assert not report.conforms
        failed = {result.rule_id for result in report.violations}
        assert "BillingCurrency-C-006-M" in failed, report.describe()  # ISO 4217 codes
        assert "CostAndUsage-D-006-M" in failed, report.describe()  # BilledCost present
        assert "national currency" in report.describe()

    def test_offline_it_ships_the_1_2_rules(self) -> None:
        """The installed validator has the FOCUS 1.2 rule set on disk (no download needed)."""
        assert "1.2" in available_versions()


def test_report_parsing_reads_failures_and_errors() -> None:
    """Failures and errors of the JUnit report become RuleResults with the rule's id."""
    xml = (
        '<testsuites tests="3" failures="1" errors="1" skipped="1">'
        '<testsuite name="s"><testcase name="A-C-001-M :: Type"><failure message="bad"/>'
        '</testcase><testcase name="B-C-002-M :: None"><error message="upstream"/></testcase>'
        '<testcase name="C-C-003-M :: Format"><skipped message="n/a"/></testcase>'
        "</testsuite></testsuites>"
    )
    tests, skipped, results = parse_report(xml, {"A-C-001-M": "A MUST be a decimal."})
    assert (tests, skipped) == (3, 1)
    assert results == [
        RuleResult("A-C-001-M", "failure", "bad", "A MUST be a decimal."),
        RuleResult("B-C-002-M", "error", "upstream", ""),
    ]
