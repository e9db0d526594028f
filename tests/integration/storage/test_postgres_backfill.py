"""End to end on PostgreSQL: a sim backfill stores what SQLite stores; migrate and copy-db.

One ccloud_sim (out of process, clock frozen) is backfilled by the current engine into
a SQLite file and into a PostgreSQL database; the digest of every row of every date (all
fields, stored order) and of the reconcile sums must be the same. Then ``chargeback
copy-db`` moves the SQLite file into an empty PostgreSQL database, verified through the
protocol, and a second backfill on the copy recalculates nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.storage_targets import POSTGRESQL, SQLITE
from tests.support.sim import serve_sim

from chargeback.cli import main
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import RunStatus, TenantConfig
from chargeback.core.storage.backend import StorageBackend
from chargeback.core.storage.factory import open_backend
from chargeback.core.storage.postgres.schema import CORE_MIGRATIONS
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin
from chargeback.settings import StorageSettings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NOW = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)
LOOKBACK = 10
_DRIVER = Path(__file__).parents[1] / "engine" / "golden_driver.py"
_spec = importlib.util.spec_from_file_location("golden_driver", _DRIVER)
assert _spec is not None
assert _spec.loader is not None
golden_driver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden_driver)
TENANT = golden_driver.TENANT


@pytest.fixture(scope="module")
def sim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A small ccloud_sim on a free port, clock frozen at :data:`NOW`."""
    log_path = tmp_path_factory.mktemp("sim") / "sim.log"
    with serve_sim(log_path, scale="small", seed=5, now=NOW.isoformat()) as url:
        yield url


async def _backfill(storage: StorageBackend, url: str) -> dict[str, int]:
    async def no_sleep(_: float) -> None:
        return None

    config = TenantConfig(
        name=TENANT,
        ecosystem="confluent_cloud",
        # The sim keeps every day's usage (--metrics-retention-days unlimited).
        plugin_settings={**golden_driver.plugin_settings(url), "metrics": {"retention_days": None}},
        lookback_days=LOOKBACK,
        cutoff_days=3,
    )
    runtime = TenantRuntime(
        config, ConfluentCloudPlugin(sleep=no_sleep), storage, clock=lambda: NOW
    )
    try:
        summary = await runtime.run()
        assert summary.status is RunStatus.SUCCESS, summary.error
        return summary.counts()
    finally:
        await runtime.aclose()


async def _digest(storage: StorageBackend) -> dict[str, Any]:
    first = NOW.date() - dt.timedelta(days=LOOKBACK)
    result: dict[str, Any] = await golden_driver.digest(
        storage.read_rows, storage.reconcile, first, NOW.date()
    )
    return result


async def _calc_seqs(storage: StorageBackend) -> dict[dt.date, int]:
    states = await storage.get_date_states(TENANT, dt.date(2000, 1, 1), dt.date(2100, 1, 1))
    return {day: s.calc_seq for day, s in states.items()}


class TestPostgresEndToEnd:
    async def test_a_backfill_on_postgresql_stores_what_sqlite_stores(
        self, sim_url: str, tmp_path: Path
    ) -> None:
        """Same sim, same engine: every row and every sum the same on both backends."""
        digests = {}
        for target in (SQLITE, POSTGRESQL):
            async with open_backend(target.make(tmp_path / target.name)) as storage:
                await _backfill(storage, sim_url)
                digests[target.name] = await _digest(storage)
        assert digests["sqlite"]["rows"] > 1000
        assert digests["postgresql"] == digests["sqlite"]

    async def test_copy_db_moves_sqlite_without_recomputing(
        self, sim_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """copy-db copies, verifies by reading both back, and the copy needs no new work:
        a second run on it commits no date again (every calc_seq stays)."""
        sqlite_settings = SQLITE.make(tmp_path / "sqlite")
        async with open_backend(sqlite_settings) as storage:
            await _backfill(storage, sim_url)
            expected = await _digest(storage)
            seqs = await _calc_seqs(storage)
        pg_settings = POSTGRESQL.make(tmp_path / "pg")
        assert pg_settings.url is not None
        code = await asyncio.to_thread(
            main,
            ["copy-db", "--from", f"sqlite:///{sqlite_settings.path}", "--to", pg_settings.url],
        )
        out = capsys.readouterr().out
        assert code == 0, out
        assert "verified: 1 tenants read back the same" in out
        assert "rows of chargeback_rows" in out
        assert "rows of ccloud_billing" in out
        async with open_backend(pg_settings) as storage:
            assert await _digest(storage) == expected
            await _backfill(storage, sim_url)
            assert await _calc_seqs(storage) == seqs
            assert await _digest(storage) == expected
        # A second copy into the now non-empty database is refused; nothing is overwritten.
        code = await asyncio.to_thread(
            main,
            ["copy-db", "--from", f"sqlite:///{sqlite_settings.path}", "--to", pg_settings.url],
        )
        assert code == 1
        assert "already holds chargeback data" in capsys.readouterr().err

    def test_copy_db_refuses_other_directions(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Only SQLite -> PostgreSQL is a copy-db; anything else is a usage error (exit 2)."""
        code = main(["copy-db", "--from", "postgresql://a/b", "--to", "sqlite:///x.db"])
        assert code == 2
        assert "copies a SQLite file into PostgreSQL" in capsys.readouterr().err
        code = main(
            ["copy-db", "--from", f"sqlite:///{tmp_path}/none.db", "--to", "postgresql://a/b"]
        )
        assert code == 2
        assert "there is no SQLite file" in capsys.readouterr().err

    def test_migrate_applies_core_and_plugin_migrations(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """chargeback migrate creates the whole schema, plugin tables included, and exits."""
        pg_settings: StorageSettings = POSTGRESQL.make(tmp_path)
        config = tmp_path / "settings.yaml"
        config.write_text(
            f"storage: {{url: '{pg_settings.url}'}}\n"
            "tenants:\n  acme:\n    ecosystem: confluent_cloud\n"
            "    plugin_settings: {api_key: K, api_secret: S, base_url: 'http://127.0.0.1:9'}\n",
            encoding="utf-8",
        )
        assert main(["migrate", "--config", str(config)]) == 0
        assert "is current: core, confluent_cloud" in capsys.readouterr().out
        rows = POSTGRESQL.peek(
            pg_settings, "SELECT namespace, version FROM schema_migrations ORDER BY 1, 2", []
        )
        core = [("core", m.version) for m in CORE_MIGRATIONS]
        assert rows == [("confluent_cloud", 1), *core, ("leases", 1)]
        assert main(["migrate", "--config", str(config)]) == 0  # idempotent
