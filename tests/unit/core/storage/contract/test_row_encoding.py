"""A date's rows reach the database and come back exactly: any text, any 64-bit amount."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.core.models import ChargebackRow
from chargeback.core.storage.factory import open_backend
from chargeback.errors import StorageError
from chargeback.settings import StorageSettings

DAY = dt.date(2024, 5, 1)
NOW = dt.datetime(2024, 5, 4, 6, 0, tzinfo=dt.UTC)
_tenants = itertools.count()

# Any text SQLite can store: every code point but lone surrogates (not encodable as UTF-8).
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
# Wide amounts whose sum over a date (at most 40 rows) still fits the 64-bit totals.
amount = st.integers(min_value=-(2**57), max_value=2**57)
row_fields = st.tuples(
    text.filter(bool),  # line_id
    text.filter(bool),  # identity_id
    text,  # product_type
    text,  # product_category
    st.none() | text,  # resource_id
    st.none() | text,  # env_id
    text,  # cost_type
    text,  # rule
    amount,
    st.none() | text,  # reason
)


async def _commit_and_read(
    settings_: StorageSettings, tenant: str, rows: list[ChargebackRow]
) -> list[ChargebackRow]:
    async with open_backend(settings_) as store:
        await store.commit_date(
            tenant, DAY, lines=[], rows=rows, plugin_rows=[],
            billing_fingerprint="b", settings_fingerprint="s",
            inventory_fingerprint="i", calculated_at=NOW,
        )  # fmt: skip
        return await store.read_rows(tenant, DAY)


class TestRowEncoding:
    @settings(max_examples=60, deadline=None)
    @given(fields=st.lists(row_fields, min_size=1, max_size=40))
    def test_any_rows_round_trip_exactly_and_in_order(
        self, tmp_path_factory, storage_target, fields
    ):
        """Any text (quotes, escapes, NUL, emoji) and any amount reads back as written, in order."""
        directory = tmp_path_factory.getbasetemp() / f"row_encoding_{storage_target.name}"
        directory.mkdir(exist_ok=True)
        tenant = f"t{next(_tenants)}"
        if not storage_target.holds_nul:  # refused whole: test_nul_in_text_survives
            fields = [tuple(_without_nul(v) for v in f) for f in fields]
        rows = [ChargebackRow(tenant, DAY, *f) for f in fields]
        assert asyncio.run(_commit_and_read(storage_target.make(directory), tenant, rows)) == rows

    async def test_amount_beyond_64_bits_is_refused_not_rounded(self, backend):
        """A row amount past 2**63 - 1 fails the commit instead of being stored as a float."""
        row = ChargebackRow("t", DAY, "l", "sa-1", "P", "C", None, None, "usage", "r", 2**63, None)
        with pytest.raises(ValueError, match="64-bit"):
            await backend.commit_date(
                "t", DAY, lines=[], rows=[row], plugin_rows=[],
                billing_fingerprint="b", settings_fingerprint="s",
                inventory_fingerprint="i", calculated_at=NOW,
            )  # fmt: skip
        assert await backend.read_rows("t", DAY) == []

    async def test_nul_in_text_survives(self, storage_settings, storage_target):
        """Text with NUL characters (which C strings would cut) is stored whole, or, where
        the database's text cannot hold NUL (PostgreSQL), refused whole with a clear error."""
        rows = [
            ChargebackRow("t", DAY, "l\x00a", "sa\x00", "P", "C", None, "e", "u", "r\x00", 5, None),
            ChargebackRow("t", DAY, "l2", "sa-2", "P", "C", "lkc", None, "u", "r", -5, "x\x00y"),
        ]
        if storage_target.holds_nul:
            assert await _commit_and_read(storage_settings, "t", rows) == rows
            return
        with pytest.raises(StorageError, match="cannot hold a NUL character"):
            await _commit_and_read(storage_settings, "t", rows)
        clean = [rows[1]._replace(reason="xy")]
        assert await _commit_and_read(storage_settings, "t", clean) == clean


def _without_nul(value: object) -> object:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value
