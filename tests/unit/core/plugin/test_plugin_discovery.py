"""Plugin discovery: package import, file import, and broken plugins reported by name."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from chargeback.core.emitters import registry as emitter_registry
from chargeback.core.plugin.loader import scan_directory, scan_package
from chargeback.core.plugin.protocols import EcosystemPlugin
from chargeback.core.plugin.registry import PluginRegistry
from chargeback.errors import PluginLoadError

EXAMPLE = Path(__file__).parents[3] / "fixtures" / "example_plugin"

GOOD_PLUGIN = """
from .impl import make

def register():
    return ({name!r}, make)
"""

GOOD_IMPL = """
class Plugin:
    name = "x"
    def initialize(self, config): pass
    def get_service_handlers(self): return {{}}
    def get_cost_input(self): return None
    def get_metrics_source(self): return None
    def get_storage_module(self): return None
    def get_fallback_allocator(self): return None
    async def build_shared_context(self, tenant_id): return None
    async def close(self): pass

def make():
    return Plugin()
"""


def write_pkg(root: Path, name: str, init: str, **modules: str) -> Path:
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(init))
    for mod, text in modules.items():
        (pkg / f"{mod}.py").write_text(textwrap.dedent(text))
    return pkg


@pytest.fixture(autouse=True)
def _forget_example_emitter():
    yield
    emitter_registry.unregister("example_jsonl")


@pytest.fixture
def plugins_dir(tmp_path: Path) -> Path:
    """A plugins directory (not on sys.path) holding a copy of the example plugin."""
    root = tmp_path / "plugins"
    root.mkdir()
    shutil.copytree(EXAMPLE, root / "example_plugin", ignore=shutil.ignore_patterns("__pycache__"))
    return root


class TestFileImport:
    def test_example_plugin_loads_from_external_directory(self, plugins_dir: Path) -> None:
        """The example plugin, not on sys.path, loads by file import with its relative imports."""
        assert not any(str(plugins_dir) in p for p in sys.path)
        result = scan_directory(plugins_dir)
        assert result.errors == {}
        assert list(result.plugins) == ["example"]
        plugin = result.plugins["example"].factory()
        assert isinstance(plugin, EcosystemPlugin)
        assert plugin.name == "example"

    def test_register_side_effect_registers_emitter(self, plugins_dir: Path) -> None:
        """Loading the example plugin registers its emitter in the emitter registry."""
        scan_directory(plugins_dir)
        assert "example_jsonl" in emitter_registry.registered()

    def test_same_name_twice_is_reported(self, tmp_path: Path, plugins_dir: Path) -> None:
        """Two packages registering the same name: the second is an error naming both."""
        shutil.copytree(plugins_dir / "example_plugin", plugins_dir / "example_copy")
        result = scan_directory(plugins_dir)
        assert list(result.plugins) == ["example"]
        [(key, reason)] = result.errors.items()
        assert "duplicate plugin name 'example'" in reason
        assert "example_copy" in key + reason
        assert "example_plugin" in key + reason


class TestBrokenPlugins:
    def test_each_failure_is_named_and_others_still_load(self, tmp_path: Path) -> None:
        """Import error, no register, wrong shape, bad factory: reported; good ones load."""
        root = tmp_path / "plugins"
        write_pkg(root, "good", GOOD_PLUGIN.format(name="good"), impl=GOOD_IMPL)
        write_pkg(root, "import_error", "import does_not_exist_anywhere_42\n")
        write_pkg(root, "syntax_error", "def register(:\n")
        write_pkg(root, "no_register", "X = 1\n")
        write_pkg(root, "wrong_shape", "def register():\n    return 'just a name'\n")
        write_pkg(root, "raises", "def register():\n    raise RuntimeError('boom')\n")
        write_pkg(
            root,
            "not_a_plugin",
            "class P:\n    name = 'n'\n\ndef register():\n    return ('half', P)\n",
        )
        (root / "no_init").mkdir()
        registry = PluginRegistry.discover(root, builtin_package="chargeback.plugins")
        assert "good" in registry.names()
        errors = registry.errors
        assert "does_not_exist_anywhere_42" in errors["import_error"]
        assert errors["import_error"].startswith("import failed: ModuleNotFoundError")
        assert "SyntaxError" in errors["syntax_error"]
        assert "no register()" in errors["no_register"]
        assert "must return (name: str, factory: callable)" in errors["wrong_shape"]
        assert "RuntimeError: boom" in errors["raises"]
        assert "does not satisfy EcosystemPlugin" in errors["not_a_plugin"]
        assert "get_cost_input" in errors["not_a_plugin"]
        assert "initialize" in errors["not_a_plugin"]
        assert "no __init__.py" in errors["no_init"]

    def test_create_broken_plugin_raises_with_reason(self, tmp_path: Path) -> None:
        """Creating a plugin that failed to load raises PluginLoadError naming it and why."""
        root = tmp_path / "plugins"
        write_pkg(root, "no_register", "X = 1\n")
        registry = PluginRegistry.discover(root)
        with pytest.raises(PluginLoadError, match="'no_register' failed to load") as info:
            registry.create("no_register")
        assert info.value.plugin == "no_register"

    def test_create_unknown_plugin_lists_known(self, plugins_dir: Path) -> None:
        """An unknown name raises PluginLoadError listing the loaded plugins."""
        registry = PluginRegistry.discover(plugins_dir)
        with pytest.raises(
            PluginLoadError, match=r"unknown plugin 'nope'; loaded plugins: .*\bexample\b"
        ):
            registry.create("nope")

    def test_failed_import_leaves_no_module_behind(self, tmp_path: Path) -> None:
        """A package whose import fails is removed from sys.modules again."""
        root = tmp_path / "plugins"
        write_pkg(root, "half", "from . import sub\nraise ImportError('late')\n", sub="Y = 2\n")
        before = set(sys.modules)
        result = scan_directory(root)
        assert "ImportError: late" in result.errors["half"]
        assert not [m for m in set(sys.modules) - before if "half" in m]


class TestPackageImport:
    def test_builtin_style_package_scan(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A package on sys.path is scanned by package import, like chargeback.plugins."""
        parent = write_pkg(tmp_path, "cb_test_builtin_pkg", '"""plugins."""\n')
        write_pkg(parent, "alpha", GOOD_PLUGIN.format(name="alpha"), impl=GOOD_IMPL)
        write_pkg(parent, "broken", "raise ValueError('bad builtin')\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        result = scan_package("cb_test_builtin_pkg")
        assert list(result.plugins) == ["alpha"]
        assert result.plugins["alpha"].origin == "cb_test_builtin_pkg.alpha"
        assert "ValueError: bad builtin" in result.errors["broken"]
        for name in [m for m in sys.modules if m.startswith("cb_test_builtin_pkg")]:
            monkeypatch.delitem(sys.modules, name)

    def test_real_builtin_package_scans_cleanly(self) -> None:
        """Scanning chargeback.plugins never raises, whatever is installed there."""
        result = scan_package()
        assert isinstance(result.errors, dict)
        for name in result.plugins:
            assert isinstance(PluginRegistry.from_scan(result).create(name), EcosystemPlugin)

    def test_missing_package_is_an_error_not_a_crash(self) -> None:
        """A plugin package that cannot be imported is reported."""
        result = scan_package("no_such_package_for_chargeback_tests")
        assert (
            "cannot import plugin package" in result.errors["no_such_package_for_chargeback_tests"]
        )
