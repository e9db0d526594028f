"""Allocation dispatch: routing, overrides, usage, and conservation whatever allocators do."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from chargeback.core.engine.allocation import Dispatcher, RunNotes
from chargeback.core.engine.conserve import checked as _checked
from chargeback.core.engine.conserve import merged as _merged
from chargeback.core.models import (
    UNALLOCATED,
    Allocation,
    AllocationContext,
    AllocationResult,
    BillingLineItem,
    CostType,
    Identity,
    IdentityResolution,
    IdentitySet,
    MetricQuery,
    Resource,
)
from chargeback.core.money import split
from chargeback.core.plugin.overrides import Overrides
from chargeback.core.plugin.protocols import CostAllocator, ResolveContext
from chargeback.errors import PluginError

DAY = dt.date(2026, 3, 1)
Q = MetricQuery("bytes", "m/bytes", "resource.id", "principal")
IDS = IdentitySet(
    [
        Identity("sa-1", "sa"),
        Identity("sa-2", "sa"),
        Identity("sa-3", "sa"),
        Identity("sa-old", "sa", deleted_at=dt.datetime(2026, 2, 1, tzinfo=dt.UTC)),
    ]
)


def by_usage(ctx: AllocationContext) -> AllocationResult:
    weights = [ctx.usage["bytes"].get(i, 0) for i in ctx.identities.ids]
    parts = split(ctx.line.amount, weights)
    return AllocationResult(
        [
            Allocation(i, a, CostType.USAGE, "by_usage")
            for i, a in zip(ctx.identities.ids, parts, strict=True)
        ]
    )


class Handler:
    """A minimal service handler claiming some product types with one allocator."""

    def __init__(self, types: Sequence[str], allocator: CostAllocator, queries=(Q,)) -> None:
        self.types = tuple(types)
        self.allocator = allocator
        self.queries = tuple(queries)
        self.contexts: list[ResolveContext | None] = []

    @property
    def service_type(self) -> str:
        return "svc"

    @property
    def handles_product_types(self) -> Sequence[str]:
        return self.types

    async def gather_resources(self, tenant_id: str, shared: Any) -> Sequence[Resource]:
        return []

    async def gather_identities(self, tenant_id: str, shared: Any) -> Sequence[Identity]:
        return []

    def get_metrics_for_product_type(self, product_type: str) -> Sequence[MetricQuery]:
        return self.queries

    def resolve_identities(
        self, line: BillingLineItem, context: ResolveContext | None = None
    ) -> IdentityResolution:
        self.contexts.append(context)
        assert context is not None
        return IdentityResolution(context["cached_identities"])

    def get_allocator(self, product_type: str) -> CostAllocator:
        return self.allocator


def line(
    line_id: str, amount: int, product_type: str = "P", *, resource_id: str | None = "r-1", **kw
) -> BillingLineItem:
    return BillingLineItem(line_id, DAY, product_type, "CAT", amount, resource_id=resource_id, **kw)


def allocate(dispatcher: Dispatcher, lines, usage=None, notes=None):
    return dispatcher.allocate_date(
        DAY, lines, identities=IDS, resources={}, usage=usage or {}, notes=notes
    )


def sums_by_line(rows) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r.line_id] = out.get(r.line_id, 0) + r.amount
    return out


class TestRouting:
    def test_usage_from_table_by_date_and_resource(self) -> None:
        """The allocator sees the usage of its line's date and resource under the query key."""
        h = Handler(["P"], by_usage)
        d = Dispatcher("t", {"svc": h}, None)
        usage = {Q: {(DAY, "r-1"): {"sa-1": 1, "sa-2": 3}, (DAY, "r-2"): {"sa-3": 1}}}
        result = allocate(d, [line("l1", 400)], usage)
        assert {(r.identity_id, r.amount) for r in result.rows} == {("sa-1", 100), ("sa-2", 300)}
        assert all(r.cost_type == "usage" and r.rule == "by_usage" for r in result.rows)

    def test_one_context_per_date_with_active_identities(self) -> None:
        """All lines of a date share one ResolveContext holding only the active identities."""
        h = Handler(["P"], by_usage)
        d = Dispatcher("t", {"svc": h}, None)
        allocate(d, [line("l1", 10), line("l2", 20)])
        first, second = h.contexts
        assert first is second
        assert first is not None
        assert first["cached_identities"].ids == ("sa-1", "sa-2", "sa-3")

    def test_unclaimed_goes_to_fallback(self) -> None:
        """A product type no handler claims goes to the plugin's fallback, with all identities."""
        seen: list[AllocationContext] = []

        def fallback(ctx: AllocationContext) -> AllocationResult:
            seen.append(ctx)
            return AllocationResult.unallocated(ctx.line, "fallback", "unknown")

        d = Dispatcher("t", {"svc": Handler(["P"], by_usage)}, fallback)
        result = allocate(d, [line("x", 99, "OTHER")])
        assert [(r.identity_id, r.amount, r.reason) for r in result.rows] == [
            (UNALLOCATED, 99, "unknown")
        ]
        assert seen[0].identities.ids == ("sa-1", "sa-2", "sa-3")
        assert result.unallocated == 99

    def test_no_fallback_unallocated_and_warned_once(self) -> None:
        """Without a fallback, unclaimed lines go to UNALLOCATED, warned once per type per run."""
        d = Dispatcher("t", {}, None)
        notes = RunNotes()
        with capture_logs() as logs:
            result = allocate(d, [line("a", 5, "Z"), line("b", 6, "Z")], notes=notes)
            allocate(d, [line("c", 7, "Z")], notes=notes)
        assert {r.reason for r in result.rows} == {"no handler for product type Z"}
        assert {r.rule for r in result.rows} == {"no_handler"}
        assert [e["product_type"] for e in logs if e["event"] == "no handler for product type"] == [
            "Z"
        ]

    def test_line_error_goes_to_unallocated_with_reason(self) -> None:
        """A malformed source line is UNALLOCATED with its error as reason."""
        d = Dispatcher("t", {"svc": Handler(["P"], by_usage)}, None)
        result = allocate(d, [line("a", 5, error="bad price")])
        assert [(r.identity_id, r.cost_type, r.reason) for r in result.rows] == [
            (UNALLOCATED, "unallocated", "source_error: bad price")
        ]

    def test_overrides_replace_allocator_and_resolver(self) -> None:
        """Per product type, an allocator override and a resolver override are used instead."""

        def to_first(ctx: AllocationContext) -> AllocationResult:
            return AllocationResult(
                [Allocation(ctx.identities.ids[0], ctx.line.amount, "shared", "first")]
            )

        def only_sa_3(line: BillingLineItem, context: ResolveContext) -> IdentityResolution:
            return IdentityResolution(IdentitySet([context["cached_identities"]["sa-3"]]))

        h = Handler(["P", "Q"], by_usage)
        d = Dispatcher("t", {"svc": h}, None, Overrides({"P": to_first}, {"P": only_sa_3}))
        result = allocate(d, [line("a", 5, "P")])
        assert [(r.identity_id, r.rule) for r in result.rows] == [("sa-3", "first")]
        assert h.contexts == []

    def test_two_handlers_claiming_one_type(self) -> None:
        """Two handlers claiming one product type is a plugin error."""
        with pytest.raises(PluginError, match="claimed by two handlers"):
            Dispatcher("t", {"a": Handler(["P"], by_usage), "b": Handler(["P"], by_usage)}, None)

    def test_metric_queries_collects_resources(self) -> None:
        """Each query is asked once with every resource of the lines that need it."""
        d = Dispatcher("t", {"svc": Handler(["P"], by_usage)}, None)
        lines = [
            line("a", 1, resource_id="r-2"),
            line("b", 1),
            line("c", 1, resource_id=None),
            line("d", 1, "Z"),
        ]
        assert d.metric_queries(lines) == {Q: {"r-1", "r-2"}}


