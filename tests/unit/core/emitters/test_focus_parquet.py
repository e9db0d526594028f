"""FOCUS rows written as Parquet: typed columns, exact decimals, row groups, round trip."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.core.emitters.test_focus_records import DAY, context, line, part

from chargeback.core.emitters.focus.columns import COLUMNS
from chargeback.core.emitters.focus.export import _write_day
from chargeback.core.emitters.focus.parquet import ParquetSink, arrow_schema
from chargeback.core.emitters.focus.records import focus_rows
from chargeback.core.models import UNALLOCATED, BillingLineItem, ChargebackRow
from chargeback.core.money import split, to_minor


def write(
    version: str, lines: list[BillingLineItem], rows: list[ChargebackRow], *, batch: int = 0
) -> tuple[pa.Table, int, int, int]:
    """One date's rows as a Parquet file, read back: the table, rows written, BilledCost
    total (nanos) and row groups."""
    buf = io.BytesIO()
    sink = ParquetSink(buf, COLUMNS[version])
    if batch:
        sink.batch_rows = batch  # several row groups from one date
    n, billed = _write_day(sink, context(version), lines, rows)
    sink.close()
    groups = pq.ParquetFile(io.BytesIO(buf.getvalue())).num_row_groups
    return pq.read_table(io.BytesIO(buf.getvalue())), n, billed, groups


def cell(value: object) -> str:
    """A Parquet value as the CSV dataset's text (null -> "")."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        assert value.tzinfo is not None
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def same(text: str, value: object) -> bool:
    """Whether the typed value is the text cell exactly (decimals compared as numbers)."""
    if isinstance(value, Decimal):
        return Decimal(text) == value
    return cell(value) == text


origins = st.lists(
    st.tuples(
        st.decimals(min_value=0, max_value=5, places=4),  # unit price
        st.decimals(min_value=0, max_value=10**5, places=5),  # quantity: price x q has 9 places
        st.integers(min_value=0, max_value=100),  # discount %
        st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=8),  # weights
        st.booleans(),  # a credit
    ),
    min_size=1,
    max_size=6,
)


Spec = list[tuple[Decimal, Decimal, int, list[int], bool]]


def bill(spec: Spec) -> tuple[list[BillingLineItem], list[ChargebackRow]]:
    """Billing lines (credits among them) and their parts, split by the weights."""
    lines: list[BillingLineItem] = []
    rows: list[ChargebackRow] = []
    for n, (price, quantity, pct, weights, credit) in enumerate(spec):
        original = to_minor(price * quantity)
        discount = original * pct // 100
        amount = original - discount
        lid = f"L{n}"
        if credit:
            amount = -amount
            lines.append(line(amount, line_id=lid, product_type="PROMO_CREDIT", unit=None,
                              original_amount=amount))  # fmt: skip
        else:
            lines.append(line(amount, line_id=lid, quantity=quantity, unit_price=price,
                              original_amount=original, discount_amount=discount))  # fmt: skip
        ids = [f"sa-{i}" for i in range(len(weights) - 1)] + [UNALLOCATED]
        for identity, share in zip(ids, split(amount, weights), strict=True):
            if share:
                rows.append(part(identity, share)._replace(line_id=lid))
    return lines, rows


@settings(max_examples=40, deadline=None)
@given(spec=origins, version=st.sampled_from(["1.2", "1.3"]), batch=st.integers(1, 7))
def test_parquet_round_trip_is_exact(spec: Spec, version: str, batch: int) -> None:
    """Read back, every cell is the CSV dataset's cell exactly; BilledCost sums to the bill
    to the nano, and ListCost to the list total, over any number of row groups."""
    lines, rows = bill(spec)
    table, n, billed, groups = write(version, lines, rows, batch=batch)
    expected = list(focus_rows(context(version), lines, rows))
    assert table.num_rows == n == len(expected)
    assert billed == sum(item.amount for item in lines)
    assert groups == max(-(-n // batch), 1)  # one row group per batch of rows
    got = table.to_pylist()
    for text_row, typed in zip(expected, got, strict=True):
        for name, text in zip(COLUMNS[version], text_row, strict=True):
            assert same(text, typed[name]), (name, text, typed[name])
    nanos = sum(r["BilledCost"] for r in got)
    assert nanos == Decimal(sum(item.amount for item in lines)).scaleb(-9)
    listed = sum(
        (item.original_amount if item.original_amount is not None else item.amount)
        for item in lines
    )
    assert sum(r["ListCost"] for r in got) == Decimal(listed).scaleb(-9)


def test_columns_are_typed() -> None:
    """Money and split metrics are exact decimals, period bounds UTC timestamps, the rest text."""
    schema = arrow_schema(COLUMNS["1.3"])
    assert schema.field("BilledCost").type == pa.decimal128(38, 9)
    assert schema.field("ListCost").type == pa.decimal128(38, 15)
    assert schema.field("PricingQuantity").type == pa.decimal128(38, 15)
    assert schema.field("ListUnitPrice").type == pa.decimal128(38, 18)
    assert schema.field("ChargePeriodStart").type == pa.timestamp("us", tz="UTC")
    assert schema.field("Tags").type == pa.string()
    assert schema.field("AllocatedMethodDetails").type == pa.string()
    assert schema.names == list(COLUMNS["1.3"])


def test_an_empty_dataset_still_has_its_schema() -> None:
    """No row at all: a valid file with the columns and their types."""
    table, n, _, _ = write("1.3", [], [])
    assert (n, table.num_rows) == (0, 0)
    assert table.schema == arrow_schema(COLUMNS["1.3"])


def test_a_value_the_column_cannot_hold_exactly_fails_loudly() -> None:
    """A unit price with more decimals than ListUnitPrice holds is never rounded."""
    price = Decimal("0.0000000000000000001")  # 19 decimals; the column has 18
    lines = [line(0, quantity=Decimal(1), unit_price=price, original_amount=0)]
    with pytest.raises(pa.ArrowInvalid, match="data loss"):
        write("1.3", lines, [part("sa-1", 0)])


def test_empty_cells_are_null_and_dates_are_utc() -> None:
    """A credit has no quantity or price: null in Parquet; the charge period starts at 00:00Z."""
    credit = line(-5, product_type="PROMO_CREDIT", unit=None, original_amount=-5)
    table, _, _, _ = write("1.3", [credit], [part("sa-1", -5)])
    [row] = table.to_pylist()
    assert row["PricingQuantity"] is None
    assert row["ListUnitPrice"] is None
    assert row["ChargePeriodStart"] == dt.datetime(DAY.year, DAY.month, DAY.day, tzinfo=dt.UTC)
    assert row["BilledCost"] == Decimal("-5E-9")
