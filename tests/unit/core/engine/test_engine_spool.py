"""The run's spools: lines and usage packed per date come back exactly, in order."""

from __future__ import annotations

import collections
import datetime as dt
import enum
import types
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.core.engine.dates import billing_fingerprint
from chargeback.core.engine.spool import LineSpool, UsageSpool
from chargeback.core.models import NO_ATTRIBUTES, BillingLineItem, MetricQuery

D1 = dt.date(2026, 3, 1)


class Product(enum.StrEnum):
    """A plugin's own product type enum (a ``str`` subclass)."""

    SUPPORT = "SUPPORT"


QUERY = MetricQuery("bytes", "m/bytes", "resource.kafka.id", "metric.principal_id")


def needs(lines: Iterable[BillingLineItem]) -> dict[MetricQuery, set[str]]:
    """Every line with a resource needs QUERY for it."""
    return {QUERY: {li.resource_id for li in lines if li.resource_id}}


line_strategy = st.builds(
    BillingLineItem,
    line_id=st.text(min_size=1, max_size=8),
    date=st.sampled_from([D1, D1 + dt.timedelta(days=1), D1 + dt.timedelta(days=2)]),
    product_type=st.sampled_from(["KAFKA_BASE", "SUPPORT"]),
    product_category=st.just("KAFKA"),
    amount=st.integers(-(10**15), 10**15),
    resource_id=st.none() | st.sampled_from(["lkc-1", "lkc-2"]),
    env_id=st.none() | st.text(max_size=4),
    quantity=st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=6),
    unit_price=st.none() | st.decimals(allow_nan=True, allow_infinity=True),
    original_amount=st.none() | st.integers(-(2**70), 2**70),
    description=st.none() | st.text(max_size=6),
    attributes=st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    error=st.none() | st.text(max_size=6),
)


