"""Which dates get work: window, fingerprints, fetch and allocation selection (DESIGN §4)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from chargeback.core.engine import dates as ds
from chargeback.core.engine.pipeline import billing_chunks
from chargeback.core.models import BillingLineItem
from chargeback.core.storage.backend import DateState, RerunRequest

D = dt.date(2026, 3, 10)


def day(n: int) -> dt.date:
    return D - dt.timedelta(days=n)


def state(d: dt.date, *, billing="b", settings="s", inventory="i") -> DateState:
    return DateState(
        day=d,
        billing_fingerprint=billing,
        settings_fingerprint=settings,
        inventory_fingerprint=inventory,
        calc_seq=1,
        calculated_at=dt.datetime(2026, 3, 10, tzinfo=dt.UTC),
        line_count=0,
        row_count=0,
        billed_total=0,
        allocated_total=0,
        unallocated_total=0,
    )


def line(line_id: str, amount: int = 1, **kw) -> BillingLineItem:
    return BillingLineItem(line_id, D, "P", "C", amount, **kw)


class TestWindow:
    def test_inclusive_bounds(self) -> None:
        """The window runs from today-lookback to today-cutoff, both inclusive."""
        w = ds.window(D, 10, 3, 2)
        assert w.first == day(10)
        assert w.last == day(3)
        assert w.days() == [day(n) for n in range(10, 2, -1)]
        assert [d for d in w.days() if w.in_recalc(d)] == [day(4), day(3)]

    def test_zero_recalc_days(self) -> None:
        """recalc_days=0 means no day is in the recalculation window."""
        w = ds.window(D, 5, 1, 0)
        assert not any(w.in_recalc(d) for d in w.days())

    def test_empty_window(self) -> None:
        """A cutoff beyond the lookback gives no days."""
        assert ds.window(D, 2, 3, 1).days() == []


class TestFingerprints:
    def test_order_independent(self) -> None:
        """The billing fingerprint does not depend on line order."""
        a, b = line("a", 5), line("b", 7, quantity=Decimal("1.50"))
        assert ds.billing_fingerprint([a, b]) == ds.billing_fingerprint([b, a])

    def test_any_field_change_changes_it(self) -> None:
        """Changing an amount, attribute or error changes the fingerprint."""
        base = ds.billing_fingerprint([line("a", 5)])
        assert ds.billing_fingerprint([line("a", 6)]) != base
        assert ds.billing_fingerprint([line("a", 5, attributes={"k": "v"})]) != base
        assert ds.billing_fingerprint([line("a", 5, error="x")]) != base
        assert ds.billing_fingerprint([]) != base

    def test_settings_ignores_connection_keys(self) -> None:
        """Credentials and URLs do not change the settings fingerprint; rules do."""
        base = ds.settings_fingerprint({"rule": "even", "api_key": "k1", "base_url": "http://a"})
        same = ds.settings_fingerprint({"api_key": "k2", "rule": "even", "base_url": "http://b"})
        assert base == same
        assert ds.settings_fingerprint({"rule": "usage", "api_key": "k1"}) != base

    def test_settings_nested_order_independent(self) -> None:
        """Nested mappings hash the same whatever their key order."""
        a = ds.settings_fingerprint({"o": {"x": 1, "y": [1, 2]}})
        b = ds.settings_fingerprint({"o": {"y": [1, 2], "x": 1}})
        assert a == b


class TestSelection:
    def test_settled_unchanged_dates_are_not_fetched(self) -> None:
        """Only never-calculated and recalc-window dates are fetched."""
        w = ds.window(D, 6, 1, 2)
        states = {d: state(d) for d in w.days() if d != day(5)}
        fetch = ds.dates_to_fetch(w, states, reruns=set(), settings_fp="s")
        assert fetch == [day(5), day(2), day(1)]

    def test_settings_change_fetches_all(self) -> None:
        """Changed settings fetch every calculated date of the window."""
        w = ds.window(D, 4, 1, 0)
        states = {d: state(d) for d in w.days()}
        assert ds.dates_to_fetch(w, states, reruns=set(), settings_fp="new") == w.days()

    def test_reruns_included_even_before_window(self) -> None:
        """Rerun dates are fetched, also older than the lookback."""
        w = ds.window(D, 3, 1, 0)
        states = {d: state(d) for d in w.days()}
        req = RerunRequest(1, "t", day(40), day(39), dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
        reruns = ds.rerun_dates([req], w.last)
        assert ds.dates_to_fetch(w, states, reruns=reruns, settings_fp="s") == [day(40), day(39)]

    def test_rerun_dates_clamped_to_cutoff(self) -> None:
        """A rerun reaching past the cutoff covers only settled days."""
        req = RerunRequest(1, "t", day(3), day(0), dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
        assert ds.rerun_dates([req], day(2)) == {day(3), day(2)}

    def test_allocation_needs_a_changed_input(self) -> None:
        """Allocate when new, billing/settings changed, rerun, or recalc + inventory changed."""
        w = ds.window(D, 8, 1, 2)
        fetched = [day(8), day(7), day(6), day(5), day(4), day(2), day(1)]
        states = {
            day(7): state(day(7), billing="old"),
            day(6): state(day(6), settings="old"),
            day(5): state(day(5)),
            day(4): state(day(4), inventory="old"),
            day(2): state(day(2), inventory="old"),
            day(1): state(day(1)),
        }
        fps = dict.fromkeys(fetched, "b")
        todo = ds.dates_to_allocate(
            fetched,
            states,
            billing_fps=fps,
            inventory_fp="i",
            settings_fp="s",
            reruns={day(5)},
            win=w,
        )
        # day(8): new; day(7): billing; day(6): settings; day(5): rerun;
        # day(4): inventory changed but outside recalc; day(2): inventory in recalc; day(1): same.
        assert todo == [day(8), day(7), day(6), day(5), day(2)]

    def test_spans_split_far_gaps(self) -> None:
        """Consecutive-ish days share one fetch span; a far day gets its own."""
        days = [day(40), day(5), day(4), day(2)]
        assert ds.spans(days) == [(day(40), day(39)), (day(5), day(1))]


class TestChunks:
    def test_spans_are_cut_into_pieces_of_at_most_n_days(self) -> None:
        """Consecutive dates go in chunks of at most n days; a far rerun date is its own
        chunk; every fetch date is in exactly one chunk, in order."""
        first = dt.date(2026, 3, 1)
        fetch = [first + dt.timedelta(days=i) for i in range(10)] + [dt.date(2026, 3, 30)]
        chunks = billing_chunks(fetch, 4)
        assert [(c[0].day, c[1].day, [d.day for d in c[2]]) for c in chunks] == [
            (1, 5, [1, 2, 3, 4]),
            (5, 9, [5, 6, 7, 8]),
            (9, 11, [9, 10]),
            (30, 31, [30]),
        ]

    def test_gaps_inside_a_span_hold_no_dates(self) -> None:
        """A span bridging a short gap fetches it, but its chunk lists only wanted dates."""
        fetch = [dt.date(2026, 3, 1), dt.date(2026, 3, 4)]
        assert billing_chunks(fetch, 30) == [(fetch[0], dt.date(2026, 3, 5), fetch)]
        assert billing_chunks(fetch, 2) == [
            (fetch[0], dt.date(2026, 3, 3), [fetch[0]]),
            (dt.date(2026, 3, 3), dt.date(2026, 3, 5), [fetch[1]]),
        ]
