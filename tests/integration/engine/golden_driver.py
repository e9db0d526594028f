"""Backfill one tenant against a running ccloud_sim and print a digest of the result.

Run as a script by ``test_backfill_golden.py`` under the *pre-reshape* engine (the
tree of commit ``BASELINE`` extracted from git, put first on ``PYTHONPATH``), so it
must keep to that engine's API: ``TenantRuntime(config, plugin, storage, clock=)``,
``SQLiteBackend(path)``, ``ConfluentCloudPlugin(sleep=)``. The current engine is
driven by the test itself, through whatever its API is now.

Usage: ``python golden_driver.py DB SIM_URL LOOKBACK NOW_ISO`` -> one JSON line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

TENANT = "golden"


def plugin_settings(sim_url: str) -> dict[str, Any]:
    """The tenant's plugin settings: the sim on every URL, no client rate limit."""
    return {
        "api_key": "SIMKEY",
        "api_secret": "SIMSECRET",
        "base_url": sim_url,
        "telemetry_url": sim_url,
        "flink_url": sim_url,
        "http": {"requests_per_second": None},
    }


async def digest(
    read_rows: Callable[[str, dt.date], Awaitable[Sequence[Sequence[object]]]],
    reconcile: Callable[[str, dt.date, dt.date], Awaitable[Iterable[Any]]],
    first: dt.date,
    last: dt.date,
) -> dict[str, Any]:
    """Hash every row of ``first..last`` (all fields, in stored order) and the sums."""
    rows = hashlib.sha256()
    count = 0
    day = first
    while day <= last:
        for row in await read_rows(TENANT, day):
            rows.update(repr(tuple(row)[:12]).encode())
            count += 1
        day += dt.timedelta(days=1)
    sums = sorted(
        (r.day.isoformat(), r.product_type, r.billed, r.allocated, r.lines)
        for r in await reconcile(TENANT, first, last + dt.timedelta(days=1))
    )
    return {
        "rows": count,
        "rows_sha256": rows.hexdigest(),
        "sums_sha256": hashlib.sha256(repr(sums).encode()).hexdigest(),
    }


async def _main(db: Path, sim_url: str, lookback: int, now: dt.datetime) -> dict[str, Any]:
    from chargeback.core.engine.orchestrator import TenantRuntime  # noqa: PLC0415
    from chargeback.core.engine.types import TenantConfig  # noqa: PLC0415
    from chargeback.core.storage.sqlite import SQLiteBackend  # noqa: PLC0415
    from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin  # noqa: PLC0415

    async def no_sleep(_: float) -> None:
        return None

    storage = SQLiteBackend(db)
    await storage.open()
    config = TenantConfig(
        name=TENANT,
        ecosystem="confluent_cloud",
        plugin_settings=plugin_settings(sim_url),
        lookback_days=lookback,
        cutoff_days=3,
    )
    runtime = TenantRuntime(
        config, ConfluentCloudPlugin(sleep=no_sleep), storage, clock=lambda: now
    )
    try:
        summary = await runtime.run()
        if str(summary.status) != "success":
            raise SystemExit(f"run failed: {summary.error}")
        first = now.date() - dt.timedelta(days=lookback)
        return await digest(storage.read_rows, storage.reconcile, first, now.date())
    finally:
        await runtime.aclose()
        await storage.close()


if __name__ == "__main__":
    db_arg, url_arg, lookback_arg, now_arg = sys.argv[1:5]
    result = asyncio.run(
        _main(Path(db_arg), url_arg, int(lookback_arg), dt.datetime.fromisoformat(now_arg))
    )
    print(json.dumps(result, sort_keys=True))
