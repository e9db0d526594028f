"""The usage ledger end to end (DESIGN §13, issue 15): the Confluent plugin in a real
TenantRuntime, over real HTTP, against a ccloud_sim whose Metrics API keeps 7 days.

The sim runs in this process behind the daemon's own HTTP server (its clock and bills
are then reachable from the test: the clock moves ten days, a bill is restated), and
the runtime talks to it through its default HTTP client over a loopback socket.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from tests.support.process import free_port

from ccloud_sim import SimClock, create_app
from ccloud_sim._lru import LRU
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import RunStatus, RunSummary, TenantConfig
from chargeback.core.ledger import UNAVAILABLE_RULE, query_id
from chargeback.core.models import ChargebackRow, MetricQuery
from chargeback.core.reconcile import build_report, render_report
from chargeback.core.rules.allocators import EVEN_NO_USAGE
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin
from chargeback.plugins.confluent_cloud.metrics import MetricsApiSource
from chargeback.service.http import HttpServer

T0 = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)
TENANT = "acme"
NETWORK = ("KAFKA_NETWORK_READ", "KAFKA_NETWORK_WRITE")
DAY = dt.timedelta(days=1)

pytestmark = [pytest.mark.e2e]


@dataclass
class Sim:
    app: Starlette
    clock: SimClock
    url: str

    def restate(self, day: dt.date, factor: int) -> None:
        """Confluent restates the bill of ``day``: every amount times ``factor``."""
        org = self.app.state.org
        original = org.billing_lines

        def lines(d: dt.date, now: dt.datetime | None = None) -> list[Any]:
            got: list[Any] = original(d, now)
            if d != day:
                return got
            return [
                line._replace(
                    amount=line.amount * factor,
                    original_amount=line.original_amount * factor,
                    discount_amount=line.discount_amount * factor,
                )
                for line in got
            ]

        org.billing_lines = lines
        state = self.app.state.sim
        state.billing_text = LRU(8)
        state.billing_count.clear()


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    """A small org whose Metrics API keeps 7 days, served on a loopback port."""
    clock = SimClock(T0)
    app = create_app(seed=7, scale="small", clock=clock, metrics_retention_days=7)
    server = HttpServer(app, "127.0.0.1", free_port())
    await server.start()
    try:
        yield Sim(app, clock, f"http://127.0.0.1:{server.port}")
    finally:
        await server.aclose()


async def _no_sleep(_: float) -> None:
    return None


@dataclass
class Outcome:
    summary: RunSummary
    rows: dict[dt.date, list[ChargebackRow]]
    calculated_at: dict[dt.date, dt.datetime]
    report: str


async def run(
    sim: Sim,
    db: Path,
    *,
    lookback: int,
    metrics: dict[str, Any] | None = None,
    rerun: dt.date | None = None,
) -> Outcome:
    """One run of a fresh runtime and a fresh backend on ``db`` (a restart each time);
    ``rerun``: an operator asks for that date first (``chargeback rerun``)."""
    config = TenantConfig(
        name=TENANT,
        ecosystem="confluent_cloud",
        plugin_settings={
            "api_key": "SIMKEY", "api_secret": "SIMSECRET",
            "base_url": sim.url, "telemetry_url": sim.url, "flink_url": sim.url,
            "http": {"requests_per_second": None}, "metrics": metrics or {},
        },
        lookback_days=lookback,
        cutoff_days=3,
    )  # fmt: skip
    async with SQLiteBackend(db) as storage:
        if rerun is not None:
            await storage.request_rerun(TENANT, rerun, rerun, sim.clock.now())
        runtime = TenantRuntime(
            config, ConfluentCloudPlugin(sleep=_no_sleep), storage, clock=sim.clock.now
        )
        try:
            summary = await runtime.run()
        finally:
            await runtime.aclose()
        assert summary.status is RunStatus.SUCCESS, summary.error
        today = sim.clock.now().date()
        states = await storage.get_date_states(TENANT, today - 60 * DAY, today)
        rows = {day: await storage.read_rows(TENANT, day) for day in states}
        report = await build_report(storage, TENANT, today - 60 * DAY, today)
        assert report.ok
        return Outcome(
            summary, rows, {d: s.calculated_at for d, s in states.items()}, render_report(report)
        )


def network(rows: list[ChargebackRow]) -> list[ChargebackRow]:
    return [r for r in rows if r.product_type in NETWORK]


def lines_of(rows: list[ChargebackRow], rule: str) -> set[str]:
    return {r.line_id for r in rows if r.rule == rule}


class TestBackfillAcrossRetention:
    async def test_days_beyond_retention_are_usage_unavailable_and_the_rest_by_usage(
        self, sim: Sim, tmp_path: Path
    ) -> None:
        """A 10-day backfill: the 4 days older than the 7-day retention split their
        network lines by usage_unavailable (reason naming the date and the retention,
        evenly over the active principals), counted in the summary and in reconcile;
        the days inside it are split by usage exactly as with a source that keeps
        everything; nothing says 'no usage' where usage existed."""
        got = await run(sim, tmp_path / "ledger.db", lookback=10)
        sim.app.state.sim.metrics_retention_days = None
        control = await run(
            sim, tmp_path / "control.db", lookback=10, metrics={"retention_days": None}
        )
        today = T0.date()
        old = [today - n * DAY for n in (10, 9, 8, 7)]
        recent = [today - n * DAY for n in (6, 5, 4, 3)]
        lacking = 0
        for day in old:
            rows = network(got.rows[day])
            unavailable = [r for r in rows if r.rule == UNAVAILABLE_RULE]
            assert unavailable
            assert len(unavailable) == len(rows)
            assert {r.reason for r in unavailable} == {
                f"usage for {day} is older than the Metrics API's 7-day retention and was "
                "never collected"
            }
            assert {r.cost_type for r in unavailable} == {"shared"}
            assert not lines_of(got.rows[day], EVEN_NO_USAGE) - lines_of(
                control.rows[day], EVEN_NO_USAGE
            )
            lacking += len(lines_of(got.rows[day], UNAVAILABLE_RULE))  # other usage rules too
        for day in recent:
            assert got.rows[day] == control.rows[day]
            assert not lines_of(got.rows[day], UNAVAILABLE_RULE)
        assert got.summary.usage_unavailable_lines == lacking
        assert control.summary.usage_unavailable_lines == 0
        assert f"{lacking} lines on 4 dates were split by usage_unavailable" in got.report

    async def test_the_unallocated_fallback_sends_those_lines_to_unallocated(
        self, sim: Sim, tmp_path: Path
    ) -> None:
        """``when_unavailable: unallocated``: each such line is one UNALLOCATED row."""
        got = await run(
            sim, tmp_path / "db", lookback=9, metrics={"when_unavailable": "unallocated"}
        )
        rows = network(got.rows[T0.date() - 9 * DAY])
        assert rows
        assert {(r.identity_id, r.rule) for r in rows} == {("UNALLOCATED", UNAVAILABLE_RULE)}
        assert len(rows) == len({r.line_id for r in rows})


class TestRecalculationFromTheLedger:
    async def test_a_restated_old_bill_is_split_by_the_stored_usage(
        self, sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Run at T0 (usage of T0-6..T0-1 stored: the run's dates and, by collection,
        the two days whose bills have not settled). Ten days later the Metrics API has
        forgotten all of it and the bill of T0-4 is restated (doubled) and rerun: a
        fresh runtime on the same file recalculates it from the ledger, without asking the
        Metrics API for it, and gives exactly the split that fresh usage gives on the
        new amounts; the collected days T0-2 and T0-1 are split by usage too."""
        db = tmp_path / "ledger.db"
        first = await run(sim, db, lookback=10)
        asked: list[tuple[str, dt.date, dt.date]] = []
        fetch = MetricsApiSource.fetch

        async def recording(
            self: MetricsApiSource, query: MetricQuery, ids: Any, start: dt.date, end: dt.date
        ) -> Any:
            asked.append((query_id(query), start, end))
            return await fetch(self, query, ids, start, end)

        monkeypatch.setattr(MetricsApiSource, "fetch", recording)
        later = T0 + 10 * DAY
        sim.clock.set(later)
        restated = T0.date() - 4 * DAY
        sim.restate(restated, 2)
        got = await run(sim, db, lookback=16, rerun=restated)  # the operator reruns it
        assert all(start >= later.date() - 6 * DAY for _, start, _ in asked)  # inside retention

        sim.app.state.sim.metrics_retention_days = None
        control = await run(
            sim, tmp_path / "control.db", lookback=16, metrics={"retention_days": None}
        )
        recalculated = [d for d, at in got.calculated_at.items() if at == later and d < T0.date()]
        assert {restated, T0.date() - 2 * DAY, T0.date() - DAY} <= set(recalculated)
        for day in recalculated:
            assert got.rows[day] == control.rows[day], day
            assert not lines_of(got.rows[day], UNAVAILABLE_RULE)
        assert sum(r.amount for r in got.rows[restated]) == 2 * sum(
            r.amount for r in first.rows[restated]
        )
        # T0..T0+3 were never collected (no daemon ran) and are gone: said so.
        assert lines_of(got.rows[T0.date()], UNAVAILABLE_RULE)


