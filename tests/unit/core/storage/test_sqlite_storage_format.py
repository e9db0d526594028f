"""How SQLite stores a billing line: exact decimal text and canonical JSON, on both write paths."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from chargeback.core.models import BillingLineItem
from chargeback.core.storage.sqlite import SQLiteBackend

DAY = dt.date(2024, 5, 1)


@pytest.fixture(params=[None, 0], ids=["in-process", "writer-process"])
async def backend(request, tmp_path) -> AsyncIterator[SQLiteBackend]:
    """A backend on a fresh file, once writing in-process and once through the child."""
    store = SQLiteBackend(tmp_path / "chargeback.db", writer_process_min_rows=request.param)
    await store.open()
    yield store
    await store.close()


class TestLineColumns:
    async def test_line_details_round_trip_exactly(self, backend, commit_date):
        """Decimal quantities and prices are stored as exact text, attributes as JSON."""
        line = BillingLineItem(
            "line-d",
            DAY,
            "KAFKA_STORAGE",
            "KAFKA",
            123,
            quantity=Decimal("0.000000000123456789"),
            unit_price=Decimal("1.10"),
            attributes={"b": "2", "a": "1"},
        )
        await commit_date(backend, "t1", DAY, [line], [])
        conn = sqlite3.connect(backend.path)
        stored = conn.execute(
            "SELECT quantity, unit_price, attributes FROM billing_lines"
        ).fetchone()
        conn.close()
        assert stored == ("1.23456789E-10", "1.10", '{"a":"1","b":"2"}')
        assert Decimal(stored[0]) == line.quantity
