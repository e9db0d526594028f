"""Plugin discovery: find packages that export ``register()`` (seed: "Plugin discovery").

Two import strategies, used transparently:

- **package import** (:func:`importlib.import_module`) for a package whose parent is
  on ``sys.path``: the built-in plugins in :mod:`chargeback.plugins`;
- **file import** (:func:`importlib.util.spec_from_file_location`) for an external
  ``plugins_path`` that is not on ``sys.path``; every plugin there is a directory with
  an ``__init__.py``. The package is registered in :data:`sys.modules` under a private
  unique name so relative imports inside it work.

A broken plugin never stops the others: every failure (import error, no
``register()``, ``register()`` of the wrong shape, a factory whose product does not
satisfy :class:`~chargeback.core.plugin.protocols.EcosystemPlugin`) is collected by
plugin name with the reason.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import structlog

from chargeback.core.plugin.protocols import EcosystemPlugin, PluginFactory

__all__ = [
    "BUILTIN_PACKAGE",
    "LoadedPlugin",
    "ScanResult",
    "check_plugin_instance",
    "missing_members",
    "scan_directory",
    "scan_package",
]

BUILTIN_PACKAGE = "chargeback.plugins"
"""The package scanned for built-in plugins."""

_EXTERNAL_PREFIX = "_chargeback_external_plugins"

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedPlugin:
    """A plugin whose ``register()`` returned a usable ``(name, factory)``.

    Attributes:
        name: the ecosystem name tenants refer to.
        factory: zero-argument callable that returns a fresh plugin per tenant.
        origin: where it was found (module name or directory), for messages.
    """

    name: str
    factory: PluginFactory
    origin: str


@dataclass(slots=True)
class ScanResult:
    """What one scan found: loaded plugins by name and failures by plugin name."""

    plugins: dict[str, LoadedPlugin] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def merge(self, other: ScanResult) -> None:
        """Add another scan's findings; a name loaded twice is an error for the later one."""
        for name, plugin in other.plugins.items():
            self._add(plugin, name)
        for name, reason in other.errors.items():
            self.errors.setdefault(name, reason)

    def _add(self, plugin: LoadedPlugin, name: str) -> None:
        if name in self.plugins:
            first = self.plugins[name].origin
            self.errors[f"{name} ({plugin.origin})"] = (
                f"duplicate plugin name {name!r}: already loaded from {first}; rename one of them"
            )
            return
        self.plugins[name] = plugin


def _protocol_members(proto: type) -> list[str]:
    return sorted(n for n in vars(proto) if not n.startswith("_") and n not in {"register", "mro"})


def missing_members(obj: object, proto: type = EcosystemPlugin) -> list[str]:
    """Return the members of protocol ``proto`` that ``obj`` lacks (sorted)."""
    return [n for n in _protocol_members(proto) if not hasattr(obj, n)]


def check_plugin_instance(name: str, obj: object) -> EcosystemPlugin:
    """Return ``obj`` if it satisfies :class:`EcosystemPlugin`.

    Raises:
        TypeError: it does not; the message names the missing members.
    """
    if isinstance(obj, EcosystemPlugin):
        return obj
    missing = ", ".join(missing_members(obj)) or "(members of the wrong kind)"
    raise TypeError(
        f"the factory of plugin {name!r} returned {type(obj).__name__}, which does not "
        f"satisfy EcosystemPlugin: missing {missing}"
    )


