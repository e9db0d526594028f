"""A real backfill of a small ccloud_sim organization with both FOCUS emitters attached.

The backfill runs once per module (a TenantRuntime of the Confluent Cloud plugin against
the sim over HTTP transport, a real SQLite file, the ``focus`` emitters of versions 1.2
and 1.3 writing real files); the tests read what it wrote.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccloud_sim import SimClock, create_app
from chargeback.core.emitters import registry
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import NamedEmitter, RunStatus, TenantConfig
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin

TENANT = "acme"
EARLY = dt.datetime(2026, 11, 10, 12, tzinfo=dt.UTC)
"""The first run: 2026-11-07, its newest day, has only 60 of the sim's 72 settle hours."""
NOW = dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC)
"""Later runs: October is closed, November's tail open; 2026-11-07 closed with its early bill."""
RESTATED = dt.date(2026, 11, 7)


@dataclass(frozen=True)
class Backfill:
    """What the module's backfill left: the database, the output roots, its window."""

    db_path: Path
    out: dict[str, Path]
    first: dt.date
    last: dt.date
    sim_clock: SimClock


def _config(lookback_days: int, cutoff_days: int) -> TenantConfig:
    return TenantConfig(
        name=TENANT,
        ecosystem="confluent_cloud",
        plugin_settings={
            "api_key": "SIMKEY",
            "api_secret": "SIMSECRET",
            "base_url": "http://sim",
            "telemetry_url": "http://sim",
            "flink_url": "http://sim",
            "http": {"requests_per_second": None, "max_retries": 8},
        },
        lookback_days=lookback_days,
        cutoff_days=cutoff_days,
        recalc_days=2,
    )


def params(key: str) -> dict[str, str]:
    """The emitter params of an output key: ``1.3`` is CSV, ``1.3/parquet`` Parquet."""
    version, _, form = key.partition("/")
    return {"version": version, "format": form or "csv"}


async def run_backfill(
    db_path: Path,
    out: dict[str, Path],
    app: Any,
    clock: SimClock,
    *,
    lookback_days: int,
    rerun: dt.date | None = None,
) -> None:
    """One run of the tenant with a ``focus`` emitter per key of ``out`` (after an
    operator's rerun request for ``rerun``, if given)."""
    storage = SQLiteBackend(db_path)
    await storage.open()
    try:
        if rerun is not None:
            await storage.request_rerun(TENANT, rerun, rerun, clock.now())
        emitters = [
            NamedEmitter(
                f"focus-{key}",
                registry.create(
                    "focus",
                    {"output_dir": str(path), **params(key)},
                    storage_backend=storage,
                ),
            )
            for key, path in out.items()
        ]

        async def no_sleep(_: float) -> None:
            return None

        plugin = ConfluentCloudPlugin(transport=httpx.ASGITransport(app=app), sleep=no_sleep)
        runtime = TenantRuntime(
            _config(lookback_days, 3), plugin, storage, emitters, clock=clock.now
        )
        try:
            summary = await runtime.run()
        finally:
            await runtime.aclose()
        assert summary.status is RunStatus.SUCCESS, summary.error
        assert summary.emit_failures == 0, summary
    finally:
        await storage.close()


async def three_runs(db: Path, out: dict[str, Path], app: Any, clock: SimClock) -> None:
    """The early run, the late run (which closes 2026-11-07 with its early bill), and a
    rerun of 2026-11-07 that finds the settled bill: a restatement of a closed day."""
    await run_backfill(db, out, app, clock, lookback_days=30)
    clock.set(NOW)
    await run_backfill(db, out, app, clock, lookback_days=40)
    await run_backfill(db, out, app, clock, lookback_days=40, rerun=RESTATED)


@pytest.fixture(scope="module")
def backfill(tmp_path_factory: pytest.TempPathFactory) -> Backfill:
    """A small organization from 2026-10-11 to 2026-11-21, both versions in CSV and in
    Parquet, three runs."""
    root = tmp_path_factory.mktemp("focus-backfill")
    clock = SimClock(EARLY)
    app = create_app(seed=7, scale="small", clock=clock, metrics_retention_days=None)
    out = {
        key: root / f"focus-{key.replace('/', '-')}"
        for key in ("1.2", "1.3", "1.2/parquet", "1.3/parquet")
    }
    lookback = 44
    asyncio.run(three_runs(root / "db.sqlite", out, app, clock))
    today = NOW.date()
    return Backfill(
        root / "db.sqlite",
        out,
        today - dt.timedelta(days=lookback),
        today - dt.timedelta(days=3),
        clock,
    )
