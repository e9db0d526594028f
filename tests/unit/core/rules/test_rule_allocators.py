"""The allocation rules as pure functions: exact, explained, never losing a unit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from chargeback.core.models import (
    UNALLOCATED,
    AllocationContext,
    AllocationParams,
    AllocationResult,
    BillingLineItem,
    CostType,
    Identity,
    IdentitySet,
)
from chargeback.core.rules import (
    EVEN_NO_USAGE,
    FALLBACK,
    NO_IDENTITIES,
    FallbackAllocator,
    RuleAllocator,
    allocate_usage,
)

DAY = dt.date(2026, 3, 1)


def ctx(  # noqa: PLR0917  (a terse test helper)
    amount: int,
    ids: list[str],
    usage: Mapping[str, Mapping[str, int]] | None = None,
    pmap: Mapping[str, str] | None = None,
    product_type: str = "KAFKA_NETWORK_WRITE",
    reason: str | None = None,
) -> AllocationContext:
    line = BillingLineItem("l1", DAY, product_type, "KAFKA", amount, resource_id="lkc-1")
    return AllocationContext(
        "t", line, IdentitySet(Identity(i, "service_account") for i in ids), pmap or {},
        usage or {}, AllocationParams("ignored"), reason,
    )  # fmt: skip


def usage_rule(
    ratio: Fraction = Fraction(1), keys: tuple[str, ...] = ("request_bytes",)
) -> RuleAllocator:
    params = AllocationParams("kafka_network_usage", ratio, keys)
    return RuleAllocator(kind="usage", params=params)


def by_id(result: AllocationResult) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in result.allocations:
        out[a.identity_id] = out.get(a.identity_id, 0) + a.amount
    return out


class TestUsage:
    def test_split_by_bytes_with_api_keys_folded_into_owners(self) -> None:
        """An API key's bytes are charged to its owner, in exact proportion."""
        result = usage_rule()(
            ctx(1000, ["sa-a", "sa-b"], {"request_bytes": {"sa-a": 1, "KEY1": 2, "sa-b": 1}},
                {"KEY1": "sa-b"})
        )  # fmt: skip
        assert by_id(result) == {"sa-a": 250, "sa-b": 750}
        assert {a.cost_type for a in result.allocations} == {CostType.USAGE}
        assert {a.rule for a in result.allocations} == {"kafka_network_usage"}

    def test_unknown_principals_are_charged_as_themselves(self) -> None:
        """A metric principal missing from IAM is charged under its own id."""
        result = usage_rule()(ctx(10, [], {"request_bytes": {"sa-ghost": 5}}))
        assert by_id(result) == {"sa-ghost": 10}

    def test_no_usage_splits_evenly_over_active_principals(self) -> None:
        """Without usage, the active principals share the line evenly."""
        result = usage_rule()(ctx(10, ["sa-a", "sa-b", "sa-c"], {"request_bytes": {}}))
        assert sorted(by_id(result).values()) == [3, 3, 4]
        assert {a.rule for a in result.allocations} == {EVEN_NO_USAGE}
        assert {a.cost_type for a in result.allocations} == {CostType.SHARED}

    def test_nobody_goes_to_unallocated_with_the_reason(self) -> None:
        """No usage and nobody active: UNALLOCATED, with the resolver's reason."""
        result = usage_rule()(ctx(10, [], {}, reason="no keys on lkc-1"))
        (only,) = result.allocations
        assert (only.identity_id, only.amount, only.rule) == (UNALLOCATED, 10, NO_IDENTITIES)
        assert only.reason == "no keys on lkc-1"

    def test_usage_shared_ratio(self) -> None:
        """70/30: the usage part by bytes, the shared part evenly over active principals."""
        rule = usage_rule(Fraction(7, 10), ("request_bytes", "response_bytes"))
        result = rule(
            ctx(
                1000,
                ["sa-a", "sa-b"],
                {"request_bytes": {"sa-a": 3}, "response_bytes": {"sa-a": 1}},
            )
        )
        usage = {a.identity_id: a.amount for a in result.allocations if a.cost_type == "usage"}
        shared = {a.identity_id: a.amount for a in result.allocations if a.cost_type == "shared"}
        assert usage == {"sa-a": 700}
        assert shared == {"sa-a": 150, "sa-b": 150}

    def test_unknown_statements_go_to_unallocated_when_configured(self) -> None:
        """With unknown_to_unallocated, usage of unmapped principals is UNALLOCATED."""
        rule = RuleAllocator(
            kind="usage",
            params=AllocationParams("flink_statement_cfu", Fraction(1), ("cfu",)),
            unknown_to_unallocated=True,
        )
        result = rule(ctx(100, ["sa-a"], {"cfu": {"st1": 1, "gone": 1}}, {"st1": "sa-a"}))
        assert by_id(result) == {"sa-a": 50, UNALLOCATED: 50}

    @given(
        amount=st.integers(-(10**15), 10**15),
        weights=st.dictionaries(st.sampled_from(["sa-a", "sa-b", "K", "u-c"]),
                                st.integers(0, 10**12), max_size=4),
        ids=st.lists(st.sampled_from(["sa-a", "sa-b", "u-d"]), unique=True),
        num=st.integers(0, 10),
    )  # fmt: skip
    def test_parts_always_sum_to_the_line(
        self, amount: int, weights: dict[str, int], ids: list[str], num: int
    ) -> None:
        """Whatever the usage, ratio and identities, the parts sum to the amount exactly."""
        rule = usage_rule(Fraction(num, 10), ("request_bytes", "response_bytes"))
        result = rule(ctx(amount, ids, {"request_bytes": weights}, {"K": "sa-b"}))
        assert sum(a.amount for a in result.allocations) == amount
        assert result.allocations

    @given(
        tables=st.lists(
            st.dictionaries(st.sampled_from(["sa-a", "sa-b", "K", "u-c"]),
                            st.integers(0, 10**9), max_size=4),
            min_size=1, max_size=3,
        ),
        lines=st.lists(
            st.tuples(st.integers(-(10**12), 10**12), st.integers(0, 2), st.booleans()),
            min_size=1, max_size=30,
        ),
        num=st.integers(0, 10),
        unknown=st.booleans(),
    )  # fmt: skip
    def test_the_memo_never_changes_a_result(
        self,
        tables: list[dict[str, int]],
        lines: list[tuple[int, int, bool]],
        num: int,
        unknown: bool,
    ) -> None:
        """Lines sharing their inputs (as one cluster's lines of a day do) get exactly
        the parts a fresh computation gives, and equal but distinct inputs never
        borrow another line's weights by accident."""
        params = AllocationParams("kafka_network_usage", Fraction(num, 10), ("request_bytes",))
        rule = RuleAllocator(kind="usage", params=params, unknown_to_unallocated=unknown)
        pmap = {"K": "sa-b"}
        known = IdentitySet(Identity(i, "service_account") for i in ("sa-a", "u-d"))
        for amount, pick, fresh in lines:
            table = tables[pick % len(tables)]
            usage = {"request_bytes": dict(table) if fresh else table}
            line = BillingLineItem(
                "l", DAY, "KAFKA_NETWORK_WRITE", "KAFKA", amount, resource_id="r"
            )
            context = AllocationContext("t", line, known, pmap, usage, params, None)
            expected = allocate_usage(context, params, unknown_to_unallocated=unknown)
            assert rule(context) == expected
            changed = {**table, "sa-a": table.get("sa-a", 0) + 1}  # another day's table
            usage = {"request_bytes": changed}
            context = AllocationContext("t", line, known, pmap, usage, params, None)
            expected = allocate_usage(context, params, unknown_to_unallocated=unknown)
            assert rule(context) == expected


