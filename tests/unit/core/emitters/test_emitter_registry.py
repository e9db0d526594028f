"""The emitter registry: register, create with params, storage injection, errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from chargeback.core.emitters import registry
from chargeback.core.emitters.csv import CsvEmitter
from chargeback.core.models import ChargebackRow
from chargeback.core.storage.backend import StorageBackend
from chargeback.errors import ConfigError

STORAGE = cast(StorageBackend, object())


class Recorder:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    async def __call__(
        self, tenant_id: str, day: dt.date, rows: Sequence[ChargebackRow], /
    ) -> None:
        return None


def plain_factory(port: int) -> Recorder:
    return Recorder(port=port)


def storage_factory(port: int, storage_backend: StorageBackend) -> Recorder:
    return Recorder(port=port, storage_backend=storage_backend)


storage_factory.needs_storage_backend = True  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    for name in ("plain", "with_storage", "not_emitter"):
        registry.unregister(name)


class TestRegistry:
    def test_params_passed_without_storage(self) -> None:
        """A factory without the flag receives only its params."""
        registry.register("plain", plain_factory)
        emitter = registry.create("plain", {"port": 9}, storage_backend=STORAGE)
        assert cast(Recorder, emitter).kwargs == {"port": 9}

    def test_storage_injected_when_flagged(self) -> None:
        """A factory with needs_storage_backend = True also receives storage_backend=."""
        registry.register("with_storage", storage_factory)
        emitter = registry.create("with_storage", {"port": 9}, storage_backend=STORAGE)
        assert cast(Recorder, emitter).kwargs == {"port": 9, "storage_backend": STORAGE}

    def test_builtins_listed_and_csv_created_lazily(self, tmp_path: Path) -> None:
        """csv and prometheus are always listed; csv is created from its params."""
        assert {"csv", "prometheus"} <= set(registry.registered())
        emitter = registry.create("csv", {"output_dir": str(tmp_path)}, storage_backend=STORAGE)
        assert isinstance(emitter, CsvEmitter)
        assert emitter.output_dir == tmp_path

    def test_unknown_type_lists_known(self) -> None:
        """An unknown type is a ConfigError listing the known types."""
        with pytest.raises(ConfigError, match=r"unknown emitter type 'nope'; known types: .*csv"):
            registry.create("nope", {}, storage_backend=STORAGE)

    def test_bad_params(self, tmp_path: Path) -> None:
        """Params the factory does not accept are a ConfigError naming the emitter."""
        with pytest.raises(ConfigError, match="emitter 'csv' rejected its params"):
            registry.create(
                "csv", {"output_dir": str(tmp_path), "colour": "red"}, storage_backend=STORAGE
            )

    def test_factory_must_return_emitter(self) -> None:
        """A factory returning a non-callable is a ConfigError."""
        registry.register("not_emitter", cast(Any, lambda: 42))
        with pytest.raises(ConfigError, match="not callable as an Emitter"):
            registry.create("not_emitter", {}, storage_backend=STORAGE)

    def test_register_validates(self) -> None:
        """register() rejects an empty name and a non-callable factory."""
        with pytest.raises(ValueError, match="non-empty"):
            registry.register("", plain_factory)
        with pytest.raises(TypeError, match="callable"):
            registry.register("plain", cast(Any, 3))
