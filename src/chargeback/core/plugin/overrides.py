"""Per-product-type allocator and identity-resolver overrides by dotted path (DESIGN §6).

``plugin_settings`` may hold::

    allocator_overrides:         {KAFKA_BASE: "mypkg.rules:even_split"}
    identity_resolver_overrides: {KAFKA_BASE: "mypkg.rules.resolve_owners"}

Both ``package.module:callable`` and ``package.module.callable`` are accepted. The
target is used as is, so it must itself be a :class:`CostAllocator` /
:class:`IdentityResolver` (a plain function qualifies).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chargeback.core.plugin.protocols import CostAllocator, IdentityResolver
from chargeback.errors import ConfigError

__all__ = [
    "ALLOCATOR_OVERRIDES",
    "RESOLVER_OVERRIDES",
    "Overrides",
    "load_overrides",
    "resolve_dotted",
]

ALLOCATOR_OVERRIDES = "allocator_overrides"
RESOLVER_OVERRIDES = "identity_resolver_overrides"


@dataclass(frozen=True, slots=True)
class Overrides:
    """The resolved overrides of one tenant, by product type."""

    allocators: Mapping[str, CostAllocator] = field(default_factory=dict)
    resolvers: Mapping[str, IdentityResolver] = field(default_factory=dict)


def resolve_dotted(path: str) -> object:
    """Import ``package.module:attr`` (or ``package.module.attr``) and return the attribute.

    Raises:
        ImportError: the module cannot be imported.
        AttributeError: the module has no such attribute.
        ValueError: the path is malformed.
    """
    path = path.strip()
    if ":" in path:
        module_name, _, attr_path = path.partition(":")
    else:
        module_name, _, attr_path = path.rpartition(".")
    if not module_name or not attr_path:
        raise ValueError("expected 'package.module:callable' or 'package.module.callable'")
    obj: object = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def _load_kind(tenant: str, settings: Mapping[str, Any], key: str, proto: type) -> dict[str, Any]:
    raw = settings.get(key)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"tenant {tenant!r}: plugin_settings.{key} must map product types to dotted "
            f"paths, got {type(raw).__name__}",
            field=f"tenants.{tenant}.plugin_settings.{key}",
        )
    out: dict[str, Any] = {}
    for product_type, path in raw.items():
        where = f"tenants.{tenant}.plugin_settings.{key}.{product_type}"
        prefix = f"tenant {tenant!r}, product type {product_type!r}: {key} {path!r}"
        if not isinstance(path, str):
            raise ConfigError(f"{prefix}: expected a dotted path string", field=where)
        try:
            target = resolve_dotted(path)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(
                f"{prefix} cannot be resolved: {type(exc).__name__}: {exc}", field=where
            ) from exc
        if not callable(target) or not isinstance(target, proto):
            raise ConfigError(
                f"{prefix} resolves to {type(target).__name__}, which is not a "
                f"{proto.__name__} (a callable)",
                field=where,
            )
        out[str(product_type)] = target
    return out


def load_overrides(tenant: str, plugin_settings: Mapping[str, Any]) -> Overrides:
    """Resolve a tenant's allocator and identity-resolver overrides.

    Raises:
        ConfigError: a path is malformed, cannot be imported, or is not callable;
            the message names the tenant, the product type and the path.
    """
    return Overrides(
        allocators=_load_kind(tenant, plugin_settings, ALLOCATOR_OVERRIDES, CostAllocator),
        resolvers=_load_kind(tenant, plugin_settings, RESOLVER_OVERRIDES, IdentityResolver),
    )
