"""Billing lines from /billing/v1/costs: windows, parsing, duplicates, malformed rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from chargeback.core.models import REFUSED, BillingLineItem
from chargeback.core.money import to_minor
from chargeback.core.sources import Credentials, HttpClient, HttpSettings
from chargeback.plugins.confluent_cloud.config import BillingSettings
from chargeback.plugins.confluent_cloud.cost_input import (
    MAX_AMOUNT,
    CCloudCostInput,
    parse_cost_row,
    windows,
)

D1 = dt.date(2026, 3, 1)


def row(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "cost-1", "start_date": "2026-03-01", "end_date": "2026-03-02",
        "product": "KAFKA", "line_type": "KAFKA_NUM_CKUS", "network_access_type": "PRIVATE_LINK",
        "price": 2.25, "unit": "CKU-hour", "quantity": 48.0, "original_amount": 108.0,
        "discount_amount": 10.8, "amount": 97.2,
        "resource": {"id": "lkc-1", "display_name": "p", "environment": {"id": "env-1"}},
    }  # fmt: skip
    base.update(over)
    return base


class CostsAPI:
    """Serves a fixed row list for any window, paginated two rows at a time."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.windows: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        offset = int(params.get("page_token", "0"))
        if offset == 0:
            self.windows.append((params["start_date"], params["end_date"]))
        page = self.rows[offset : offset + 2]
        nxt = None
        if offset + 2 < len(self.rows):
            nxt = str(request.url.copy_set_param("page_token", str(offset + 2)))
        return httpx.Response(200, json={"data": page, "metadata": {"next": nxt}})


async def gather(
    rows: list[dict[str, Any]], start: dt.date, end: dt.date, days: int = 30
) -> tuple[list[BillingLineItem], CostsAPI]:
    api = CostsAPI(rows)

    async def no_sleep(_: float) -> None:
        return None

    client = HttpClient(
        Credentials("K", SecretStr("S")), HttpSettings(requests_per_second=None),
        transport=httpx.MockTransport(api), sleep=no_sleep,
    )  # fmt: skip
    source = CCloudCostInput(client, "http://api", BillingSettings(days_per_query=days))
    lines = [line async for line in source.gather("t", start, end)]
    return lines, api


class TestParse:
    def test_fields_map_to_the_line(self) -> None:
        """line_type, product, resource, env and exact amounts land on the line."""
        line = parse_cost_row(row())
        assert line is not None
        assert (line.product_type, line.product_category) == ("KAFKA_NUM_CKUS", "KAFKA")
        assert (line.resource_id, line.env_id, line.line_id) == ("lkc-1", "env-1", "cost-1")
        assert line.amount == to_minor("97.2")
        assert line.original_amount == to_minor("108")
        assert line.discount_amount == to_minor("10.8")
        assert line.attributes["network_access_type"] == "PRIVATE_LINK"
        assert line.error is None

    def test_promo_credit_without_resource(self) -> None:
        """A negative PROMO_CREDIT with null unit, product and resource is a valid line."""
        line = parse_cost_row(
            row(line_type="PROMO_CREDIT", product=None, unit=None, price=None, quantity=None,
                original_amount=-5, discount_amount=0, amount=-5, resource=None,
                description="KAFKA101")
        )  # fmt: skip
        assert line is not None
        assert line.amount == -5 * 10**9
        assert (line.resource_id, line.env_id, line.product_category) == (None, None, "")
        assert line.error is None

    @pytest.mark.parametrize("bad", ["abc", None, float("nan"), "Infinity"])
    def test_unreadable_amount_is_flagged_not_fatal(self, bad: object) -> None:
        """A non-numeric amount falls back to original - discount and is flagged when present."""
        line = parse_cost_row(row(amount=bad, original_amount="x"))
        assert line is not None
        assert line.amount == 0
        assert line.error is not None
        assert "amount" in line.error

    @settings(max_examples=400, deadline=None)
    @given(
        amount=st.floats()
        | st.integers(-(10**12), 10**12).map(lambda i: i / 1000)
        | st.decimals(-(10**8), 10**8, places=9).map(float)
        | st.integers(-(10**9), 10**9)
    )
    def test_every_json_number_is_read_exactly(self, amount: float | int) -> None:
        """A JSON number becomes the minor units of the decimal it was written as (its
        shortest repr), rounded half-even past nine decimals; NaN, infinities and
        amounts beyond MAX_AMOUNT are flagged instead."""
        line = parse_cost_row(row(amount=amount))
        assert line is not None
        exact = Decimal(repr(amount))
        if exact.is_finite() and abs(exact) <= MAX_AMOUNT:
            assert (line.amount, line.error) == (to_minor(exact), None)
        else:
            assert line.error is not None
            assert "amount" in line.error

    @pytest.mark.parametrize("bad", [None, "abc"])
    def test_null_and_non_numeric_amounts_follow_one_policy(self, bad: object) -> None:
        """A null or non-numeric amount is derived as original - discount with the reason
        on the line (so on its UNALLOCATED rows), never charged to identities silently."""
        line = parse_cost_row(row(amount=bad))
        assert line is not None
        assert line.amount == to_minor("97.2")
        assert line.error is not None
        assert "derived as original_amount - discount_amount = 97.200000000" in line.error
        assert "not charged to identities" in line.error
        assert not line.error.startswith(REFUSED)

    @pytest.mark.parametrize("bad", [1e15, "1e15", -1e15])
    def test_an_out_of_range_amount_is_refused_with_its_reported_amount(self, bad: object) -> None:
        """An amount beyond MAX_AMOUNT is refused: amount 0, the reported amount kept."""
        line = parse_cost_row(row(amount=bad))
        assert line is not None
        assert line.amount == 0
        assert line.error is not None
        assert line.error.startswith(REFUSED)
        assert "out of range" in line.error
        assert line.attributes["reported_amount"] == str(bad)

    def test_an_unreadable_amount_with_nothing_to_derive_it_from_is_refused(self) -> None:
        """A null amount whose original_amount is unreadable too is refused, not priced 0."""
        line = parse_cost_row(row(amount=None, original_amount="x"))
        assert line is not None
        assert (line.amount, line.attributes["reported_amount"]) == (0, "null")
        assert line.error is not None
        assert line.error.startswith(REFUSED + "amount is null")

    def test_bad_start_date_uses_end_date_and_flags(self) -> None:
        """A bad start_date is placed by end_date and flagged; no date at all is skipped."""
        line = parse_cost_row(row(start_date="03/01/2026"))
        assert line is not None
        assert line.date == D1
        assert line.error is not None
        assert parse_cost_row(row(start_date=None, end_date="nope")) is None

    @settings(max_examples=200, deadline=None)
    @given(
        prices=st.lists(
            st.sampled_from([0.0, -0.0, 0.1, 2.25, 1e-7, -3.5, float("nan")]) | st.floats(),
            min_size=1, max_size=8,
        ),
        days=st.lists(
            st.sampled_from(["2026-03-01", "2026-03-01T00:00:00Z", "2026-02-29", "x", ""]),
            min_size=1, max_size=8,
        ),
    )  # fmt: skip
    def test_remembered_prices_and_dates_read_as_when_new(
        self, prices: list[float], days: list[str]
    ) -> None:
        """The prices and dates parse_cost_row remembers between rows give the same
        values, with the same exponent and sign (-0.0 is not 0.0), as reading afresh."""
        for price in prices:
            line = parse_cost_row(row(price=price))
            assert line is not None
            fresh = Decimal(repr(price))
            if fresh.is_finite():
                assert line.unit_price is not None
                assert (str(line.unit_price), line.unit_price.is_signed()) == (
                    str(fresh), fresh.is_signed(),
                )  # fmt: skip
            else:
                assert line.unit_price is None
        for text in days:
            line = parse_cost_row(row(start_date=text))
            assert line is not None
            if text.startswith("2026-03-01"):
                assert (line.date, line.error) == (D1, None)
            else:
                assert line.date == D1  # placed by its end_date, and flagged
                assert line.error is not None
                assert "start_date" in line.error

    def test_missing_id_gets_a_stable_natural_key_digest(self) -> None:
        """Rows without an id get the same digest id on every fetch."""
        a = parse_cost_row(row(id=None))
        b = parse_cost_row(row(id=None, amount=1.0))
        assert a is not None
        assert b is not None
        assert a.line_id == b.line_id
        assert a.line_id.startswith("k:")


