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
NOW = dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC)
"""Late in November: the backfill covers closed days of October and November's open tail."""


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


async def run_backfill(
    db_path: Path, out: dict[str, Path], app: Any, clock: SimClock, *, lookback_days: int
) -> None:
    """One run of the tenant with a ``focus`` emitter per version in ``out``."""
    storage = SQLiteBackend(db_path)
    await storage.open()
    try:
        emitters = [
            NamedEmitter(
                f"focus-{version}",
                registry.create(
                    "focus",
                    {"output_dir": str(path), "version": version},
                    storage_backend=storage,
                ),
            )
            for version, path in out.items()
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


@pytest.fixture(scope="module")
def backfill(tmp_path_factory: pytest.TempPathFactory) -> Backfill:
    """40 days of a small organization, both versions, one run."""
    root = tmp_path_factory.mktemp("focus-backfill")
    clock = SimClock(NOW)
    app = create_app(seed=7, scale="small", clock=clock, metrics_retention_days=None)
    out = {"1.2": root / "focus-1.2", "1.3": root / "focus-1.3"}
    lookback = 40
    asyncio.run(run_backfill(root / "db.sqlite", out, app, clock, lookback_days=lookback))
    today = NOW.date()
    return Backfill(
        root / "db.sqlite",
        out,
        today - dt.timedelta(days=lookback),
        today - dt.timedelta(days=3),
        clock,
    )
