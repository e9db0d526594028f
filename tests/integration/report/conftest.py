"""Fixtures of the showback report tests: one real database over two months of ccloud_sim.

``report_db_master`` runs the Confluent Cloud plugin in a real TenantRuntime against the
sim (over ASGI) with ownership attribution into a SQLite file, once per session: the
calculated days are 2026-02-16 .. 2026-03-17 (the end of February and most of March), so
a March report has a month before to compare with. Every test gets a copy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from ccloud_sim import SimClock, create_app
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import RunStatus, TenantConfig
from chargeback.core.ownership import OwnershipSettings, compile_rules
from chargeback.core.ownership.attributor import Attributor
from chargeback.core.storage.ownership import ownership_store
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin

NOW = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)
TENANT = "acme"
LOOKBACK_DAYS = 32
CUTOFF_DAYS = 3
FIRST_DAY = NOW.date() - dt.timedelta(days=LOOKBACK_DAYS)
LAST_DAY = NOW.date() - dt.timedelta(days=CUTOFF_DAYS)
"""The calculated days: FIRST_DAY..LAST_DAY, both included."""

OWNERSHIP = {
    "rules": [
        {"name": "by-name", "team": "{team}",
         "match": {"identity_name": "^(?:svc-)?(?P<team>[a-z]+)-"}},
    ]
}  # fmt: skip
"""Teams from identity names (``svc-payments-x`` -> payments); the rest is UNASSIGNED."""


async def _compute(path: Path) -> None:
    clock = SimClock(NOW)
    app = create_app(seed=11, scale="small", clock=clock, metrics_retention_days=None)

    async def no_sleep(_: float) -> None:
        return None

    plugin = ConfluentCloudPlugin(transport=httpx.ASGITransport(app=app), sleep=no_sleep)
    config = TenantConfig(
        name=TENANT,
        ecosystem="confluent_cloud",
        plugin_settings={
            "api_key": "SIMKEY", "api_secret": "SIMSECRET", "base_url": "http://sim",
            "telemetry_url": "http://sim", "flink_url": "http://sim",
            "http": {"requests_per_second": None, "max_retries": 8},
            "metrics": {"retention_days": None},  # the sim keeps every day's usage
        },
        lookback_days=LOOKBACK_DAYS,
        cutoff_days=CUTOFF_DAYS,
    )  # fmt: skip
    async with SQLiteBackend(path) as storage:
        attributor = Attributor(
            TENANT, compile_rules(OwnershipSettings.model_validate(OWNERSHIP), TENANT),
            ownership_store(storage), storage, clock=clock.now,
        )  # fmt: skip
        runtime = TenantRuntime(config, plugin, storage, clock=clock.now, attributor=attributor)
        try:
            summary = await runtime.run()
        finally:
            await runtime.aclose()
        assert summary.status is RunStatus.SUCCESS, summary


@pytest.fixture(scope="session")
def report_db_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's database, computed once (in a thread: no test's loop is running)."""
    path = tmp_path_factory.mktemp("report-db") / "chargeback.db"
    errors: list[BaseException] = []

    def work() -> None:
        try:
            asyncio.run(_compute(path))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return path


@pytest.fixture
def report_db(report_db_master: Path, tmp_path: Path) -> Path:
    """A private copy of the session's database (SQLite's backup: WAL content included)."""
    target = tmp_path / "chargeback.db"
    with closing(sqlite3.connect(report_db_master)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return target