class TestGather:
    def test_windows_are_at_most_n_days(self) -> None:
        """A 65-day range becomes 30 + 30 + 5 day windows."""
        ws = windows(D1, D1 + dt.timedelta(days=65), 30)
        assert [(b - a).days for a, b in ws] == [30, 30, 5]
        assert ws[0][0] == D1
        assert ws[-1][1] == D1 + dt.timedelta(days=65)

    async def test_requests_one_window_per_days_per_query(self) -> None:
        """gather asks one window per days_per_query days and follows pages."""
        rows = [row(id=f"c{i}") for i in range(5)]
        lines, api = await gather(rows, D1, D1 + dt.timedelta(days=3), days=2)
        assert api.windows == [("2026-03-01", "2026-03-03"), ("2026-03-03", "2026-03-04")]
        assert len(lines) == 5  # only the first window's days contain 2026-03-01

    async def test_rows_outside_the_range_are_dropped(self) -> None:
        """Rows dated outside the requested days never become lines."""
        rows = [row(id="in"), row(id="out", start_date="2026-02-27", end_date="2026-02-28")]
        lines, _ = await gather(rows, D1, D1 + dt.timedelta(days=1))
        assert [line.line_id for line in lines] == ["in"]

    async def test_duplicate_ids(self) -> None:
        """An identical repeat is dropped; a different row under a used id is kept renamed."""
        rows = [
            row(id="a"),
            row(id="a"),
            row(id="a", amount=1.5),
            row(id="t1", tier_dimensions={"tier": "1"}),
            row(id="t2", tier_dimensions={"tier": "2"}),
        ]
        lines, _ = await gather(rows, D1, D1 + dt.timedelta(days=1))
        ids = [line.line_id for line in lines]
        assert ids[0] == "a"
        assert ids[1].startswith("a#")
        assert ids[2:] == ["t1", "t2"]  # tiered rows stay separate lines
        assert len(set(ids)) == len(ids)

    async def test_rows_without_ids_never_collide(self) -> None:
        """Two id-less rows with the same natural key get distinct, stable ids."""
        rows = [row(id=None), row(id=None, amount=3)]
        first, _ = await gather(rows, D1, D1 + dt.timedelta(days=1))
        again, _ = await gather(rows, D1, D1 + dt.timedelta(days=1))
        assert len({line.line_id for line in first}) == 2
        assert [line.line_id for line in first] == [line.line_id for line in again]
