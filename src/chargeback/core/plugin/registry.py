"""The plugin registry: plugin name -> factory, plus why the broken ones failed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from chargeback.core.plugin.loader import (
    BUILTIN_PACKAGE,
    ScanResult,
    check_plugin_instance,
    scan_directory,
    scan_package,
)
from chargeback.core.plugin.protocols import EcosystemPlugin, PluginFactory
from chargeback.errors import PluginLoadError

__all__ = ["PluginRegistry"]


class PluginRegistry:
    """The ecosystem plugins available to tenants.

    Built by :meth:`discover`; a tenant asks :meth:`create` for a fresh plugin
    instance. Plugins that failed to load are kept in :attr:`errors` so a tenant
    using one gets the reason, and tenants of other plugins run unaffected.
    """

    __slots__ = ("_errors", "_factories")

    def __init__(
        self,
        factories: Mapping[str, PluginFactory] | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> None:
        self._factories: dict[str, PluginFactory] = dict(factories or {})
        self._errors: dict[str, str] = dict(errors or {})

    @classmethod
    def discover(
        cls, plugins_path: Path | None = None, *, builtin_package: str | None = BUILTIN_PACKAGE
    ) -> PluginRegistry:
        """Scan the built-in plugins package, then ``plugins_path`` (file import).

        Args:
            plugins_path: an external directory of plugin packages, not on ``sys.path``.
            builtin_package: the package scanned by package import (``None``: skip it).
        """
        result = scan_package(builtin_package) if builtin_package else ScanResult()
        if plugins_path is not None:
            result.merge(scan_directory(Path(plugins_path)))
        return cls.from_scan(result)

    @classmethod
    def from_scan(cls, result: ScanResult) -> PluginRegistry:
        """Build a registry from a scan's findings."""
        return cls({n: p.factory for n, p in result.plugins.items()}, result.errors)

    @property
    def errors(self) -> dict[str, str]:
        """Plugin name -> why it could not be loaded."""
        return dict(self._errors)

    def names(self) -> list[str]:
        """Return the names of the plugins that loaded, sorted."""
        return sorted(self._factories)

    def create(self, name: str) -> EcosystemPlugin:
        """Return a fresh instance of plugin ``name``.

        Raises:
            PluginLoadError: the plugin failed to load, is unknown, or its factory
                failed or returned something that is not an ``EcosystemPlugin``.
        """
        factory = self._factories.get(name)
        if factory is None:
            if name in self._errors:
                raise PluginLoadError(
                    f"plugin {name!r} failed to load: {self._errors[name]}", plugin=name
                )
            known = ", ".join(self.names()) or "none"
            raise PluginLoadError(f"unknown plugin {name!r}; loaded plugins: {known}", plugin=name)
        try:
            instance = factory()
        except Exception as exc:  # plugin code may raise anything; name the plugin
            raise PluginLoadError(
                f"the factory of plugin {name!r} raised {type(exc).__name__}: {exc}",
                plugin=name,
            ) from exc
        try:
            return check_plugin_instance(name, instance)
        except TypeError as exc:
            raise PluginLoadError(str(exc), plugin=name) from exc
