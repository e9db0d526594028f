"""`chargeback ownership`, the rule tester, on a database the engine filled (DESIGN §14)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from chargeback.cli import main
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import TenantConfig
from chargeback.core.plugin.registry import PluginRegistry
from chargeback.core.storage.sqlite import SQLiteBackend


def _settings(tmp_path: Path, plugins: Path, rules: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(
        f"storage: {{path: {tmp_path / 'chargeback.db'}}}\n"
        f"plugins_path: {plugins}\n"
        "tenants:\n  acme: {ecosystem: example}\n"
        f"ownership:\n  rules:\n{rules}",
        encoding="utf-8",
    )
    return path


RULES = (
    "    - {name: one, team: alpha, match: {identity_id: [sa-1]}}\n"
    "    - {name: two, team: beta, match: {identity_id: [sa-2]}}\n"
    "    - {name: two-again, team: gamma, match: {identity_id: [sa-2]}}\n"
    "    - {name: cluster, team: platform, match: {cluster: [c-1]}}\n"
)


def _fill(registry: PluginRegistry, db: Path) -> None:
    """Backfill the example tenant into ``db`` (without ownership: the tester needs none)."""

    async def fill() -> None:
        config = TenantConfig(name="acme", ecosystem="example", lookback_days=8, cutoff_days=2)
        async with SQLiteBackend(db) as storage:
            rt = TenantRuntime(
                config,
                registry.create("example"),
                storage,
                clock=lambda: dt.datetime(2026, 3, 10, 6, tzinfo=dt.UTC),
            )
            await rt.run("test")
            await rt.aclose()

    asyncio.run(fill())


class TestRuleTester:
    def test_lists_subjects_conflicts_and_unmapped_cost(
        self,
        registry: PluginRegistry,
        plugins_dir: Path,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Every identity and resource with its team and rule; the conflict; leaks by cost."""
        _fill(registry, tmp_path / "chargeback.db")
        cfg = _settings(tmp_path, plugins_dir, RULES)
        assert main(["ownership", "--config", str(cfg), "--tenant", "acme"]) == 0
        out = capsys.readouterr().out
        assert "tenant acme: 4 ownership rules, evaluated on 2026-03-08" in out
        lines = {line.split()[1]: line.split() for line in out.splitlines() if line[:3] == "  s"}
        assert lines["sa-1"][2:] == ["alpha", "one"]
        assert lines["sa-2"][2:] == ["beta", "two"]
        assert lines["sa-3"][2:] == ["UNASSIGNED", "-"]
        assert "  sa-2: two decided, also matching: two-again" in out
        unmapped = out.split("unmapped cost 2026-02-07 .. 2026-03-08: ", 1)[1]
        assert "23 days not calculated" in unmapped.splitlines()[0]
        ids = [line.split()[0] for line in unmapped.splitlines()[2:]]
        assert "sa-1" not in ids
        assert "sa-2" not in ids
        assert "sa-3" in ids

    def test_invalid_rule_exits_1(
        self, plugins_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A rule with a bad regex: exit 1 and the rule named on stderr."""
        cfg = _settings(
            tmp_path, plugins_dir, "    - {name: bad, team: a, match: {identity_name: '('}}\n"
        )
        assert main(["ownership", "--config", str(cfg), "--tenant", "acme"]) == 1
        assert "invalid ownership rules" in capsys.readouterr().err

    def test_no_inventory_exits_1(
        self, plugins_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:  # fmt: skip
        """A tenant the database knows nothing of: exit 1, saying to run the daemon first."""
        cfg = _settings(tmp_path, plugins_dir, RULES)

        async def create() -> None:
            async with SQLiteBackend(tmp_path / "chargeback.db"):
                pass

        asyncio.run(create())
        assert main(["ownership", "--config", str(cfg), "--tenant", "acme"]) == 1
        assert "no inventory stored for tenant 'acme'" in capsys.readouterr().err
