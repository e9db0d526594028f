"""Run one TenantRuntime over many dates (started as a subprocess by the crash tests).

Usage: python crash_worker.py DB_PATH PLUGINS_DIR

Prints ``ready`` once the plugin is loaded and storage is open, ``commit DATE`` as
each date's commit begins (so the parent can kill it mid-commit), and ``done`` at the end.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import structlog

from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import TenantConfig
from chargeback.core.plugin.registry import PluginRegistry
from chargeback.core.storage.backend import DateState
from chargeback.core.storage.sqlite import SQLiteBackend


class ChattySQLiteBackend(SQLiteBackend):
    """SQLiteBackend that announces each date commit on stdout."""

    async def commit_date(self, tenant_id: str, day: dt.date, **kwargs: Any) -> DateState:
        """Print ``commit DATE``, then commit."""
        print(f"commit {day}", flush=True)
        return await super().commit_date(tenant_id, day, **kwargs)


NOW = dt.datetime(2026, 3, 10, 6, 0, tzinfo=dt.UTC)
CONFIG = TenantConfig(
    name="crash",
    ecosystem="example",
    plugin_settings={"clusters": 4, "lines_per_cluster": 8, "service_accounts": 8},
    lookback_days=60,
    cutoff_days=2,
    recalc_days=2,
)


async def main(db_path: str, plugins_dir: str) -> None:
    """Load the plugin, open storage, signal readiness, run once."""
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    registry = PluginRegistry.discover(Path(plugins_dir), builtin_package=None)
    storage = ChattySQLiteBackend(db_path)
    await storage.open()
    runtime = TenantRuntime(CONFIG, registry.create("example"), storage, clock=lambda: NOW)
    await runtime.start()
    print("ready", flush=True)
    summary = await runtime.run("crash-test")
    await runtime.aclose()
    await storage.close()
    print("done" if summary.error is None else f"failed {summary.error}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
