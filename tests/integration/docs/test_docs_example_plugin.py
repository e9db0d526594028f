"""The README's worked example plugin (docs/example_plugin) loads and runs end to end."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import RunStatus, TenantConfig
from chargeback.core.money import to_minor
from chargeback.core.plugin.registry import PluginRegistry
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.errors import ConfigError

DOCS = Path(__file__).resolve().parents[3] / "docs"
NOW = dt.datetime(2026, 3, 15, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
    """An open SQLite database in a temporary directory."""
    backend = SQLiteBackend(tmp_path / "chargeback.db")
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


def _tenant(**plugin_settings: object) -> TenantConfig:
    return TenantConfig(
        name="platform",
        ecosystem="shared_platform",
        plugin_settings=plugin_settings,
        lookback_days=5,
        cutoff_days=1,
        recalc_days=0,
    )


class TestExamplePlugin:
    """What the "Writing a plugin" section promises."""

    def test_discovered_from_a_plugins_path(self) -> None:
        """Scanning docs/ as a plugins_path finds ``shared_platform`` with no load error."""
        registry = PluginRegistry.discover(DOCS)
        assert "shared_platform" in registry.names()
        assert "example_plugin" not in registry.errors
        assert registry.create("shared_platform").name == "shared_platform"

    async def test_backfill_splits_each_day_by_team_weights(self, storage: SQLiteBackend) -> None:
        """A run charges every day's line 3:1 to payments and search, summing exactly."""
        plugin = PluginRegistry.discover(DOCS).create("shared_platform")
        runtime = TenantRuntime(
            _tenant(daily_cost="100.000000001", teams={"payments": 3, "search": 1}),
            plugin,
            storage,
            clock=lambda: NOW,
        )
        try:
            summary = await runtime.run(trigger="test")
        finally:
            await runtime.aclose()
        assert summary.status is RunStatus.SUCCESS, summary.error
        assert summary.dates_calculated == 5
        line = to_minor("100.000000001")
        for offset in range(1, 6):
            day = NOW.date() - dt.timedelta(days=offset)
            rows = await storage.read_rows("platform", day)
            by_team = {r.identity_id: r.amount for r in rows}
            assert set(by_team) == {"payments", "search"}
            assert sum(by_team.values()) == line
            assert abs(by_team["payments"] - 3 * by_team["search"]) <= 3
            assert {r.rule for r in rows} == {"team_weights"}
        reconcile = await storage.reconcile(
            "platform", NOW.date() - dt.timedelta(days=5), NOW.date()
        )
        assert reconcile
        assert all(r.difference == 0 for r in reconcile)

    async def test_bad_settings_name_the_field(self, storage: SQLiteBackend) -> None:
        """A negative daily_cost stops the tenant with a ConfigError naming the field."""
        plugin = PluginRegistry.discover(DOCS).create("shared_platform")
        runtime = TenantRuntime(_tenant(daily_cost="-1", teams={"a": 1}), plugin, storage)
        with pytest.raises(ConfigError) as info:
            await runtime.start()
        assert "daily_cost" in str(info.value)
        await runtime.aclose()
