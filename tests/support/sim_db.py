"""A real database computed from ccloud_sim, once per test session, and private copies.

:func:`compute_sim_db` runs the Confluent Cloud plugin in a real ``TenantRuntime``
against the sim (over ASGI, the sim's clock at ``now``) with ownership attribution into
a SQLite file, in a thread of its own (no test's event loop is running then), and fails
unless the run succeeds. :func:`copy_db` gives a test its own copy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

from ccloud_sim import SimClock, create_app
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import RunStatus, TenantConfig
from chargeback.core.ownership import OwnershipSettings, compile_rules
from chargeback.core.ownership.attributor import Attributor
from chargeback.core.storage.ownership import ownership_store
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin

__all__ = ["compute_sim_db", "copy_db"]


async def _compute(
    path: Path, now: dt.datetime, config: TenantConfig, ownership: Mapping[str, Any]
) -> None:
    clock = SimClock(now)
    app = create_app(seed=11, scale="small", clock=clock, metrics_retention_days=None)

    async def no_sleep(_: float) -> None:
        return None

    plugin = ConfluentCloudPlugin(transport=httpx.ASGITransport(app=app), sleep=no_sleep)
    async with SQLiteBackend(path) as storage:
        rules = compile_rules(OwnershipSettings.model_validate(ownership), config.name)
        attributor = Attributor(
            config.name, rules, ownership_store(storage), storage, clock=clock.now
        )
        runtime = TenantRuntime(config, plugin, storage, clock=clock.now, attributor=attributor)
        try:
            summary = await runtime.run()
        finally:
            await runtime.aclose()
        assert summary.status is RunStatus.SUCCESS, summary


def compute_sim_db(
    path: Path,
    *,
    now: dt.datetime,
    tenant: str,
    lookback_days: int,
    cutoff_days: int,
    ownership: Mapping[str, Any],
) -> Path:
    """Compute ``tenant``'s days from the small sim org (seed 11) into ``path``."""
    config = TenantConfig(
        name=tenant,
        ecosystem="confluent_cloud",
        plugin_settings={
            "api_key": "SIMKEY", "api_secret": "SIMSECRET", "base_url": "http://sim",
            "telemetry_url": "http://sim", "flink_url": "http://sim",
            "http": {"requests_per_second": None, "max_retries": 8},
            "metrics": {"retention_days": None},  # the sim keeps every day's usage
        },
        lookback_days=lookback_days,
        cutoff_days=cutoff_days,
    )  # fmt: skip
    errors: list[BaseException] = []

    def work() -> None:
        try:
            asyncio.run(_compute(path, now, config, ownership))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return path


def copy_db(master: Path, target: Path) -> Path:
    """A private copy of ``master`` at ``target`` (SQLite's backup: WAL content included)."""
    with closing(sqlite3.connect(master)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return target
