"""FOCUS rows of billing lines and their parts: exact splits, nullability, units."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeback.core.emitters.focus.columns import COLUMNS
from chargeback.core.emitters.focus.records import (
    ExportContext,
    MissingLineError,
    focus_rows,
    focus_unit,
)
from chargeback.core.emitters.focus.split import split_by, split_many
from chargeback.core.models import UNALLOCATED, BillingLineItem, ChargebackRow, Identity
from chargeback.core.money import split, to_minor

DAY = dt.date(2026, 11, 5)


def context(version: str = "1.3") -> ExportContext:
    return ExportContext(
        tenant_id="acme", version=version, currency="USD", billing_account_id="org-1",
        billing_account_name="Acme", resources={},
        identities={"sa-1": Identity("sa-1", "service_account", "payments")},
        day_status={}, month_status={},
    )  # fmt: skip


def line(amount: int, **kw: object) -> BillingLineItem:
    fields: dict[str, object] = {
        "line_id": "L1", "date": DAY, "product_type": "KAFKA_NETWORK_READ",
        "product_category": "KAFKA", "amount": amount, "resource_id": "lkc-1", "env_id": "env-1",
        "unit": "GB",
    }  # fmt: skip
    fields.update(kw)
    return BillingLineItem(**fields)  # type: ignore[arg-type]


def part(identity: str, amount: int) -> ChargebackRow:
    cost_type = "unallocated" if identity == UNALLOCATED else "usage"
    return ChargebackRow(
        "acme", DAY, "L1", identity, "KAFKA_NETWORK_READ", "KAFKA", "lkc-1", "env-1",
        cost_type, "usage", amount, None,
    )  # fmt: skip


def as_dicts(
    version: str, lines: list[BillingLineItem], rows: list[ChargebackRow]
) -> list[dict[str, str]]:
    cols = COLUMNS[version]
    return [dict(zip(cols, r, strict=True)) for r in focus_rows(context(version), lines, rows)]


def ratio_of(details: str) -> Decimal:
    return Decimal(details.split('"AllocatedRatio":', 1)[1].split("}", 1)[0])


weights = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=12)


@given(
    price=st.decimals(min_value=0, max_value=5, places=4),
    quantity=st.decimals(min_value=0, max_value=10**5, places=5),  # price x quantity: 9 places
    discount_pct=st.integers(min_value=0, max_value=100),
    credit=st.booleans(),
    weights=weights,
)
def test_allocated_charges_sum_to_their_origin(
    price: Decimal, quantity: Decimal, discount_pct: int, credit: bool, weights: list[int]
) -> None:
    """For every aggregatable metric the parts sum to the origin; ratios sum to exactly 1."""
    original = to_minor(price * quantity)
    discount = original * discount_pct // 100
    amount = original - discount
    if credit:
        origin = line(-amount, product_type="PROMO_CREDIT", unit=None, original_amount=-amount)
        amount = -amount
    else:
        origin = line(
            amount, quantity=quantity, unit_price=price, original_amount=original,
            discount_amount=discount,
        )  # fmt: skip
    ids = [f"sa-{i}" for i in range(len(weights) - 1)] + [UNALLOCATED]
    parts = [part(i, a) for i, a in zip(ids, split(amount, weights), strict=True)]
    out = as_dicts("1.3", [origin], parts)
    assert len(out) == len(parts)
    assert sum(to_minor(Decimal(r["BilledCost"])) for r in out) == amount
    assert sum(Decimal(r["EffectiveCost"]) for r in out) == Decimal(amount).scaleb(-9)
    assert sum(Decimal(r["ListCost"]) for r in out) == Decimal(origin.original_amount or 0).scaleb(
        -9
    )
    assert sum(ratio_of(r["AllocatedMethodDetails"]) for r in out) == 1
    if not credit:
        assert sum(Decimal(r["PricingQuantity"]) for r in out) == quantity
        for r in out:  # the validator's ListUnitPrice x PricingQuantity = ListCost
            product = Decimal(r["ListUnitPrice"]) * Decimal(r["PricingQuantity"])
            assert abs(product - Decimal(r["ListCost"])) < Decimal("1e-12"), (r, price, quantity)
    else:
        assert {r["PricingQuantity"] for r in out} == {""}
        assert {r["ChargeCategory"] for r in out} == {"Credit"}


@given(
    total=st.integers(min_value=-(10**18), max_value=10**18),
    parts=st.lists(st.integers(min_value=-(10**9), max_value=10**9), min_size=1, max_size=10),
)
def test_split_by_is_exact_for_any_signs(total: int, parts: list[int]) -> None:
    """Whatever the parts' signs, the split sums to the total."""
    assert sum(split_by(total, parts)) == total


