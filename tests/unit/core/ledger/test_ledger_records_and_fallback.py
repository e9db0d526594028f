"""The retention window (which days a source still holds whole) and the exact split of
lines whose usage is unavailable (DESIGN §13)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeback.core.ledger import UNAVAILABLE_RULE, UsageGaps, UsagePolicy
from chargeback.core.ledger.fallback import allocate_unavailable
from chargeback.core.models import UNALLOCATED, BillingLineItem, Identity, IdentitySet, MetricQuery

TODAY = dt.date(2026, 10, 10)
Q = MetricQuery("request_bytes", "m/request_bytes", "resource.kafka.id", "metric.principal_id")


def at(hour: int, minute: int = 0, day: dt.date = TODAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), dt.UTC)


class TestWindow:
    def test_the_day_the_retention_cuts_through_is_not_whole(self) -> None:
        """At 12:00 with 7 days the source holds from today-7 12:00: today-7 is partial."""
        window = UsagePolicy(retention_days=7).window(at(12))
        assert window.first == TODAY - dt.timedelta(days=6)
        assert not window.fetchable(TODAY - dt.timedelta(days=7))
        assert window.fetchable(TODAY - dt.timedelta(days=6))

    def test_at_midnight_the_oldest_retained_day_is_whole(self) -> None:
        """At 00:00 the retention edge is a midnight: that day is still whole."""
        window = UsagePolicy(retention_days=7).window(at(0))
        assert window.first == TODAY - dt.timedelta(days=7)

    def test_a_day_is_stored_only_once_it_ended_and_settled(self) -> None:
        """Yesterday is storable 10 minutes after midnight, not before; today never is."""
        early = UsagePolicy(retention_days=7).window(at(0, 5))
        late = UsagePolicy(retention_days=7).window(at(0, 15))
        yesterday = TODAY - dt.timedelta(days=1)
        assert not early.storable(yesterday)
        assert late.storable(yesterday)
        assert late.fetchable(TODAY)
        assert not late.storable(TODAY)

    def test_no_retention_holds_every_day(self) -> None:
        """A source without retention (a Prometheus keeping its history) holds every day."""
        window = UsagePolicy(retention_days=None).window(at(12))
        assert window.first is None
        assert window.storable(dt.date(2000, 1, 1))

    def test_the_reason_names_the_date_the_source_and_the_retention(self) -> None:
        """The row reason says which date, which source and which retention."""
        window = UsagePolicy(retention_days=7, label="the Metrics API").window(at(12))
        assert window.reason(dt.date(2026, 10, 3)) == (
            "usage for 2026-10-03 is older than the Metrics API's 7-day retention and was "
            "never collected"
        )


class TestGaps:
    def test_a_line_lacks_usage_if_any_of_its_queries_lacks_its_resource(self) -> None:
        """One missing query of the line's resource is enough; other resources are not affected."""
        other = MetricQuery("response_bytes", "m/response_bytes", "resource.kafka.id", "p")
        gaps = UsageGaps({Q: frozenset({"lkc-1"})})
        assert gaps.lacks((other, Q), "lkc-1")
        assert not gaps.lacks((other,), "lkc-1")
        assert not gaps.lacks((Q,), "lkc-2")
        assert not gaps.lacks((Q,), None)


def line(amount: int) -> BillingLineItem:
    return BillingLineItem(
        line_id="l1", date=TODAY, product_type="KAFKA_NETWORK_READ", product_category="KAFKA",
        amount=amount, resource_id="lkc-1",
    )  # fmt: skip


def people(*ids: str) -> IdentitySet:
    return IdentitySet(Identity(i, "service_account") for i in ids)


REASON = "usage for 2026-10-10 is gone"


class TestFallback:
    @given(
        amount=st.integers(-(10**15), 10**15),
        ids=st.sets(st.text("abcdef", min_size=1, max_size=4), min_size=1, max_size=12),
    )
    def test_the_even_fallback_conserves_the_line_exactly(self, amount: int, ids: set[str]) -> None:
        """Any amount (credits included) over any identities: the parts sum to the line,
        differ by at most one nano, and all carry the rule and the reason."""
        result = allocate_unavailable(line(amount), people(*ids), UsageGaps({}, reason=REASON))
        parts = result.allocations
        assert sum(p.amount for p in parts) == amount
        assert {(p.rule, p.reason, p.cost_type) for p in parts} == {
            (UNAVAILABLE_RULE, REASON, "shared")
        }
        if amount:
            assert max(p.amount for p in parts) - min(p.amount for p in parts) <= 1
            assert {p.identity_id for p in parts} <= ids

    def test_the_unallocated_fallback_charges_unallocated(self) -> None:
        """when_unavailable: unallocated sends the whole line to UNALLOCATED with the reason."""
        gaps = UsageGaps({}, reason=REASON, fallback="unallocated")
        [part] = allocate_unavailable(line(900), people("sa-1"), gaps).allocations
        assert (part.identity_id, part.amount, part.rule, part.reason) == (
            UNALLOCATED, 900, UNAVAILABLE_RULE, REASON,
        )  # fmt: skip

    @pytest.mark.parametrize("amount", [900, 0])
    def test_with_nobody_active_the_line_goes_to_unallocated_saying_so(self, amount: int) -> None:
        """Nobody to share with: UNALLOCATED, and the reason says so (zero lines too)."""
        [part] = allocate_unavailable(
            line(amount), people(), UsageGaps({}, reason=REASON)
        ).allocations
        assert (part.identity_id, part.amount) == (UNALLOCATED, amount)
        assert part.reason == f"{REASON}; nobody active to share it"
