"""Runs, rerun requests and emission records: pipeline state that survives a restart."""

from __future__ import annotations

import datetime as dt

import pytest

from chargeback.errors import StorageError

T0 = dt.datetime(2024, 5, 4, 6, 0, tzinfo=dt.UTC)
D1, D2, D3 = dt.date(2024, 5, 1), dt.date(2024, 5, 2), dt.date(2024, 5, 3)


class TestRuns:
    async def test_run_lifecycle_is_recorded(self, backend):
        """A started run is 'running'; finishing it stores status, counts and error."""
        await backend.start_run("t1", "run-1", "schedule", T0)
        [running] = await backend.list_runs("t1")
        assert (running.status, running.finished_at, running.counts) == ("running", None, {})
        await backend.finish_run(
            "run-1",
            status="failed",
            finished_at=T0 + dt.timedelta(seconds=5),
            counts={"dates_calculated": 3, "rows_written": 120},
            error="billing API down",
        )
        [done] = await backend.list_runs("t1")
        assert done.status == "failed"
        assert done.finished_at == T0 + dt.timedelta(seconds=5)
        assert done.counts == {"dates_calculated": 3, "rows_written": 120}
        assert done.error == "billing API down"
        assert done.trigger == "schedule"

    async def test_runs_list_newest_first_with_limit(self, backend):
        """list_runs returns the tenant's newest runs first, at most ``limit``."""
        for i in range(5):
            await backend.start_run("t1", f"run-{i}", "schedule", T0 + dt.timedelta(hours=i))
        await backend.start_run("t2", "other", "signal", T0)
        runs = await backend.list_runs("t1", limit=3)
        assert [r.run_id for r in runs] == ["run-4", "run-3", "run-2"]

    async def test_finishing_an_unknown_run_fails(self, backend):
        """Finishing a run that was never started is a StorageError."""
        with pytest.raises(StorageError, match="no run 'ghost' was started"):
            await backend.finish_run("ghost", status="success", finished_at=T0, counts={})

    async def test_duplicate_run_id_fails(self, backend):
        """Starting a run id twice is a StorageError."""
        await backend.start_run("t1", "run-1", "schedule", T0)
        with pytest.raises(StorageError, match="constraint"):
            await backend.start_run("t1", "run-1", "schedule", T0)

    async def test_runs_survive_reopen(self, reopen):
        """Run rows are in the database, not in memory."""
        async with reopen() as store:
            await store.start_run("t1", "run-1", "cli", T0)
        async with reopen() as store:
            assert [r.run_id for r in await store.list_runs("t1")] == ["run-1"]
            assert await store.tenants() == ["t1"]


class TestReruns:
    async def test_request_pending_complete(self, backend):
        """Requests are pending, oldest first, until completed."""
        first = await backend.request_rerun("t1", D1, D2, T0)
        second = await backend.request_rerun("t1", D3, D3, T0)
        await backend.request_rerun("t2", D1, D1, T0)
        pending = await backend.pending_reruns("t1")
        assert [(r.request_id, r.start, r.end) for r in pending] == [
            (first, D1, D2),
            (second, D3, D3),
        ]
        assert pending[0].requested_at == T0
        await backend.complete_reruns([first], T0)
        assert [r.request_id for r in await backend.pending_reruns("t1")] == [second]
        await backend.complete_reruns([], T0)
        assert len(await backend.pending_reruns("t2")) == 1

    async def test_inverted_range_is_rejected(self, backend):
        """A rerun range whose start is after its end is a ValueError."""
        with pytest.raises(ValueError, match="start <= end"):
            await backend.request_rerun("t1", D2, D1, T0)


class TestEmissions:
    async def _calculate(self, backend, *days):
        for day in days:
            await backend.commit_date(
                "t1",
                day,
                lines=[],
                rows=[],
                plugin_rows=[],
                billing_fingerprint="b",
                settings_fingerprint="s",
                inventory_fingerprint="i",
                calculated_at=T0,
            )

    async def test_calculated_dates_are_pending_until_emitted(self, backend):
        """Each calculated date is pending at its calc_seq until emitted successfully."""
        await self._calculate(backend, D1, D2)
        assert await backend.pending_emissions("t1", "csv") == [(D1, 1), (D2, 1)]
        await backend.record_emission("t1", "csv", D1, 1, emitted_at=T0)
        assert await backend.pending_emissions("t1", "csv") == [(D2, 1)]
        assert await backend.pending_emissions("t1", "prometheus") == [(D1, 1), (D2, 1)]
        assert await backend.pending_emissions("t2", "csv") == []

    async def test_recalculation_makes_a_date_pending_again(self, backend):
        """After a recommit the date is pending at the new calc_seq."""
        await self._calculate(backend, D1)
        await backend.record_emission("t1", "csv", D1, 1, emitted_at=T0)
        await self._calculate(backend, D1)
        assert await backend.pending_emissions("t1", "csv") == [(D1, 2)]

    async def test_failed_emission_stays_pending_and_keeps_the_error(self, backend, peek):
        """A failed attempt keeps the date pending; attempts and the last error are stored."""
        await self._calculate(backend, D1)
        await backend.record_emission("t1", "csv", D1, 1, emitted_at=T0, error="disk full")
        await backend.record_emission("t1", "csv", D1, 1, emitted_at=T0, error="still full")
        assert await backend.pending_emissions("t1", "csv") == [(D1, 1)]
        assert emission_row(peek) == (1, "still full", 2, None)
        await backend.record_emission("t1", "csv", D1, 1, emitted_at=T0)
        assert await backend.pending_emissions("t1", "csv") == []
        assert emission_row(peek) == (1, None, 3, 1)

    async def test_failure_after_success_keeps_the_success(self, backend, peek):
        """A failed retry of a newer calc_seq does not forget the older success."""
        await self._calculate(backend, D1)
        await backend.record_emission("t1", "csv", D1, 1, emitted_at=T0)
        await self._calculate(backend, D1)
        await backend.record_emission("t1", "csv", D1, 2, emitted_at=T0, error="boom")
        assert emission_row(peek) == (2, "boom", 1, 1)
        assert await backend.pending_emissions("t1", "csv") == [(D1, 2)]

    async def test_emission_of_an_uncalculated_date_fails(self, backend):
        """Recording an emission for a date never calculated violates the foreign key."""
        with pytest.raises(StorageError, match="constraint"):
            await backend.record_emission("t1", "csv", D3, 1, emitted_at=T0)


def emission_row(peek):
    """Return (calc_seq, error, attempts, emitted_seq) of the only emission row."""
    [row] = peek("SELECT calc_seq, error, attempts, emitted_seq FROM emissions")
    return row
