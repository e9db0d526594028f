"""Fixtures for the engine integration tests: the example plugin, a real SQLite file, a clock."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chargeback.core.emitters import registry as emitter_registry
from chargeback.core.engine.orchestrator import CHUNK_DAYS, TenantRuntime
from chargeback.core.engine.types import NamedEmitter, TenantConfig
from chargeback.core.plugin.registry import PluginRegistry
from chargeback.core.storage.sqlite import SQLiteBackend

EXAMPLE = Path(__file__).parents[2] / "fixtures" / "example_plugin"
NOW = dt.datetime(2026, 3, 10, 6, 0, tzinfo=dt.UTC)


class Clock:
    """A settable UTC clock."""

    def __init__(self, now: dt.datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def plugins_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory, not on sys.path, holding a copy of the example plugin."""
    root = tmp_path / "plugins"
    root.mkdir()
    shutil.copytree(EXAMPLE, root / "example_plugin", ignore=shutil.ignore_patterns("__pycache__"))
    yield root
    emitter_registry.unregister("example_jsonl")


@pytest.fixture
def registry(plugins_dir: Path) -> PluginRegistry:
    """The plugin registry with the example plugin loaded by file import."""
    reg = PluginRegistry.discover(plugins_dir)
    assert "example" in reg.names(), reg.errors
    return reg


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
    """A real SQLite database file in tmp_path, opened."""
    backend = SQLiteBackend(tmp_path / "chargeback.db")
    await backend.open()
    yield backend
    await backend.close()


@pytest.fixture
def clock() -> Clock:
    """The fixed clock the runtimes use."""
    return Clock()


MakeRuntime = Callable[..., TenantRuntime]


@pytest.fixture
async def make_runtime(
    registry: PluginRegistry, storage: SQLiteBackend, clock: Clock
) -> AsyncIterator[MakeRuntime]:
    """Build TenantRuntimes of the example plugin; closes them afterwards."""
    made: list[TenantRuntime] = []

    def make(
        settings: dict[str, Any] | None = None,
        emitters: list[NamedEmitter] | None = None,
        *,
        name: str = "acme",
        lookback_days: int = 8,
        cutoff_days: int = 2,
        recalc_days: int = 2,
        run_timeout_s: float = 60.0,
        chunk_days: int = CHUNK_DAYS,
    ) -> TenantRuntime:
        config = TenantConfig(
            name=name,
            ecosystem="example",
            plugin_settings=settings or {},
            lookback_days=lookback_days,
            cutoff_days=cutoff_days,
            recalc_days=recalc_days,
            run_timeout_s=run_timeout_s,
        )
        rt = TenantRuntime(
            config,
            registry.create("example"),
            storage,
            emitters or [],
            clock=clock,
            chunk_days=chunk_days,
        )
        made.append(rt)
        return rt

    yield make
    for rt in made:
        await rt.aclose()
