"""The period series of /metrics, from a real SQLite file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from chargeback.core.models import BillingLineItem
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.service.metrics import ServiceMetrics

AT = dt.datetime(2026, 11, 5, 6, tzinfo=dt.UTC)


async def commit(storage: SQLiteBackend, day: dt.date, amount: int, fp: str) -> None:
    line = BillingLineItem("L1", day, "SUPPORT", "SUPPORT", amount)
    await storage.commit_date(
        "acme", day, lines=[line], rows=[], plugin_rows=(), billing_fingerprint=fp,
        settings_fingerprint="s", inventory_fingerprint="i", calculated_at=AT,
    )  # fmt: skip


async def test_closed_months_and_restatements_are_exposed(tmp_path: Path) -> None:
    """October closed (1), November open (0); a restatement counts, also after a restart."""
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry)
    async with SQLiteBackend(tmp_path / "db.sqlite") as storage:
        await commit(storage, dt.date(2026, 10, 31), 5, "b1")
        await commit(storage, dt.date(2026, 11, 3), 5, "b1")
        await storage.sync_periods("acme", dt.date(2026, 11, 2), AT)
        await commit(storage, dt.date(2026, 10, 31), 7, "b2")  # restated after closing
        await storage.sync_periods("acme", dt.date(2026, 11, 2), AT)
        await metrics.periods.refresh(storage, "acme")
    text = generate_latest(registry).decode()
    assert 'chargeback_period_closed{period="2026-11",tenant="acme"} 0.0' in text
    assert 'chargeback_period_closed{period="2026-10",tenant="acme"} 0.0' in text
    assert 'chargeback_restatements_total{tenant="acme"} 1.0' in text
    later = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    again = ServiceMetrics(CollectorRegistry())
    async with SQLiteBackend(tmp_path / "db.sqlite") as storage:
        await storage.sync_periods("acme", later.date(), later)
        await again.periods.refresh(storage, "acme")
    text = generate_latest(again.registry).decode()
    assert 'chargeback_period_closed{period="2026-10",tenant="acme"} 1.0' in text
    assert 'chargeback_restatements_total{tenant="acme"} 1.0' in text
    again.tenant_removed("acme")
    lines = generate_latest(again.registry).decode().splitlines()
    assert [n for n in lines if n.startswith(("chargeback_period", "chargeback_restate"))] == []