def _from_module(label: str, module: ModuleType, origin: str) -> tuple[LoadedPlugin | None, str]:
    """Validate a plugin module; return the plugin or ``(None, reason)``."""
    register: Any = getattr(module, "register", None)
    if register is None or not callable(register):
        return None, "the package exports no register() function; add `def register()`"
    try:
        result = register()
    except Exception as exc:  # plugin code may raise anything; report it by name
        return None, f"register() raised {type(exc).__name__}: {exc}"
    if (
        not isinstance(result, tuple)
        or len(result) != 2
        or not isinstance(result[0], str)
        or not result[0]
        or not callable(result[1])
    ):
        return None, (
            "register() must return (name: str, factory: callable), "
            f"got {type(result).__name__}: {result!r:.80}"
        )
    name, factory = result
    factory_fn: Callable[[], object] = factory
    try:
        instance = factory_fn()
    except Exception as exc:  # plugin code may raise anything; report it by name
        return None, f"the factory of plugin {name!r} raised {type(exc).__name__}: {exc}"
    try:
        check_plugin_instance(name, instance)
    except TypeError as exc:
        return None, str(exc)
    return LoadedPlugin(name=name, factory=factory, origin=origin), ""


def _record(result: ScanResult, label: str, module: ModuleType | None, origin: str) -> None:
    if module is None:
        return
    plugin, reason = _from_module(label, module, origin)
    if plugin is None:
        result.errors[label] = reason
        log.warning("plugin load failed", plugin=label, reason=reason)
    else:
        result._add(plugin, plugin.name)


def scan_package(package_name: str = BUILTIN_PACKAGE) -> ScanResult:
    """Import every sub-package of ``package_name`` and collect their plugins.

    The package's parent must be on ``sys.path`` (package import).
    """
    result = ScanResult()
    try:
        package = importlib.import_module(package_name)
    except ImportError as exc:
        result.errors[package_name] = f"cannot import plugin package: {exc}"
        return result
    paths = list(getattr(package, "__path__", []))
    for info in sorted(pkgutil.iter_modules(paths), key=lambda m: m.name):
        if not info.ispkg or info.name.startswith("_"):
            continue
        full = f"{package_name}.{info.name}"
        try:
            module: ModuleType | None = importlib.import_module(full)
        except Exception as exc:  # a broken plugin must not stop the others
            module = None
            reason = f"import failed: {type(exc).__name__}: {exc}"
            result.errors[info.name] = reason
            log.warning("plugin load failed", plugin=info.name, reason=reason)
        _record(result, info.name, module, full)
    return result


def _private_name(directory: Path) -> str:
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() else "_" for c in directory.name)
    return f"{_EXTERNAL_PREFIX}.{safe}_{digest}"


def _ensure_namespace_parent() -> None:
    if _EXTERNAL_PREFIX not in sys.modules:
        parent = ModuleType(_EXTERNAL_PREFIX)
        parent.__path__ = []
        sys.modules[_EXTERNAL_PREFIX] = parent


def _import_from_files(directory: Path) -> ModuleType:
    """Import the package in ``directory`` by file, under a private unique name."""
    init = directory / "__init__.py"
    name = _private_name(directory)
    existing = sys.modules.get(name)
    if existing is not None:
        return existing
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(directory)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot build an import spec for {init}")
    _ensure_namespace_parent()
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        raise
    return module


def scan_directory(plugins_path: Path) -> ScanResult:
    """Import every plugin package in an external directory by file.

    Every sub-directory (except hidden ones and ``__pycache__``) must be a package
    with an ``__init__.py``; one that is not is reported.
    """
    result = ScanResult()
    if not plugins_path.is_dir():
        result.errors[str(plugins_path)] = "plugins_path is not a directory"
        return result
    for entry in sorted(plugins_path.iterdir(), key=lambda p: p.name):
        if not entry.is_dir() or entry.name.startswith((".", "_")):
            continue
        if not (entry / "__init__.py").is_file():
            reason = f"{entry} is not a plugin package: it has no __init__.py"
            result.errors[entry.name] = reason
            log.warning("plugin load failed", plugin=entry.name, reason=reason)
            continue
        try:
            module: ModuleType | None = _import_from_files(entry)
        except Exception as exc:  # a broken plugin must not stop the others
            module = None
            reason = f"import failed: {type(exc).__name__}: {exc}"
            result.errors[entry.name] = reason
            log.warning("plugin load failed", plugin=entry.name, reason=reason)
        _record(result, entry.name, module, str(entry))
    return result
