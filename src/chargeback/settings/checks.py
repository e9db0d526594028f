"""Settings checks that need more than pydantic: the plugins' own validation, and what
changed between two settings (SIGHUP)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pydantic

from chargeback.errors import ConfigError, PluginLoadError

if TYPE_CHECKING:
    from chargeback.core.plugin.registry import PluginRegistry
    from chargeback.settings import AppSettings

__all__ = ["changed_tenants", "plugin_config_error", "restart_only_changes", "validate_settings"]


def plugin_config_error(source: str, tenant: str, exc: pydantic.ValidationError) -> ConfigError:
    """Name the bad ``tenants.<tenant>.plugin_settings.<field>`` of a plugin's validation."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        path = f"tenants.{tenant}.plugin_settings" + (f".{loc}" if loc else "")
        msg = "unknown key (not allowed here)" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append((path, msg))
    lines = "; ".join(f"{p}: {m}" for p, m in problems)
    return ConfigError(f"{source}: invalid settings: {lines}", source=source, field=problems[0][0])


def changed_tenants(old: AppSettings, new: AppSettings) -> tuple[list[str], list[str], list[str]]:
    """Return the enabled tenants ``(added, removed, changed)`` from ``old`` to ``new``.

    A tenant whose settings or effective defaults differ counts as changed.
    """
    before, after = set(old.enabled_tenants()), set(new.enabled_tenants())
    changed = [
        n
        for n in sorted(before & after)
        if old.tenant_config(n) != new.tenant_config(n)
        or old.tenant_schedule(n) != new.tenant_schedule(n)
    ]
    return sorted(after - before), sorted(before - after), changed


def restart_only_changes(old: AppSettings, new: AppSettings) -> list[str]:
    """Return the sections that changed but take effect only after a restart."""
    sections: Iterable[str] = ("storage", "http", "daemon", "emitters", "plugins_path")
    out = [s for s in sections if getattr(old, s) != getattr(new, s)]
    if old.scheduling.max_concurrent_tenants != new.scheduling.max_concurrent_tenants:
        out.append("scheduling.max_concurrent_tenants")
    return out


async def validate_settings(
    settings: AppSettings, source: str, *, registry: PluginRegistry | None = None
) -> PluginRegistry:
    """Check what pydantic cannot: ecosystems, emitter types and every plugin_settings.

    Each enabled tenant's plugin is created, initialized with its ``plugin_settings``
    (the plugin's own pydantic validation) and closed again.

    Returns:
        The plugin registry used, for the caller to create the real plugins from.

    Raises:
        ConfigError: naming the file, the field path and the problem.
    """
    from chargeback.core.emitters import registry as emitter_registry  # noqa: PLC0415
    from chargeback.core.plugin.registry import PluginRegistry  # noqa: PLC0415

    if registry is None:
        registry = PluginRegistry.discover(settings.plugins_path)
    known_emitters = emitter_registry.registered()
    for i, em in enumerate(settings.emitters):
        if em.type not in known_emitters:
            raise ConfigError(
                f"{source}: invalid settings: emitters.{i}.type: unknown emitter type "
                f"{em.type!r}; known: {', '.join(sorted(known_emitters))}",
                source=source,
                field=f"emitters.{i}.type",
            )
    known = registry.names()
    for name in settings.enabled_tenants():
        tenant = settings.tenants[name]
        field = f"tenants.{name}.ecosystem"
        if tenant.ecosystem not in known:
            why = registry.errors.get(tenant.ecosystem)
            detail = f" (it failed to load: {why})" if why else ""
            raise ConfigError(
                f"{source}: invalid settings: {field}: unknown ecosystem {tenant.ecosystem!r}"
                f"{detail}; known: {', '.join(sorted(known)) or '(none)'}",
                source=source,
                field=field,
            )
        try:
            plugin = registry.create(tenant.ecosystem)
        except PluginLoadError as exc:
            raise ConfigError(
                f"{source}: invalid settings: {field}: {exc}", source=source, field=field
            ) from exc
        try:
            plugin.initialize(dict(tenant.plugin_settings))
        except pydantic.ValidationError as exc:
            raise plugin_config_error(source, name, exc) from exc
        except ConfigError as exc:
            raise ConfigError(
                f"{source}: invalid settings: tenants.{name}.plugin_settings: {exc}",
                source=source,
                field=exc.field or f"tenants.{name}.plugin_settings",
            ) from exc
        finally:
            await plugin.close()
    return registry
