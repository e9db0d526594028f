"""One Confluent run against a sim URL (started as a subprocess by the ledger kill test).

Usage: python ledger_kill_worker.py DB_PATH SIM_URL NOW_ISO

Prints ``ready`` once storage is open, ``usage writing`` as each ledger write begins,
``usage stored`` once it committed, ``commit DATE`` as each date commit begins, and
``done`` at the end; the parent SIGKILLs it somewhere in between.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Sequence
from typing import Any

import structlog

from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import TenantConfig
from chargeback.core.ledger import UsageEntry
from chargeback.core.storage.backend import DateState
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin

TENANT = "acme"


def config(sim_url: str) -> TenantConfig:
    """The tenant both the worker and the parent run (7-day retention, the default)."""
    return TenantConfig(
        name=TENANT,
        ecosystem="confluent_cloud",
        plugin_settings={
            "api_key": "SIMKEY", "api_secret": "SIMSECRET",
            "base_url": sim_url, "telemetry_url": sim_url, "flink_url": sim_url,
            "http": {"requests_per_second": None},
        },
        lookback_days=8,
        cutoff_days=3,
    )  # fmt: skip


class ChattyBackend(SQLiteBackend):
    """Announces ledger writes and date commits on stdout."""

    async def write_usage(self, tenant_id: str, entries: Sequence[UsageEntry]) -> None:
        print("usage writing", flush=True)
        await super().write_usage(tenant_id, entries)
        print("usage stored", flush=True)

    async def commit_date(self, tenant_id: str, day: dt.date, **kwargs: Any) -> DateState:
        print(f"commit {day}", flush=True)
        return await super().commit_date(tenant_id, day, **kwargs)


async def _no_sleep(_: float) -> None:
    return None


async def main(db_path: str, sim_url: str, now: dt.datetime) -> None:
    """Open storage, signal readiness, run once."""
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    storage = ChattyBackend(db_path, writer_process_min_rows=None)
    await storage.open()
    plugin = ConfluentCloudPlugin(sleep=_no_sleep)
    runtime = TenantRuntime(config(sim_url), plugin, storage, clock=lambda: now)
    print("ready", flush=True)
    summary = await runtime.run("kill-test")
    await runtime.aclose()
    await storage.close()
    print("done" if summary.error is None else f"failed {summary.error}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], dt.datetime.fromisoformat(sys.argv[3])))