class TestOtherRules:
    def test_even(self) -> None:
        """The even rule splits over the resolved identities as shared cost."""
        rule = RuleAllocator(kind="even", params=AllocationParams("org_wide_even"))
        result = rule(ctx(-7, ["sa-a", "sa-b"], product_type="SUPPORT"))
        assert sum(by_id(result).values()) == -7
        assert {a.rule for a in result.allocations} == {"org_wide_even"}

    def test_owner(self) -> None:
        """The owner rule charges the single owner as usage."""
        rule = RuleAllocator(kind="owner", params=AllocationParams("connector_owner"))
        (only,) = rule(ctx(5, ["sa-o"], product_type="CONNECT_CAPACITY")).allocations
        assert (only.identity_id, only.amount, only.cost_type) == ("sa-o", 5, CostType.USAGE)

    def test_configured_unallocated(self) -> None:
        """A product type configured 'unallocated' is charged to UNALLOCATED with a reason."""
        rule = RuleAllocator(kind="unallocated", params=AllocationParams("support_unallocated"))
        (only,) = rule(ctx(5, ["sa-o"], product_type="SUPPORT")).allocations
        assert only.identity_id == UNALLOCATED
        assert only.reason

    def test_fallback(self) -> None:
        """The fallback charges UNALLOCATED with the product type in the reason."""
        (only,) = FallbackAllocator()(
            ctx(5, ["sa-o"], product_type="TABLEFLOW_STORAGE")
        ).allocations
        assert (only.identity_id, only.rule) == (UNALLOCATED, FALLBACK)
        assert only.reason is not None
        assert "TABLEFLOW_STORAGE" in only.reason