WORKER = Path(__file__).with_name("ledger_kill_worker.py")
_spec = importlib.util.spec_from_file_location("ledger_kill_worker", WORKER)
assert _spec is not None
assert _spec.loader is not None
kill_worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kill_worker)


def _kill_at(db: Path, sim: Sim, marker: str, pause: float) -> list[str]:
    """Start the worker, SIGKILL it ``pause`` s after it prints ``marker``; its output."""
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(db), sim.url, T0.isoformat()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []
    while True:
        line = proc.stdout.readline().strip()
        if not line:
            break
        seen.append(line)
        if line == marker:
            time.sleep(pause)
            break
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, seen
    return seen


async def _finish(db: Path, sim: Sim) -> tuple[dict[dt.date, list[ChargebackRow]], list[Any]]:
    """Run the worker's tenant to the end in this process; its rows and its ledger."""
    async with SQLiteBackend(db) as storage:
        runtime = TenantRuntime(
            kill_worker.config(sim.url), ConfluentCloudPlugin(sleep=_no_sleep), storage,
            clock=lambda: T0,
        )  # fmt: skip
        try:
            assert (await runtime.run()).status is RunStatus.SUCCESS
        finally:
            await runtime.aclose()
        return await _stored(storage)


async def _stored(storage: SQLiteBackend) -> tuple[dict[dt.date, list[ChargebackRow]], list[Any]]:
    first, end = T0.date() - 30 * DAY, T0.date()
    states = await storage.get_date_states(TENANT, first, end)
    rows = {day: await storage.read_rows(TENANT, day) for day in states}
    ledger = [
        (e.cell, tuple(sorted(e.values.items())), e.source)
        for e in await storage.read_usage(TENANT, first, end)
    ]
    return rows, ledger


