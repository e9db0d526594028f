"""One Confluent Cloud backfill in a subprocess (started and SIGKILLed by the kill tests).

Usage: python backfill_worker.py DB_PATH CSV_DIR SCALE LOOKBACK_DAYS [WRITER_MIN_ROWS]

WRITER_MIN_ROWS is the backend's ``writer_process_min_rows`` (``none``: every commit
in this process, the default; ``0``: every commit through the writer child process).

A real TenantRuntime with the ConfluentCloudPlugin talks to ccloud_sim in this process
(httpx.ASGITransport, frozen clock) and writes a real SQLite file and CSV files.
Prints ``ready`` once storage is open and the plugin started, ``commit DATE`` as
each date's commit begins, and ``done`` (or ``failed ERROR``) at the end.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from typing import Any

import httpx
import structlog

from ccloud_sim import SimClock, create_app
from chargeback.core.emitters.csv import make_csv_emitter
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import NamedEmitter, TenantConfig
from chargeback.core.storage.backend import DateState
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin

NOW = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)


class ChattySQLiteBackend(SQLiteBackend):
    """SQLiteBackend that announces each date commit on stdout."""

    async def commit_date(self, tenant_id: str, day: dt.date, **kwargs: Any) -> DateState:
        """Print ``commit DATE``, then commit."""
        print(f"commit {day}", flush=True)
        return await super().commit_date(tenant_id, day, **kwargs)


async def _no_sleep(_: float) -> None:
    return None


async def main(
    db_path: str, csv_dir: str, scale: str, lookback: int, writer_min_rows: int | None
) -> int:
    """Open storage, start the tenant, signal readiness, run once."""
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    app = create_app(seed=5, scale=scale, clock=SimClock(NOW), metrics_retention_days=None)
    storage = ChattySQLiteBackend(db_path, writer_process_min_rows=writer_min_rows)
    await storage.open()
    plugin = ConfluentCloudPlugin(transport=httpx.ASGITransport(app=app), sleep=_no_sleep)
    config = TenantConfig(
        name="rel",
        ecosystem="confluent_cloud",
        plugin_settings={
            "api_key": "SIMKEY",
            "api_secret": "SIMSECRET",
            "base_url": "http://sim",
            "telemetry_url": "http://sim",
            "flink_url": "http://sim",
            "http": {"requests_per_second": None},
            "metrics": {"retention_days": None},  # the sim keeps every day's usage
        },
        lookback_days=lookback,
        cutoff_days=3,
    )
    emitters = [NamedEmitter("csv", make_csv_emitter(csv_dir))]
    runtime = TenantRuntime(config, plugin, storage, emitters, clock=lambda: NOW)
    await runtime.start()
    print("ready", flush=True)
    summary = await runtime.run("kill-test")
    await runtime.aclose()
    await storage.close()
    print("done" if summary.error is None else f"failed {summary.error}", flush=True)
    return 0 if summary.error is None else 1


if __name__ == "__main__":
    _writer = sys.argv[5] if len(sys.argv) > 5 else "none"
    _min_rows = None if _writer == "none" else int(_writer)
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), _min_rows)))
