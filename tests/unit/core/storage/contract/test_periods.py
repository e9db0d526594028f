"""Open and closed days and restatements (DESIGN §16), on every backend."""

from __future__ import annotations

import datetime as dt

from chargeback.core.storage.backend import PeriodSync

D1, D2, D3, D4 = (dt.date(2026, 10, 28) + dt.timedelta(days=i) for i in range(4))
AT = dt.datetime(2026, 11, 5, 6, tzinfo=dt.UTC)


async def commit(backend, commit_date, line_factory, day, amount, *, fingerprint="b1"):
    line = line_factory("a", amount, day=day)
    await commit_date(backend, "t1", day, [line], [], billing_fingerprint=fingerprint)


class TestPeriods:
    async def test_days_are_filed_open_or_closed_by_the_window(
        self, backend, line_factory, commit_date
    ):
        """A first sync files old days closed and recent ones open, and reports no change."""
        for day in (D1, D2, D3):
            await commit(backend, commit_date, line_factory, day, 10)
        assert await backend.sync_periods("t1", D3, AT) == PeriodSync()
        assert await backend.period_statuses("t1", D1, D4) == {
            D1: "closed", D2: "closed", D3: "open",
        }  # fmt: skip
        assert await backend.period_statuses("t2", D1, D4) == {}

    async def test_an_open_day_closes_when_the_window_passes_it(
        self, backend, line_factory, commit_date
    ):
        """Moving ``open_from`` past a day closes it, once."""
        await commit(backend, commit_date, line_factory, D3, 10)
        await backend.sync_periods("t1", D3, AT)
        sync = await backend.sync_periods("t1", D4, AT + dt.timedelta(days=1))
        assert sync.closed == (D3,)
        assert sync.changed == [D3]
        assert await backend.sync_periods("t1", D4, AT) == PeriodSync()

    async def test_a_restated_closed_day_reopens_and_is_recorded(
        self, backend, line_factory, commit_date
    ):
        """A closed day's new bill reopens it with before/after totals, counted per tenant."""
        await commit(backend, commit_date, line_factory, D1, 100)
        await backend.sync_periods("t1", D3, AT)
        await commit(backend, commit_date, line_factory, D1, 130, fingerprint="b2")
        sync = await backend.sync_periods("t1", D3, AT)
        [restated] = sync.reopened
        assert (restated.day, restated.billed_before, restated.billed_after) == (D1, 100, 130)
        assert (restated.fingerprint_before, restated.fingerprint_after) == ("b1", "b2")
        assert sync.changed == [D1]
        assert await backend.period_statuses("t1", D1, D2) == {D1: "open"}
        assert await backend.restatement_counts() == {"t1": 1}
        [listed] = await backend.list_restatements("t1")
        assert (listed.day, listed.billed_before, listed.billed_after) == (D1, 100, 130)
        assert listed.detected_at == AT
        # It stays open for a settle period counted from the reopening, then closes.
        assert await backend.sync_periods("t1", AT.date(), AT) == PeriodSync()
        later = AT + dt.timedelta(days=6)
        closed = await backend.sync_periods("t1", later.date(), later)
        assert closed.closed == (D1,)
        assert await backend.period_statuses("t1", D1, D2) == {D1: "closed"}
        assert await backend.sync_periods("t1", later.date(), later) == PeriodSync()

    async def test_an_open_day_recalculated_is_no_restatement(
        self, backend, line_factory, commit_date
    ):
        """Billing that changes while the day is open is the normal settling of a bill."""
        await commit(backend, commit_date, line_factory, D3, 10)
        await backend.sync_periods("t1", D3, AT)
        await commit(backend, commit_date, line_factory, D3, 20, fingerprint="b2")
        assert await backend.sync_periods("t1", D3, AT) == PeriodSync()
        assert await backend.restatement_counts() == {}