class TestKilledBetweenFetchAndCommit:
    @pytest.mark.parametrize(
        ("marker", "pause"),
        [("usage stored", 0.0), ("usage writing", 0.0), ("usage writing", 0.003)],
    )
    async def test_the_ledger_is_consistent_and_the_next_run_completes(
        self, sim: Sim, tmp_path: Path, marker: str, pause: float
    ) -> None:
        """SIGKILL after usage was fetched (while or after it is stored, before any date
        commits): the ledger holds whole cells with the right values, no date is
        committed, and the next run completes with exactly a clean run's rows and ledger."""
        clean_rows, clean_ledger = await _finish(tmp_path / "clean.db", sim)
        db = tmp_path / "killed.db"
        # In a thread: the sim is served on this loop.
        seen = await asyncio.to_thread(_kill_at, db, sim, marker, pause)
        assert not any(line.startswith("commit ") for line in seen), seen
        async with SQLiteBackend(db) as storage:
            rows, ledger = await _stored(storage)
        assert rows == {}
        assert set(ledger) <= set(clean_ledger)  # whole cells, the values a clean run stores
        if marker == "usage stored":
            assert ledger
        rows, ledger = await _finish(db, sim)
        assert rows == clean_rows
        assert ledger == clean_ledger


class TestCollection:
    async def test_the_daily_collection_stores_the_day_that_ended_and_only_it(
        self, sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """After a run at T0, the collection shortly after the next midnight stores the
        usage of T0 (a day whose bill settles three days later) for the billed
        resources, exactly as the Metrics API gives it; a second collection asks nothing."""
        db = tmp_path / "db"
        await run(sim, db, lookback=8)
        asked: list[tuple[dt.date, dt.date]] = []
        fetch = MetricsApiSource.fetch

        async def recording(
            self: MetricsApiSource, query: MetricQuery, ids: Any, start: dt.date, end: dt.date
        ) -> Any:
            asked.append((start, end))
            return await fetch(self, query, ids, start, end)

        monkeypatch.setattr(MetricsApiSource, "fetch", recording)
        sim.clock.set(dt.datetime.combine(T0.date() + DAY, dt.time(0, 15), dt.UTC))
        async with SQLiteBackend(db) as storage:
            config = kill_worker.config(sim.url)
            runtime = TenantRuntime(
                config, ConfluentCloudPlugin(sleep=_no_sleep), storage, clock=sim.clock.now
            )
            try:
                stats = await runtime.collect_usage()
                assert stats is not None
                assert stats.stored > 0
                assert asked
                assert {start for start, _ in asked} == {T0.date()}
                asked.clear()
                again = await runtime.collect_usage()
                assert again is not None
                assert (again.fetched, asked) == (0, [])
            finally:
                await runtime.aclose()
            stored = await storage.read_usage(TENANT, T0.date(), T0.date() + DAY)
        assert {e.day for e in stored} == {T0.date()}
        monkeypatch.setattr(MetricsApiSource, "fetch", fetch)
        await _same_as_the_source(sim, tmp_path, stored)


async def _same_as_the_source(sim: Sim, tmp_path: Path, stored: list[Any]) -> None:
    """Every stored cell equals what the Metrics API answers for it now."""
    async with SQLiteBackend(tmp_path / "fresh") as other:
        plugin = ConfluentCloudPlugin(sleep=_no_sleep)
        runtime = TenantRuntime(kill_worker.config(sim.url), plugin, other, clock=sim.clock.now)
        try:
            await runtime.start()
            metrics = plugin.get_metrics_source()
            for e in stored:
                metric, label, group_by = e.query.split("|")
                query = MetricQuery("k", metric, label, group_by)
                table = await metrics.fetch(query, [e.resource_id], e.day, e.day + DAY)
                assert dict(table.get((e.day, e.resource_id), {})) == dict(e.values)
        finally:
            await runtime.aclose()
