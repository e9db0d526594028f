"""The csv emitter: one file per tenant and date, exact amounts, atomic rewrite."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any, cast

import pytest

from chargeback.core.emitters.csv import HEADER, NAME_COLUMNS, CsvEmitter, make_csv_emitter
from chargeback.core.models import BillingLineItem, ChargebackRow, Identity, Resource
from chargeback.core.ownership import (
    Directory,
    Matcher,
    OwnershipSettings,
    attribute,
    compile_rules,
    key_amounts,
)
from chargeback.core.storage.ownership import ownership_store
from chargeback.core.storage.sqlite import SQLiteBackend

DAY = dt.date(2026, 3, 1)
NOW = dt.datetime(2026, 3, 5, tzinfo=dt.UTC)


def row(line_id: str, identity: str, amount: int, reason: str | None = None) -> ChargebackRow:
    return ChargebackRow(
        "acme", DAY, line_id, identity, "P", "C", "r-1", None, "usage", "rule", amount, reason
    )


def read(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


class TestCsvEmitter:
    async def test_layout_header_sorted_exact(self, tmp_path: Path) -> None:
        """The file is {dir}/{tenant}/{date}.csv with a header, sorted rows and exact decimals."""
        emitter = make_csv_emitter(str(tmp_path))
        await emitter(
            "acme", DAY, [row("b", "sa-1", -1), row("a", "sa-2", 1_234_567_890_123, "why, ok")]
        )
        data = read(tmp_path / "acme" / "2026-03-01.csv")
        assert tuple(data[0]) == (*HEADER, *NAME_COLUMNS, "currency")
        assert {r[-1] for r in data[1:]} == {"USD"}
        assert {r[len(HEADER) + 3] for r in data[1:]} == {""}  # no store: team unknown
        assert [(r[2], r[3], r[10], r[11]) for r in data[1:]] == [
            ("a", "sa-2", "1234.567890123", "why, ok"),
            ("b", "sa-1", "-0.000000001", ""),
        ]

    async def test_rewrite_replaces_whole_file(self, tmp_path: Path) -> None:
        """A recalculated date replaces the file, leaving no temporary files behind."""
        emitter = CsvEmitter(tmp_path)
        await emitter("acme", DAY, [row("a", "sa-1", 1), row("b", "sa-1", 2)])
        await emitter("acme", DAY, [row("c", "sa-3", 3)])
        data = read(tmp_path / "acme" / "2026-03-01.csv")
        assert [r[2] for r in data[1:]] == ["c"]
        assert [p.name for p in (tmp_path / "acme").iterdir()] == ["2026-03-01.csv"]

    async def test_failed_write_keeps_old_file(self, tmp_path: Path) -> None:
        """A write that fails midway leaves the previous file whole and no temp file."""
        emitter = CsvEmitter(tmp_path)
        good = [row(f"l{i}", "sa-1", i) for i in range(100)]
        await emitter("acme", DAY, good)
        before = (tmp_path / "acme" / "2026-03-01.csv").read_bytes()
        broken = [*good, row("zzz", "sa-1", cast(Any, None))]
        with pytest.raises(TypeError):
            await emitter("acme", DAY, broken)
        assert (tmp_path / "acme" / "2026-03-01.csv").read_bytes() == before
        assert len(list((tmp_path / "acme").iterdir())) == 1

    async def test_rejects_path_escaping_tenant(self, tmp_path: Path) -> None:
        """A tenant id that could escape the output directory is refused."""
        with pytest.raises(ValueError, match="directory name"):
            await CsvEmitter(tmp_path)("../evil", DAY, [])

    async def test_places_rounds_half_even(self, tmp_path: Path) -> None:
        """With fewer places the amounts are rounded half-to-even for display."""
        emitter = make_csv_emitter(str(tmp_path), places=2)
        await emitter("acme", DAY, [row("a", "sa-1", 12_345_000_000)])
        assert read(tmp_path / "acme" / "2026-03-01.csv")[1][10] == "12.34"

    def test_bad_places(self, tmp_path: Path) -> None:
        """places outside 0..9 is rejected."""
        with pytest.raises(ValueError, match="between 0 and 9"):
            make_csv_emitter(str(tmp_path), places=12)


class TestCsvNamesAndTeams:
    async def test_names_team_dimensions_currency(self, tmp_path: Path) -> None:
        """With attributions stored, each row carries names, its team, dimensions, currency."""
        async with SQLiteBackend(tmp_path / "cb.db") as storage:
            line = BillingLineItem("l1", DAY, "P", "C", 10, "lkc-1", "env-1")
            rows = [
                ChargebackRow("acme", DAY, "l1", "sa-1", "P", "C", "lkc-1", "env-1",
                              "usage", "rule", 7, None),
                ChargebackRow("acme", DAY, "l1", "sa-2", "P", "C", "lkc-1", "env-1",
                              "usage", "rule", 3, None),
            ]  # fmt: skip
            state = await storage.commit_date(
                "acme", DAY, lines=[line], rows=rows, plugin_rows=(), billing_fingerprint="b",
                settings_fingerprint="s", inventory_fingerprint="i", calculated_at=NOW,
            )  # fmt: skip
            settings = OwnershipSettings.model_validate(
                {"dimensions": ["cost_centre"], "rules": [
                    {"team": "payments", "dimensions": {"cost_centre": "CC-1"},
                     "match": {"identity_id": "sa-1"}}]}
            )  # fmt: skip
            directory = Directory.of(
                [Resource("lkc-1", "kafka_cluster", "payments-ledger"),
                 Resource("env-1", "environment", "payments-prod")],
                [Identity("sa-1", "service_account", "ledger-writer")],
            )  # fmt: skip
            matcher = Matcher(compile_rules(settings, "acme"), directory)
            att = attribute("acme", DAY, key_amounts(rows), matcher, calc_seq=state.calc_seq)
            await ownership_store(storage).write_attribution(
                att, rule_version=1, attributed_at=NOW, reemit=False
            )
            emitter = make_csv_emitter(
                str(tmp_path / "csv"), currency="EUR", storage_backend=storage
            )
            await emitter("acme", DAY, rows)
        with (tmp_path / "csv" / "acme" / "2026-03-01.csv").open(newline="") as fh:
            data = list(csv.DictReader(fh))
        picked = [
            (r["identity_id"], r["identity_name"], r["resource_name"], r["env_name"], r["team"],
             r["cost_centre"], r["currency"], r["amount"])
            for r in data
        ]  # fmt: skip
        assert picked == [
            ("sa-1", "ledger-writer", "payments-ledger", "payments-prod", "payments", "CC-1",
             "EUR", "0.000000007"),
            ("sa-2", "", "payments-ledger", "payments-prod", "UNASSIGNED", "", "EUR",
             "0.000000003"),
        ]  # fmt: skip

    def test_bad_currency(self, tmp_path: Path) -> None:
        """A currency that is not an ISO 4217 code is rejected."""
        with pytest.raises(ValueError, match="ISO 4217"):
            make_csv_emitter(str(tmp_path), currency="dollars")