@given(
    totals=st.lists(st.integers(min_value=-(10**24), max_value=10**24), min_size=1, max_size=4),
    parts=st.lists(st.integers(min_value=-(10**9), max_value=10**9), min_size=1, max_size=10),
)
def test_split_many_is_split_by_of_each_total(totals: list[int], parts: list[int]) -> None:
    """The one-pass split gives exactly what splitting each total alone gives."""
    assert split_many(totals, parts) == [split_by(t, parts) for t in totals]


def test_unallocated_portion_has_no_allocated_resource() -> None:
    """FOCUS 1.3: the unallocated portion has a null AllocatedResourceId and Name."""
    out = as_dicts("1.3", [line(300)], [part("sa-1", 200), part(UNALLOCATED, 100)])
    allocated, unallocated = out
    assert allocated["AllocatedResourceId"] == "sa-1"
    assert allocated["AllocatedResourceName"] == "payments"
    assert allocated["AllocatedMethodId"] == "usage/usage"
    assert allocated["AllocatedTags"] == '{"chargeback/identity_type":"service_account"}'
    assert unallocated["AllocatedResourceId"] == unallocated["AllocatedResourceName"] == ""
    assert unallocated["AllocatedTags"] == ""
    assert unallocated["AllocatedMethodId"] == "usage/unallocated"


def test_dimensions_of_every_part_match_the_origin() -> None:
    """Dimensions and non-aggregatable metrics repeat the origin on each allocated charge."""
    origin = line(300, quantity=Decimal(3), unit_price=Decimal("0.1"), original_amount=300)
    out = as_dicts("1.3", [origin], [part("sa-1", 200), part(UNALLOCATED, 100)])
    metrics = {
        "BilledCost", "EffectiveCost", "ContractedCost", "ListCost", "PricingQuantity",
        "ConsumedQuantity", "x_DiscountAmount",
    }  # fmt: skip
    per_part = {
        "AllocatedMethodDetails", "AllocatedMethodId", "AllocatedResourceId",
        "AllocatedResourceName", "AllocatedTags", "x_IdentityId", "x_IdentityType",
        "x_CostType", "x_AllocationRule", "x_AllocationReason",
    }  # fmt: skip
    for name in COLUMNS["1.3"]:
        if name not in metrics | per_part:
            assert out[0][name] == out[1][name], name
    assert out[0]["ListUnitPrice"] == "0.1"
    assert out[0]["PricingUnit"] == "GB"


def test_version_12_has_no_allocation_columns() -> None:
    """1.2 rows carry the identity in x_ columns only."""
    out = as_dicts("1.2", [line(300)], [part("sa-1", 300)])
    assert not any(name.startswith("Allocated") for name in out[0])
    assert out[0]["x_IdentityId"] == "sa-1"


def test_a_line_without_rows_is_exported_whole_as_unallocated() -> None:
    """BilledCost still sums to the bill when a line has no chargeback rows."""
    out = as_dicts("1.3", [line(300)], [])
    assert [r["BilledCost"] for r in out] == ["0.0000003"]
    assert out[0]["x_AllocationRule"] == "no_rows"


def test_a_row_without_its_line_is_an_error() -> None:
    """Rows and lines that disagree are never written silently."""
    with pytest.raises(MissingLineError, match="no stored billing line"):
        list(focus_rows(context(), [], [part("sa-1", 1)]))


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("CKU-hour", "CKU-Hours"), ("GB-hour", "GB-Hours"), ("GB", "GB"), ("Day", "Day"),
        ("Million records", "1000000 Records"), (None, ""), ("Hour", "Hour"),
    ],
)  # fmt: skip
def test_units_follow_the_focus_unit_format(unit: str | None, expected: str) -> None:
    """Confluent's units become FOCUS UnitFormat (``<unit>-<plural time>``, ``<n> <unit>``)."""
    assert focus_unit(unit) == expected


@given(
    name=st.text(alphabet=st.sampled_from('ab ,"\n\r;{}'), max_size=12),
    reason=st.none() | st.text(alphabet=st.sampled_from('xy ,"\n'), max_size=8),
)
def test_quoted_rows_read_back_as_the_plain_cells(name: str, reason: str | None) -> None:
    """The joined, pre-quoted cells parse (csv module) to exactly the plain cells."""
    import csv  # noqa: PLC0415
    import io  # noqa: PLC0415

    ctx = ExportContext(
        tenant_id="acme", version="1.3", currency="USD", billing_account_id="org,1",
        billing_account_name='Ac"me', resources={},
        identities={"sa-1": Identity("sa-1", "service_account", name)},
        day_status={}, month_status={},
    )  # fmt: skip
    origin = line(300, description=f"d{name}")
    parts = [part("sa-1", 200), part(UNALLOCATED, 100)._replace(reason=reason)]
    plain = list(focus_rows(ctx, [origin], parts))
    text = "".join(",".join(r) + "\n" for r in focus_rows(ctx, [origin], parts, quoted=True))
    assert list(csv.reader(io.StringIO(text, newline=""))) == plain
