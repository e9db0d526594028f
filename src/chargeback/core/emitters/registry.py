"""The emitter registry (seed: "Emitter registry"; DESIGN §6, §8).

Emitters are registered by name with a factory; the daemon creates each configured
emitter with the YAML ``params``. A factory that sets
``factory.needs_storage_backend = True`` also receives ``storage_backend=``::

    def make_my_emitter(port: int, storage_backend: StorageBackend) -> MyEmitter: ...
    make_my_emitter.needs_storage_backend = True
    register("my_emitter", make_my_emitter)

The built-ins ``csv``, ``focus``, ``prometheus`` and ``query_rollup`` are registered lazily
by dotted path, so importing this module imports none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from chargeback.core.plugin.protocols import Emitter
from chargeback.core.storage.backend import StorageBackend
from chargeback.errors import ConfigError

__all__ = ["create", "register", "registered", "unregister"]

EmitterFactory = Callable[..., Emitter]

_BUILTINS: dict[str, str] = {
    "csv": "chargeback.core.emitters.csv:make_csv_emitter",
    "focus": "chargeback.core.emitters.focus.emitter:make_focus_emitter",
    "prometheus": "chargeback.core.emitters.prometheus:make_prometheus_emitter",
    "query_rollup": "chargeback.core.emitters.query_rollup:make_query_rollup_emitter",
}
_factories: dict[str, EmitterFactory] = {}


def register(name: str, factory: EmitterFactory) -> None:
    """Register ``factory`` under ``name`` (replacing an earlier registration).

    Raises:
        TypeError: ``factory`` is not callable.
        ValueError: ``name`` is empty.
    """
    if not name:
        raise ValueError("an emitter needs a non-empty name")
    if not callable(factory):
        raise TypeError(f"the factory of emitter {name!r} must be callable, got {factory!r}")
    _factories[name] = factory


def unregister(name: str) -> None:
    """Forget a registered emitter (tests and plugin unloading); unknown names are ignored."""
    _factories.pop(name, None)


def registered() -> list[str]:
    """Return every emitter type name, registered or built in, sorted."""
    return sorted({*_factories, *_BUILTINS})


def _factory(type_name: str) -> EmitterFactory:
    factory = _factories.get(type_name)
    if factory is not None:
        return factory
    path = _BUILTINS.get(type_name)
    if path is None:
        raise ConfigError(
            f"unknown emitter type {type_name!r}; known types: {', '.join(registered())}",
            field="emitters.type",
        )
    module_name, _, attr = path.partition(":")
    try:
        loaded: EmitterFactory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"built-in emitter {type_name!r} is not available ({path}): {exc}",
            field="emitters.type",
        ) from exc
    _factories[type_name] = loaded
    return loaded


def create(
    type_name: str, params: Mapping[str, Any], *, storage_backend: StorageBackend
) -> Emitter:
    """Create an emitter of ``type_name`` from its YAML ``params``.

    ``storage_backend`` is passed only to factories with ``needs_storage_backend = True``.

    Raises:
        ConfigError: unknown type (the message lists the known ones), or the factory
            rejected the params.
    """
    factory = _factory(type_name)
    kwargs: dict[str, Any] = dict(params)
    if getattr(factory, "needs_storage_backend", False) is True:
        kwargs["storage_backend"] = storage_backend
    try:
        emitter = factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"emitter {type_name!r} rejected its params {sorted(params)}: {exc}",
            field="emitters.params",
        ) from exc
    if not isinstance(emitter, Emitter):
        raise ConfigError(
            f"the factory of emitter {type_name!r} returned {type(emitter).__name__}, "
            "which is not callable as an Emitter",
            field="emitters.type",
        )
    return emitter
