"""Unattributed cost: UNALLOCATED, sentinel identities and principals the inventory lacks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.core.models import UNALLOCATED, BillingLineItem, ChargebackRow, Identity
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.core.unattributed import Unattributed, render_unattributed, unattributed_cost

DAY = dt.date(2026, 3, 1)
NOW = dt.datetime(2026, 3, 5, tzinfo=dt.UTC)
IDENTITIES = [
    Identity("sa-known", "service_account"),
    Identity("CONNECTOR_OWNER_UNKNOWN", "sentinel", "connector owner unknown"),
]


async def store(path: Path, shares: dict[str, int]) -> SQLiteBackend:
    backend = SQLiteBackend(path)
    await backend.open()
    await backend.sync_inventory("t", [], IDENTITIES, NOW)
    line = BillingLineItem("l1", DAY, "KAFKA_NUM_CKUS", "KAFKA", sum(shares.values()))
    rows = [
        ChargebackRow("t", DAY, "l1", ident, "KAFKA_NUM_CKUS", "KAFKA", None, None,
                      "usage", "rule", amount, None)
        for ident, amount in shares.items()
    ]  # fmt: skip
    await backend.commit_date(
        "t", DAY, lines=[line], rows=rows, plugin_rows=[], billing_fingerprint="b",
        settings_fingerprint="s", inventory_fingerprint="i", calculated_at=NOW,
    )  # fmt: skip
    return backend


async def test_each_kind_is_named(tmp_path: Path) -> None:
    """UNALLOCATED, the sentinel and the unknown principal are counted apart; known is not."""
    shares = {"sa-known": 500, UNALLOCATED: 40, "CONNECTOR_OWNER_UNKNOWN": 200, "u-gone": 260}
    backend = await store(tmp_path / "cb.db", shares)
    try:
        u = await unattributed_cost(backend, "t", DAY, DAY + dt.timedelta(days=1))
    finally:
        await backend.close()
    assert u == Unattributed(1000, 40, {"CONNECTOR_OWNER_UNKNOWN": 200}, {"u-gone": 260})
    assert u.amount == 500
    text = "\n".join(render_unattributed(u))
    assert text.startswith("Unattributed: 0.000000500 of 0.000001000 (50.0%)")
    assert "CONNECTOR_OWNER_UNKNOWN (sentinel)" in text
    assert "1 principals not in the inventory" in text
    assert "u-gone" in text


@settings(max_examples=25, deadline=None)
@given(
    shares=st.dictionaries(
        st.sampled_from(["sa-known", UNALLOCATED, "CONNECTOR_OWNER_UNKNOWN", "u-1", "u-2"]),
        st.integers(-(10**12), 10**12),
        min_size=1,
    )
)
def test_unattributed_plus_attributed_is_the_total(
    tmp_path_factory: pytest.TempPathFactory, shares: dict[str, int]
) -> None:
    """For any split, unattributed + the known identities' cost equals the total, exactly."""
    import asyncio  # noqa: PLC0415

    path = tmp_path_factory.mktemp("u") / "cb.db"

    async def run() -> Unattributed:
        backend = await store(path, shares)
        try:
            return await unattributed_cost(backend, "t", DAY, DAY + dt.timedelta(days=1))
        finally:
            await backend.close()

    u = asyncio.run(run())
    assert u.total == sum(shares.values())
    assert u.amount + shares.get("sa-known", 0) == u.total