class TestLineSpool:
    @settings(max_examples=50, deadline=None)
    @given(lines=st.lists(line_strategy, max_size=2500))
    def test_lines_round_trip_per_date_in_order(self, lines):
        """Each date's lines come back equal and in arrival order; digests match the lines."""
        spool = LineSpool(needs, keep_lines=len(lines) // 2)
        for line in lines:
            spool.add(line)
        spool.finish()
        for day in {D1, D1 + dt.timedelta(days=1), D1 + dt.timedelta(days=2)}:
            expected = [li for li in lines if li.date == day]
            assert spool.count(day) == len(expected)
            assert spool.fingerprint(day) == billing_fingerprint(expected)
            wanted = {li.resource_id for li in expected if li.resource_id}
            assert spool.needs([day]).get(QUERY, set()) == wanted
            # repr, not ==: Decimal("1.50") == Decimal("1.5"), and types must survive too
            assert list(map(repr, spool.pop(day))) == list(map(repr, expected))
            assert spool.pop(day) == []

    def test_discarded_dates_are_gone_and_others_stay(self):
        """An unchanged date's lines are dropped unread; the other dates are untouched."""
        lines = [
            BillingLineItem(f"l{i}", D1 + dt.timedelta(days=i % 2), "S", "S", i)
            for i in range(3000)
        ]
        spool = LineSpool(needs, keep_lines=500)
        for line in lines:
            spool.add(line)
        spool.finish()
        spool.discard(D1)
        assert spool.pop(D1) == []
        assert spool.pop(D1 + dt.timedelta(days=1)) == lines[1::2]

    def test_dates_of_several_chunks_come_back_whole(self):
        """Interleaved dates of thousands of lines each (several packed chunks) stay whole."""
        lines = [
            BillingLineItem(f"l{i}", D1 + dt.timedelta(days=i % 2), "SUPPORT", "S", i)
            for i in range(5001)
        ]
        spool = LineSpool(needs, keep_lines=1500)  # some chunks kept, the rest packed
        for line in lines:
            spool.add(line)
        spool.finish()
        assert sum(isinstance(p, bytes) for parts in spool._packed.values() for p in parts) > 0
        assert spool.pop(D1 + dt.timedelta(days=1)) == lines[1::2]
        assert spool.pop(D1) == lines[::2]

    def test_unpicklable_lines_are_kept_as_they_are(self):
        """A line a third-party source decorated with something unpicklable is not lost."""
        odd = BillingLineItem(
            "l1", D1, "SUPPORT", "SUPPORT", 5, quantity=Decimal("1.5"),
            attributes=types.MappingProxyType({"k": "v"}),  # cannot be pickled
        )  # fmt: skip
        spool = LineSpool(needs, keep_lines=0)
        spool.add(odd)
        spool.finish()
        assert spool.pop(D1) == [odd]

    def test_lines_of_other_types_come_back_as_they_were(self):
        """Lines a plugin built with subclasses or other mappings are packed another way,
        and come back with the very same types."""

        plain = BillingLineItem("l0", D1, "SUPPORT", "S", 1, quantity=Decimal("2.50"))
        odd = [
            BillingLineItem("l1", D1, Product.SUPPORT, "S", 5),
            BillingLineItem("l2", D1, "SUPPORT", "S", 6, attributes=collections.OrderedDict(a="b")),
            BillingLineItem("l3", D1, "SUPPORT", "S", 7, quantity=Fraction(1, 3)),  # type: ignore[arg-type]
        ]
        for line in odd:
            spool = LineSpool(needs, keep_lines=0)
            spool.add(plain)
            spool.add(line)
            spool.finish()
            assert all(isinstance(p, bytes) for p in spool._packed[D1])
            back = spool.pop(D1)
            assert list(map(repr, back)) == [repr(plain), repr(line)]
            assert [type(v) for v in back[1]] == [type(v) for v in line]

    def test_default_and_empty_attributes_come_back_as_they_were(self):
        """The shared read-only default stays that object; an empty dict stays a dict."""
        default = BillingLineItem("l0", D1, "SUPPORT", "S", 1)
        empty = BillingLineItem("l1", D1, "SUPPORT", "S", 2, attributes={})
        spool = LineSpool(needs, keep_lines=0)
        spool.add(default)
        spool.add(empty)
        spool.finish()
        assert all(isinstance(p, bytes) for p in spool._packed[D1])  # packed, not kept
        back = spool.pop(D1)
        assert back == [default, empty]
        assert back[0].attributes is NO_ATTRIBUTES
        assert type(back[1].attributes) is dict
        assert back[1].attributes == {} == NO_ATTRIBUTES

    def test_digest_ignores_order_but_not_content(self):
        """The date digest is the same in any order and changes with any line."""
        a = BillingLineItem("a", D1, "SUPPORT", "SUPPORT", 5)
        b = BillingLineItem("b", D1, "SUPPORT", "SUPPORT", 7)
        assert billing_fingerprint([a, b]) == billing_fingerprint([b, a])
        assert billing_fingerprint([a, b]) != billing_fingerprint([a, b, b])
        assert billing_fingerprint([a]) != billing_fingerprint([b])


class TestUsageSpool:
    def test_usage_comes_back_per_date(self):
        """A query's table over several dates is handed back date by date, exactly."""
        other = MetricQuery("cfu", "m/cfu", "resource.compute_pool.id", "statement")
        table = {
            (D1, "lkc-1"): {"sa-1": 10, "sa-2": 2**40},
            (D1 + dt.timedelta(days=1), "lkc-1"): {"sa-1": 3},
        }
        spool = UsageSpool()
        spool.add(QUERY, table)
        spool.add(other, {})
        first = spool.pop(D1)
        assert first == {QUERY: {(D1, "lkc-1"): {"sa-1": 10, "sa-2": 2**40}}, other: {}}
        second = spool.pop(D1 + dt.timedelta(days=1))
        assert second[QUERY] == {(D1 + dt.timedelta(days=1), "lkc-1"): {"sa-1": 3}}
        assert spool.pop(D1 + dt.timedelta(days=5)) == {QUERY: {}, other: {}}

    def test_a_query_added_again_merges_its_resources(self):
        """A later chunk adds the same query for new resources: one table per date."""
        spool = UsageSpool()
        spool.add(QUERY, {(D1, "lkc-1"): {"sa-1": 1}})
        spool.add(QUERY, {(D1, "lkc-2"): {"sa-2": 2}})
        assert spool._queries == {QUERY: None}
        assert spool.pop(D1) == {QUERY: {(D1, "lkc-1"): {"sa-1": 1}, (D1, "lkc-2"): {"sa-2": 2}}}
