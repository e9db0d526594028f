"""The ``focus`` emitter over a real SQLite file: layout, month rewrites, params."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chargeback.core.emitters import registry
from chargeback.core.emitters.focus import FocusEmitter
from chargeback.core.models import BillingLineItem, ChargebackRow
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.errors import ConfigError

NOW = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
D1, D2 = dt.date(2026, 10, 31), dt.date(2026, 11, 1)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
    backend = SQLiteBackend(tmp_path / "db.sqlite")
    await backend.open()
    yield backend
    await backend.close()


def make_emitter(storage: SQLiteBackend, out: Path, **params: object) -> FocusEmitter:
    emitter = registry.create("focus", {"output_dir": str(out), **params}, storage_backend=storage)
    assert isinstance(emitter, FocusEmitter)
    return emitter


async def commit(
    storage: SQLiteBackend, day: dt.date, amount: int, fp: str = "b1"
) -> list[ChargebackRow]:
    line = BillingLineItem("L1", day, "SUPPORT", "SUPPORT", amount, unit="Day")
    rows = [
        ChargebackRow(
            "acme",
            day,
            "L1",
            "sa-1",
            "SUPPORT",
            "SUPPORT",
            None,
            None,
            "shared",
            "even",
            amount,
            None,
        )
    ]
    await storage.commit_date(
        "acme", day, lines=[line], rows=rows, plugin_rows=(), billing_fingerprint=fp,
        settings_fingerprint="s", inventory_fingerprint="i", calculated_at=NOW,
    )  # fmt: skip
    return rows


async def test_dates_write_partials_and_finish_writes_each_month_once(
    storage: SQLiteBackend, tmp_path: Path
) -> None:
    """Emitting writes daily partials; finish writes one dataset per month, then nothing."""
    emitter = make_emitter(storage, tmp_path / "out")
    for day in (D1, D2):
        await emitter("acme", day, await commit(storage, day, 10**9))
    assert emitter.daily_path("acme", D1).exists()
    assert emitter.daily_path("acme", D2).exists()
    written = await emitter.finish("acme")
    assert [r.path.name for r in written] == ["2026-10.csv", "2026-11.csv"]
    assert [r.billed_total for r in written] == [10**9, 10**9]
    assert await emitter.finish("acme") == []  # nothing changed: no rewrite
    await commit(storage, D2, 2 * 10**9, fp="b2")  # D2 recalculated
    again = await emitter.finish("acme")
    assert [(r.path.name, r.billed_total) for r in again] == [("2026-11.csv", 2 * 10**9)]


async def test_a_deleted_month_file_is_written_again(
    storage: SQLiteBackend, tmp_path: Path
) -> None:
    """The manifest is not trusted over a missing dataset."""
    emitter = make_emitter(storage, tmp_path / "out")
    await commit(storage, D2, 5)
    await emitter.finish("acme")
    emitter.month_path("acme", D2).unlink()
    assert [r.path.name for r in await emitter.finish("acme")] == ["2026-11.csv"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"version": "1.1"}, "FOCUS version must be one of 1.2, 1.3"),
        ({"format": "xlsx"}, "format 'xlsx' is not available"),
        ({"currency": "usd"}, "ISO 4217"),
    ],
)
def test_bad_params_are_config_errors(
    storage: SQLiteBackend, tmp_path: Path, params: dict[str, object], message: str
) -> None:
    """A bad version, format or currency names the param (exit 2 at start-up)."""
    with pytest.raises(ConfigError, match=message):
        make_emitter(storage, tmp_path, **params)


def test_a_tenant_id_cannot_escape_the_output_dir(storage: SQLiteBackend, tmp_path: Path) -> None:
    """A tenant id with a path separator is refused."""
    with pytest.raises(ValueError, match="cannot be used as a directory name"):
        make_emitter(storage, tmp_path).tenant_dir("../x")
