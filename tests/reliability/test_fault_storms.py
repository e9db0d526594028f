"""Sim faults far above the plugin's own tests: same result as a clean run, or a clean failure."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from starlette.applications import Starlette
from tests.reliability.conftest import HarnessFactory, SimHarness, check_db, csv_files, dump_db

from ccloud_sim import Faults
from chargeback.core.engine.types import RunStatus

STORMS: dict[str, Faults] = {
    "uniform_45pct": Faults.uniform(0.45, seed=3),
    "429_storm": Faults(seed=4, rate_429=0.6, retry_after=0),
    "5xx_heavy": Faults(seed=5, rate_500=0.25, rate_503=0.3),
    "drops_cuts_truncation": Faults(seed=6, rate_drop=0.2, rate_cut_body=0.2, rate_truncate=0.5),
    "slow_and_mixed": Faults(
        seed=7,
        rate_slow=0.3,
        slow_seconds=0.002,
        rate_429=0.15,
        rate_503=0.15,
        rate_drop=0.1,
        rate_truncate=0.3,
        retry_after=0,
    ),
    "too_much_for_the_budget": Faults(seed=8, rate_503=0.75),
}


class BurstTransport(httpx.AsyncBaseTransport):
    """Into the sim; every request numbered in ``[start, start + length)`` meets an outage."""

    def __init__(self, app: Starlette, start: int, length: int) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.app = app
        self.start, self.length = start, length
        self.count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.app.state.faults.outage = self.start <= self.count < self.start + self.length
        self.count += 1
        return await self.inner.handle_async_request(request)


async def clean_result(make_harness: HarnessFactory) -> SimHarness:
    """A clean run's harness (its database and CSV files are the reference)."""
    h = make_harness(name="clean")
    summary = await (await h.runtime()).run()
    assert summary.status is RunStatus.SUCCESS, summary.error
    return h


async def then_faults_off(h: SimHarness, failed_error: str) -> None:
    """After a failed run: nothing half-written, error recorded; a faultless run completes."""
    assert "failed after" in failed_error or "returned" in failed_error, failed_error
    check_db(h.db_path)
    assert dump_db(h.db_path)["date_state"] == []  # every fetch precedes every commit
    conn = sqlite3.connect(h.db_path)
    try:
        runs = conn.execute("SELECT status, error FROM runs").fetchall()
    finally:
        conn.close()
    assert runs == [("failed", failed_error)]
    h.app.state.faults.update(
        {"rate_429": 0, "rate_500": 0, "rate_503": 0, "rate_drop": 0, "rate_slow": 0,
         "rate_truncate": 0, "rate_cut_body": 0, "outage": False}
    )  # fmt: skip
    later = await (await h.runtime()).run()
    assert later.status is RunStatus.SUCCESS, later.error


class TestFaultStorms:
    @pytest.mark.parametrize("storm", sorted(STORMS))
    async def test_storm_gives_the_clean_result_or_fails_cleanly(
        self, storm: str, make_harness: HarnessFactory
    ) -> None:
        """Under a fault storm the run equals a clean run, or fails cleanly and recovers."""
        clean = await clean_result(make_harness)
        h = make_harness(name=storm, faults=STORMS[storm])
        summary = await (await h.runtime()).run()
        injected = h.app.state.stats.as_dict()["faults"]
        assert sum(injected.values()) > 10, injected
        if summary.status is not RunStatus.SUCCESS:
            assert summary.status is RunStatus.FAILED
            assert summary.error is not None
            await then_faults_off(h, summary.error)
        check_db(h.db_path)
        assert dump_db(h.db_path) == dump_db(clean.db_path)
        assert csv_files(h.csv_dir) == csv_files(clean.csv_dir)
        if storm == "too_much_for_the_budget":
            assert summary.status is RunStatus.FAILED  # the path above was really taken

    @pytest.mark.parametrize(("start", "length"), [(3, 5), (12, 8), (0, 200), (15, 400)])
    async def test_5xx_burst(self, start: int, length: int, make_harness: HarnessFactory) -> None:
        """A burst of consecutive 503s: ridden out by retries, or a clean failure then recovery."""
        clean = await clean_result(make_harness)
        h = make_harness(name=f"burst{start}-{length}")
        transport = BurstTransport(h.app, start, length)
        summary = await (await h.runtime(transport=transport)).run()
        assert transport.count > start + 8, transport.count  # the burst was reached
        if length <= 8:
            assert summary.status is RunStatus.SUCCESS, summary.error
        else:
            assert summary.status is RunStatus.FAILED
            assert summary.error is not None
            assert "503" in summary.error, summary.error
            await then_faults_off(h, summary.error)
        assert dump_db(h.db_path) == dump_db(clean.db_path)
        assert csv_files(h.csv_dir) == csv_files(clean.csv_dir)