def raising(ctx: AllocationContext) -> AllocationResult:
    raise ZeroDivisionError("oops")


def over(ctx: AllocationContext) -> AllocationResult:
    return AllocationResult([Allocation("sa-1", ctx.line.amount + 7, "usage", "over")])


def empty_id(ctx: AllocationContext) -> AllocationResult:
    return AllocationResult([Allocation("", ctx.line.amount, "usage", "bad")])


def float_amount(ctx: AllocationContext) -> AllocationResult:
    return AllocationResult([Allocation("sa-1", 0.5, "usage", "bad")])  # type: ignore[arg-type]


def not_a_result(ctx: AllocationContext) -> AllocationResult:
    return [("sa-1", ctx.line.amount)]  # type: ignore[return-value]


def duplicates(ctx: AllocationContext) -> AllocationResult:
    a = ctx.line.amount
    return AllocationResult(
        [Allocation("sa-1", a // 2, "usage", "dup"), Allocation("sa-1", a - a // 2, "usage", "dup")]
    )


def nothing(ctx: AllocationContext) -> AllocationResult:
    return AllocationResult([])


MISBEHAVING = [raising, over, empty_id, float_amount, not_a_result, duplicates, nothing, by_usage]


class TestMisbehavingAllocators:
    @pytest.mark.parametrize(
        ("allocator", "fragment"),
        [
            (raising, "allocator_error: ZeroDivisionError: oops"),
            (over, "allocator_error: parts sum to"),
            (empty_id, "allocator_error: identity id '' is empty"),
            (float_amount, "allocator_error: amount 0.5 is not an int"),
            (not_a_result, "allocator_error: returned list"),
            (nothing, "allocator_error: parts sum to 0"),
        ],
    )
    def test_contract_breach_is_unallocated_with_reason(self, allocator, fragment: str) -> None:
        """Any contract breach sends the line or the difference to UNALLOCATED, logged once."""
        d = Dispatcher("t", {"svc": Handler(["P"], allocator)}, None)
        with capture_logs() as logs:
            result = allocate(d, [line("a", 1000), line("b", 1001)])
        assert sums_by_line(result.rows) == {"a": 1000, "b": 1001}
        assert any(
            fragment in (r.reason or "") for r in result.rows if r.identity_id == UNALLOCATED
        )
        assert result.allocator_errors == 2
        assert len([e for e in logs if e["event"] == "allocation failed"]) == 1
        if allocator in (raising, not_a_result):  # the whole line: the engine's rule
            assert {r.rule for r in result.rows} == {"allocator_error"}

    def test_duplicate_parts_are_merged(self) -> None:
        """Two parts for the same identity and rule become one row."""
        d = Dispatcher("t", {"svc": Handler(["P"], duplicates)}, None)
        result = allocate(d, [line("a", 1001)])
        assert [(r.identity_id, r.amount) for r in result.rows] == [("sa-1", 1001)]

    def test_resolver_raising(self) -> None:
        """A raising resolver override sends the line to UNALLOCATED with resolver_error."""

        def bad(line: BillingLineItem, context: ResolveContext) -> IdentityResolution:
            raise KeyError("x")

        d = Dispatcher("t", {"svc": Handler(["P"], by_usage)}, None, Overrides({}, {"P": bad}))
        result = allocate(d, [line("a", 10)])
        assert [(r.identity_id, r.amount) for r in result.rows] == [(UNALLOCATED, 10)]
        assert (result.rows[0].reason or "").startswith("resolver_error: KeyError")


@st.composite
def scenario(draw: st.DrawFn):
    n = draw(st.integers(min_value=0, max_value=25))
    lines = [
        line(
            f"l{i}",
            draw(st.integers(min_value=-(10**15), max_value=10**15)),
            draw(st.sampled_from(["P", "Q", "UNKNOWN"])),
            resource_id=draw(st.sampled_from(["r-1", "r-2", None])),
            error=draw(st.sampled_from([None, None, None, "bad"])),
        )
        for i in range(n)
    ]
    usage = {
        Q: {
            (DAY, rid): draw(
                st.dictionaries(
                    st.sampled_from(["sa-1", "sa-2", "sa-3", "x"]), st.integers(0, 10**12)
                )
            )
            for rid in ["r-1", "r-2"]
        }
    }
    alloc_p = draw(st.sampled_from(MISBEHAVING))
    alloc_q = draw(st.sampled_from(MISBEHAVING))
    fallback = draw(st.sampled_from([None, *MISBEHAVING]))
    return lines, usage, alloc_p, alloc_q, fallback


class TestConservation:
    @settings(max_examples=200, deadline=None)
    @given(scenario())
    def test_every_line_conserved(self, sc) -> None:
        """For any lines, usage and (mis)behaving allocators, each line's rows sum to its amount."""
        lines, usage, alloc_p, alloc_q, fallback = sc
        d = Dispatcher("t", {"p": Handler(["P"], alloc_p), "q": Handler(["Q"], alloc_q)}, fallback)
        result = allocate(d, lines, usage)
        got = sums_by_line(result.rows)
        for li in lines:
            assert got.get(li.line_id, 0) == li.amount
        assert all(r.identity_id for r in result.rows)
        assert all(r.reason for r in result.rows if r.identity_id == UNALLOCATED)
        assert result.unallocated == sum(
            r.amount for r in result.rows if r.identity_id == UNALLOCATED
        )
        keys = [(r.line_id, r.identity_id, r.cost_type, r.rule, r.reason) for r in result.rows]
        assert len(keys) == len(set(keys))


_part = st.tuples(
    st.sampled_from(["sa-1", "sa-2", "u-3", UNALLOCATED, ""]),
    st.integers(-(10**12), 10**12) | st.just(0),
    st.sampled_from(["usage", "shared", CostType.USAGE, CostType.UNALLOCATED]),
    st.sampled_from(["r1", "r2"]),
    st.sampled_from([None, "why", ""]),
)


def _normal(parts: Sequence[Any]) -> list[tuple[Any, ...]]:
    return sorted(((str(p[0]), p[1], str(p[2]), str(p[3]), p[4]) for p in parts), key=repr)


class TestCheckedFastPath:
    @settings(max_examples=300, deadline=None)
    @given(raw=st.lists(_part, max_size=8), exact=st.booleans(), as_tuple=st.booleans())
    def test_fast_path_agrees_with_the_general_check(self, raw, exact, as_tuple):
        """Whatever the parts, the fast check gives the same parts and error as the merge,
        and the identity and amount columns of the parts it returns."""
        parts = [Allocation(*p) for p in raw]
        total = sum(p.amount for p in parts)
        amount = total if exact else total + 7
        line = BillingLineItem("l1", dt.date(2026, 1, 1), "P", "C", amount)
        result = AllocationResult(tuple(parts) if as_tuple else parts)
        fast_parts, fast_error, idents, amounts = _checked(line, result)
        slow_parts, slow_error = _merged(line, result)
        assert fast_error == slow_error
        assert (idents, amounts) == ([p[0] for p in fast_parts], [p[1] for p in fast_parts])
        assert _normal(fast_parts) == _normal(slow_parts)
        assert sum(p[1] for p in fast_parts) == amount
