"""The ccloud_billing table, plugin discovery and the plugin's wiring."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from chargeback.core.models import BillingLineItem
from chargeback.core.plugin.protocols import (
    CostAllocator,
    CostInput,
    EcosystemPlugin,
    MetricsSource,
    StorageModule,
)
from chargeback.core.plugin.registry import PluginRegistry
from chargeback.core.sources import PrometheusSource
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin, register
from chargeback.plugins.confluent_cloud.metrics import MetricsApiSource
from chargeback.plugins.confluent_cloud.storage import CCloudStorageModule

DAY = dt.date(2026, 3, 1)


def line(line_id: str, env: str | None, amount: int = 5) -> BillingLineItem:
    return BillingLineItem(
        line_id, DAY, "KAFKA_STORAGE", "KAFKA", amount, resource_id="lkc-1", env_id=env,
        quantity=Decimal("1.50"), unit="GB", unit_price=Decimal("0.10"),
        original_amount=amount, discount_amount=0,
        attributes={"network_access_type": "INTERNET", "tier_dimensions": '{"tier": "1"}'},
    )  # fmt: skip


class TestStorageModule:
    async def test_rows_land_in_ccloud_billing_with_env_in_the_key(self, tmp_path: Path) -> None:
        """A date's commit stores one ccloud_billing row per line; env '' when null."""
        module = CCloudStorageModule()
        lines = [line("a", "env-1"), line("c", "env-2"), line("b", None, -3)]
        async with SQLiteBackend(tmp_path / "db.sqlite") as storage:
            await storage.register_modules([module])
            await storage.commit_date(
                "t", DAY, lines=lines, rows=[],
                plugin_rows=module.billing_rows("t", DAY, lines),
                billing_fingerprint="b", settings_fingerprint="s", inventory_fingerprint="i",
                calculated_at=dt.datetime(2026, 3, 5, tzinfo=dt.UTC),
            )  # fmt: skip
        with sqlite3.connect(tmp_path / "db.sqlite") as conn:
            got = conn.execute(
                "SELECT env_id, line_id, price, quantity, amount, tier_dimensions, "
                "network_access_type FROM ccloud_billing ORDER BY env_id, line_id"
            ).fetchall()
        assert got == [
            ("", "b", "0.10", "1.50", -3, '{"tier": "1"}', "INTERNET"),
            ("env-1", "a", "0.10", "1.50", 5, '{"tier": "1"}', "INTERNET"),
            ("env-2", "c", "0.10", "1.50", 5, '{"tier": "1"}', "INTERNET"),
        ]

    def test_protocol(self) -> None:
        """The module satisfies StorageModule with the confluent_cloud namespace."""
        module = CCloudStorageModule()
        assert isinstance(module, StorageModule)
        assert module.namespace == "confluent_cloud"


class TestPlugin:
    def test_discovered_by_the_registry(self) -> None:
        """The built-in plugin is found by scanning chargeback.plugins."""
        registry = PluginRegistry.discover()
        assert "confluent_cloud" in registry.names()
        assert isinstance(registry.create("confluent_cloud"), ConfluentCloudPlugin)

    def test_register_and_components(self) -> None:
        """register() gives the name and a factory; components satisfy the protocols."""
        name, factory = register()
        plugin = factory()
        assert name == "confluent_cloud"
        assert isinstance(plugin, EcosystemPlugin)
        plugin.initialize({"api_key": "K", "api_secret": "S"})
        assert isinstance(plugin.get_cost_input(), CostInput)
        assert isinstance(plugin.get_metrics_source(), MetricsApiSource)
        assert isinstance(plugin.get_metrics_source(), MetricsSource)
        assert isinstance(plugin.get_fallback_allocator(), CostAllocator)

    def test_prometheus_source_selectable(self) -> None:
        """metrics.source prometheus selects the Prometheus source."""
        plugin = ConfluentCloudPlugin()
        plugin.initialize(
            {"api_key": "K", "api_secret": "S",
             "metrics": {"source": "prometheus", "prometheus": {"url": "http://p"}}}
        )  # fmt: skip
        assert isinstance(plugin.get_metrics_source(), PrometheusSource)

    def test_invalid_settings_raise_validation_error(self) -> None:
        """initialize validates on its first line: bad settings raise ValidationError."""
        with pytest.raises(ValidationError):
            ConfluentCloudPlugin().initialize({"api_key": "K"})

    async def test_close_is_idempotent(self) -> None:
        """close() may be called twice."""
        plugin = ConfluentCloudPlugin()
        plugin.initialize({"api_key": "K", "api_secret": "S"})
        await plugin.close()
        await plugin.close()
