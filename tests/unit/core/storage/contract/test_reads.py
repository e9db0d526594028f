"""Set-based reads: reconcile and cost_totals, plus the small lookups."""

from __future__ import annotations

import datetime as dt

from chargeback.core.models import UNALLOCATED

D1, D2, D3 = dt.date(2024, 5, 1), dt.date(2024, 5, 2), dt.date(2024, 5, 3)


class TestReconcile:
    async def test_exact_split_reconciles_per_date_and_product(
        self, backend, line_factory, rows_factory, commit_date
    ):
        """Lines split exactly give zero difference on every date and product type."""
        for day in (D1, D2):
            lines = [
                line_factory("a", 1_000_000_001, day=day),
                line_factory("b", -7, day=day, product_type="SUPPORT"),
                line_factory("c", 5, day=day),
            ]
            rows = [r for ln in lines for r in rows_factory("t1", ln, ["sa-1", "sa-2"], [2, 1])]
            await commit_date(backend, "t1", day, lines, rows)
        report = await backend.reconcile("t1", D1, D3)
        assert [(r.day, r.product_type, r.billed, r.lines) for r in report] == [
            (D1, "KAFKA_NETWORK_READ", 1_000_000_006, 2),
            (D1, "SUPPORT", -7, 1),
            (D2, "KAFKA_NETWORK_READ", 1_000_000_006, 2),
            (D2, "SUPPORT", -7, 1),
        ]
        assert all(r.difference == 0 for r in report)
        assert await backend.reconcile("t1", D1, D2) == report[:2]

    async def test_lines_without_rows_show_the_whole_difference(
        self, backend, line_factory, rows_factory, commit_date
    ):
        """A date whose rows are missing (or short) shows a difference equal to the gap."""
        line = line_factory("a", 900)
        short = rows_factory("t1", line, ["sa-1", "sa-2"], [1, 1])[:1]
        await commit_date(backend, "t1", D1, [line], short)
        other = line_factory("b", 300, day=D2, product_type="SUPPORT")
        await commit_date(backend, "t1", D2, [other], [])
        report = await backend.reconcile("t1", D1, D3)
        assert [(r.day, r.billed, r.allocated, r.difference) for r in report] == [
            (D1, 900, 450, -450),
            (D2, 300, 0, -300),
        ]

    async def test_rows_without_lines_are_reported(
        self, backend, line_factory, rows_factory, commit_date
    ):
        """Rows of a product type with no billed line show up as allocated with billed 0."""
        line = line_factory("a", 10, product_type="FLINK_NUM_CFU")
        rows = rows_factory("t1", line, ["sa-1"], [1])
        await commit_date(backend, "t1", D1, [], rows)
        [row] = await backend.reconcile("t1", D1, D2)
        assert (row.product_type, row.billed, row.allocated, row.lines) == (
            "FLINK_NUM_CFU",
            0,
            10,
            0,
        )


class TestCostTotals:
    async def test_sums_per_identity_product_cost_type_and_env(
        self, backend, line_factory, rows_factory, commit_date
    ):
        """Amounts are summed over the days per tenant, identity, product, cost type and env."""
        for day in (D1, D2):
            lines = [line_factory("a", 100, day=day), line_factory("b", 51, day=day, env_id=None)]
            rows = [
                r for ln in lines for r in rows_factory("t1", ln, ["sa-1", UNALLOCATED], [1, 1])
            ]
            await commit_date(backend, "t1", day, lines, rows)
        other = line_factory("z", 7, day=D1)
        await commit_date(backend, "t2", D1, [other], rows_factory("t2", other, ["sa-9"], [1]))
        totals = await backend.cost_totals("t1", D1, D3)
        assert [(t.identity_id, t.cost_type, t.env_id, t.amount) for t in totals] == [
            ("UNALLOCATED", "unallocated", "", 50),
            ("UNALLOCATED", "unallocated", "env-1", 100),
            ("sa-1", "usage", "", 52),
            ("sa-1", "usage", "env-1", 100),
        ]
        assert sum(t.amount for t in await backend.cost_totals("t1", D1, D2)) == 151
        everyone = await backend.cost_totals(None, D1, D3)
        assert {t.tenant_id for t in everyone} == {"t1", "t2"}
        assert sum(t.amount for t in everyone) == 2 * 151 + 7


class TestLookups:
    async def test_latest_calculated_date_and_tenants(self, backend, commit_date):
        """The newest calculated date per tenant, and the tenants with state."""
        assert await backend.latest_calculated_date("t1") is None
        assert await backend.tenants() == []
        await commit_date(backend, "t1", D2, [], [])
        await commit_date(backend, "t1", D1, [], [])
        await backend.request_rerun("t3", D1, D1, dt.datetime(2024, 5, 4, tzinfo=dt.UTC))
        assert await backend.latest_calculated_date("t1") == D2
        assert await backend.tenants() == ["t1", "t3"]


class TestReadLines:
    async def test_lines_come_back_exactly_as_committed(self, backend, line_factory, commit_date):
        """Every field of a stored line reads back equal (Decimals exact), by line_id."""
        from decimal import Decimal  # noqa: PLC0415

        full = line_factory("b", -1_000_000_001)._replace(
            quantity=Decimal("0.000123456789012"), unit="GB", unit_price=Decimal("0.0001"),
            original_amount=12, discount_amount=-3, description="PROMO",
            attributes={"network_access_type": "INTERNET"}, error="amount 'x' is not a number",
        )  # fmt: skip
        bare = line_factory("a", 5, resource_id=None, env_id=None)
        await commit_date(backend, "t1", D1, [full, bare], [])
        assert await backend.read_lines("t1", D1) == [bare, full]
        assert await backend.read_lines("t1", D2) == []
        assert await backend.read_lines("t2", D1) == []
