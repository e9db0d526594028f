"""The README's reference tables match the code: every setting, default and metric."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from chargeback.core.emitters.prometheus import PrometheusEmitter
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.plugins.confluent_cloud.config import CCloudSettings
from chargeback.service.metrics import ServiceMetrics
from chargeback.settings import AppSettings, EmitterSettings, TenantSettings

DOC = Path(__file__).resolve().parents[3] / "README.md"
_ROW = re.compile(r"^\| (`[^|]+`(?: / `[^|]+`)*) \| ([^|]*) \|", re.M)


def _documented() -> dict[str, str]:
    """Map every backticked name in a table's first column to its second column."""
    rows: dict[str, str] = {}
    for names, second in _ROW.findall(DOC.read_text()):
        for name in re.findall(r"`([^`]+)`", names):
            rows[name] = second.strip()
    return rows


def _leaves(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Dotted path -> default of every field, descending into nested settings sections."""
    found: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        path = prefix + name
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.update(_leaves(annotation, path + "."))
        elif info.default is PydanticUndefined and info.default_factory is None:
            found[path] = PydanticUndefined
        else:
            found[path] = info.get_default(call_default_factory=True)
    return found


def _render(value: Any) -> str | None:
    """How the docs write a scalar default (None for values not compared)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return f"./{value}" if not value.is_absolute() else str(value)
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _check(leaves: dict[str, Any], documented: dict[str, str]) -> None:
    missing = sorted(set(leaves) - set(documented))
    assert not missing, f"settings missing from {DOC.name}: {missing}"
    for path, default in leaves.items():
        cell = documented[path]
        if default is PydanticUndefined:
            assert "required" in cell, f"{path}: documented default {cell!r}, but it is required"
            continue
        expected = _render(default)
        if expected is not None:
            assert cell == f"`{expected}`", f"{path}: documented {cell!r}, code has {expected!r}"


class TestSettingsReference:
    """Every setting is documented with the default the code has."""

    def test_app_settings(self) -> None:
        """Each section's fields appear with their defaults."""
        leaves = _leaves(AppSettings)
        leaves.pop("emitters")  # documented as a list below the table
        leaves.pop("tenants")
        _check(leaves, _documented())

    def test_emitter_and_tenant_fields(self) -> None:
        """An emitter entry's and a tenant's keys appear with their defaults."""
        documented = _documented()
        emitter = {f"emitters[].{k}": v for k, v in _leaves(EmitterSettings).items()}
        emitter["emitters[].params"] = "{}"
        documented["emitters[].params"] = "`{}`"
        tenant = {f"tenants.<name>.{k}": v for k, v in _leaves(TenantSettings).items()}
        for inherited in ("schedule", "lookback_days", "cutoff_days", "recalc_days"):
            assert documented[f"tenants.<name>.{inherited}"] == f"`scheduling.{inherited}`"
            tenant.pop(f"tenants.<name>.{inherited}")
        tenant.pop("tenants.<name>.plugin_settings")
        _check({**emitter, **tenant}, documented)

    def test_confluent_plugin_settings(self) -> None:
        """Every Confluent Cloud plugin setting appears with its default."""
        leaves = _leaves(CCloudSettings)
        for engine_key in ("allocator_overrides", "identity_resolver_overrides"):
            leaves.pop(engine_key)  # documented in prose, for every ecosystem
            assert f"`{engine_key}`" in DOC.read_text()
        _check(leaves, _documented())


class TestMetricsReference:
    """The metrics table lists exactly what the daemon's registry exports, with types."""

    @pytest.fixture
    def exported(self, tmp_path: Path) -> dict[str, str]:
        """Exported name (counters with ``_total``) -> type, from the real metric objects."""
        registry = CollectorRegistry()
        ServiceMetrics(registry)
        registry.register(PrometheusEmitter(SQLiteBackend(tmp_path / "unused.db")))
        names: dict[str, str] = {}
        for family in registry.collect():
            suffix = "_total" if family.type == "counter" else ""
            names[family.name + suffix] = family.type
        return names

    def test_every_metric_is_documented_with_its_type(self, exported: dict[str, str]) -> None:
        """Each exported metric has a row with its type; no row names a missing metric."""
        documented = {k: v for k, v in _documented().items() if k.startswith("chargeback_")}
        assert set(documented) == set(exported)
        for name, kind in exported.items():
            assert documented[name] == kind, name
