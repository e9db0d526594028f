"""The rule table: defaults per product type, operator overrides, one allocator each."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pytest

from chargeback.core.models import (
    UNALLOCATED,
    AllocationContext,
    AllocationParams,
    BillingLineItem,
    Identity,
    IdentitySet,
)
from chargeback.core.rules import RuleOverride, RuleSpec, RuleTable

# A second ecosystem's table: nothing of the Confluent plugin is imported.
DEFAULTS = {
    "BROKER_HOURS": RuleSpec(kind="usage", name="broker_usage", ratio=Fraction(1, 2),
                             metrics=("bytes_in",)),
    "SUPPORT": RuleSpec(kind="even", name="support_even"),
}  # fmt: skip


def context(product_type: str, amount: int, usage: dict[str, dict[str, int]]) -> AllocationContext:
    line = BillingLineItem("l1", dt.date(2026, 3, 1), product_type, "X", amount, resource_id="c-1")
    ids = IdentitySet(Identity(i, "team") for i in ("team-a", "team-b"))
    return AllocationContext("t", line, ids, {}, usage, AllocationParams("ignored"), None)


class TestRuleSpec:
    def test_arguments_are_keywords(self) -> None:
        """A RuleSpec cannot be built positionally (kind and name are easy to swap)."""
        with pytest.raises(TypeError):
            RuleSpec("usage", "broker_usage")  # type: ignore[call-arg]

    def test_params(self) -> None:
        """A spec becomes the engine's AllocationParams with the same fields."""
        assert DEFAULTS["BROKER_HOURS"].params() == AllocationParams(
            rule="broker_usage", usage_ratio=Fraction(1, 2), metric_keys=("bytes_in",)
        )


class TestRuleTable:
    def test_defaults_bind_allocators(self) -> None:
        """Each product type gets its default rule's allocator, conserving the line."""
        table = RuleTable(DEFAULTS)
        assert table.product_types == ("BROKER_HOURS", "SUPPORT")
        assert table.usage_metrics("BROKER_HOURS") == ("bytes_in",)
        assert table.usage_metrics("SUPPORT") == ()
        assert table.usage_metrics("OTHER") == ()
        assert table.get("OTHER") is None
        result = table.allocator("BROKER_HOURS")(
            context("BROKER_HOURS", 101, {"bytes_in": {"team-a": 3}})
        )
        parts = {(a.identity_id, a.cost_type): a.amount for a in result.allocations}
        assert parts == {
            ("team-a", "usage"): 51,
            ("team-a", "shared"): 25,
            ("team-b", "shared"): 25,
        }

    def test_an_override_of_the_kind_renames_the_rule(self) -> None:
        """A changed kind records ``<product type>_<kind>``; ratio and metrics carry over
        unless overridden, and a usage rule without metrics takes the table's default."""
        table = RuleTable(
            DEFAULTS,
            overrides={
                "SUPPORT": RuleOverride(rule="usage"),
                "BROKER_HOURS": RuleOverride(ratio=Fraction(1)),
                "NOT_IN_TABLE": RuleOverride(rule="even"),
            },
            default_metrics=("bytes_in", "bytes_out"),
        )
        assert table.spec("SUPPORT") == RuleSpec(
            kind="usage", name="support_usage", metrics=("bytes_in", "bytes_out")
        )
        assert table.spec("BROKER_HOURS") == RuleSpec(
            kind="usage", name="broker_usage", ratio=Fraction(1), metrics=("bytes_in",)
        )
        assert table.product_types == ("BROKER_HOURS", "SUPPORT")

    def test_unallocated_override(self) -> None:
        """An 'unallocated' override charges UNALLOCATED, naming the rule as the reason."""
        table = RuleTable(DEFAULTS, overrides={"SUPPORT": RuleOverride(rule="unallocated")})
        (only,) = table.allocator("SUPPORT")(context("SUPPORT", 9, {})).allocations
        assert (only.identity_id, only.amount, only.rule) == (UNALLOCATED, 9, "support_unallocated")

    def test_allocators_of_a_table_share_one_memo(self) -> None:
        """The usage rules of one table share their memo (lines of a resource and day
        weigh the same usage), and two tables never share one."""
        one, two = RuleTable(DEFAULTS), RuleTable(DEFAULTS)
        assert one.allocator("BROKER_HOURS").memo is one.allocator("SUPPORT").memo
        assert one.allocator("BROKER_HOURS").memo is not two.allocator("BROKER_HOURS").memo
