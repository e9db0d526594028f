"""Row factories for every storage test, and the SQLite file the SQLite-specific tests use."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from chargeback.core.models import UNALLOCATED, BillingLineItem, ChargebackRow, CostType
from chargeback.core.money import split
from chargeback.core.storage.sqlite import SQLiteBackend

DAY = dt.date(2024, 5, 1)
NOW = dt.datetime(2024, 5, 4, 6, 0, tzinfo=dt.UTC)

LineFactory = Callable[..., BillingLineItem]
RowsFactory = Callable[..., list[ChargebackRow]]


@pytest.fixture
async def backend(tmp_path) -> AsyncIterator[SQLiteBackend]:
    """An open backend on a fresh database file, closed after the test."""
    store = SQLiteBackend(tmp_path / "chargeback.db")
    await store.open()
    yield store
    await store.close()


def make_line(
    line_id: str,
    amount: int,
    *,
    day: dt.date = DAY,
    product_type: str = "KAFKA_NETWORK_READ",
    resource_id: str | None = "lkc-1",
    env_id: str | None = "env-1",
) -> BillingLineItem:
    """Build a billing line with sensible defaults."""
    return BillingLineItem(
        line_id=line_id,
        date=day,
        product_type=product_type,
        product_category="KAFKA",
        amount=amount,
        resource_id=resource_id,
        env_id=env_id,
    )


def split_line(
    tenant_id: str, line: BillingLineItem, identities: Sequence[str], weights: Sequence[int]
) -> list[ChargebackRow]:
    """Split a line exactly over identities (an identity named UNALLOCATED gets that type)."""
    parts = split(line.amount, weights)
    return [
        ChargebackRow(
            tenant_id,
            line.date,
            line.line_id,
            identity,
            line.product_type,
            line.product_category,
            line.resource_id,
            line.env_id,
            CostType.UNALLOCATED if identity == UNALLOCATED else CostType.USAGE,
            "test-rule",
            part,
            "no usage" if identity == UNALLOCATED else None,
        )
        for identity, part in zip(identities, parts, strict=True)
    ]


@pytest.fixture
def line_factory() -> LineFactory:
    """The :func:`make_line` factory."""
    return make_line


@pytest.fixture
def rows_factory() -> Callable[..., list[ChargebackRow]]:
    """The :func:`split_line` factory."""
    return split_line


async def commit(
    store: SQLiteBackend,
    tenant_id: str,
    day: dt.date,
    lines: Sequence[BillingLineItem],
    rows: Sequence[ChargebackRow],
    **kwargs,
):
    """Commit a date with default fingerprints."""
    params: dict[str, Any] = {
        "plugin_rows": (),
        "billing_fingerprint": "billing-1",
        "settings_fingerprint": "settings-1",
        "inventory_fingerprint": "inventory-1",
        "calculated_at": NOW,
    }
    params.update(kwargs)
    return await store.commit_date(tenant_id, day, lines=lines, rows=rows, **params)


@pytest.fixture
def commit_date():
    """The :func:`commit` helper."""
    return commit
