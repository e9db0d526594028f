"""The chargeback command line, in-process, with the example plugin (DESIGN §9)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from chargeback.cli import main
from chargeback.core.emitters import registry as emitter_registry
from chargeback.core.models import REFUSED, UNALLOCATED, BillingLineItem, ChargebackRow
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.logging import clear_secrets

EXAMPLE = Path(__file__).parents[2] / "fixtures" / "example_plugin"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Remove the root handler and secrets the commands install."""
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == "chargeback":
            root.removeHandler(handler)
    clear_secrets()
    emitter_registry.unregister("example_jsonl")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A settings file with one example tenant, everything under tmp_path."""
    plugins = tmp_path / "plugins"
    shutil.copytree(
        EXAMPLE, plugins / "example_plugin", ignore=shutil.ignore_patterns("__pycache__")
    )
    var = tmp_path / "var"
    path = tmp_path / "settings.yaml"
    path.write_text(
        f"storage: {{path: {var / 'cb.db'}}}\n"
        f"plugins_path: {plugins}\n"
        "logging: {level: warning, format: json}\n"
        f"daemon: {{pid_file: {var / 'pid'}, heartbeat_file: {var / 'hb'}}}\n"
        "scheduling: {lookback_days: 4, cutoff_days: 1}\n"
        f"emitters: [{{name: csv, type: csv, params: {{output_dir: {var / 'csv'}}}}}]\n"
        "tenants:\n  acme:\n    ecosystem: example\n"
        "    plugin_settings: {api_key: KEY-123456}\n",
        encoding="utf-8",
    )
    return path


class TestCheckConfig:
    """check-config validates and prints; a bad file exits 2 naming the field."""

    def test_valid(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A valid file prints the effective settings, key ids shortened."""
        assert main(["check-config", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert "valid; effective settings" in out
        assert "api_key: KEY-..." in out
        assert "KEY-123456" not in out

    def test_bad_plugin_setting(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An invalid plugin_settings value is found by the plugin's validation: exit 2."""
        text = config.read_text().replace("{api_key: KEY-123456}", "{clusters: 0}")
        config.write_text(text)
        assert main(["check-config", "--config", str(config)]) == 2
        err = capsys.readouterr().err
        assert "tenants.acme.plugin_settings.clusters" in err
        assert str(config) in err

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing file exits 2."""
        assert main(["check-config", "--config", str(tmp_path / "x.yaml")]) == 2
        assert "settings file not found" in capsys.readouterr().err


class TestOnceRerunReconcile:
    """once runs every tenant; rerun records requests; reconcile proves the totals."""

    def test_once_then_reconcile(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """once exits 0 after a successful run and reconcile then finds no mismatch."""
        assert main(["once", "--config", str(config)]) == 0
        capsys.readouterr()
        assert main(["reconcile", "--config", str(config), "--tenant", "acme"]) == 0
        assert "acme" in capsys.readouterr().out

    def test_once_unknown_tenant(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Naming a tenant that does not exist is a settings error (exit 2)."""
        assert main(["once", "--config", str(config), "--tenant", "nobody"]) == 2
        assert "nobody" in capsys.readouterr().err

    def test_rerun_without_daemon_is_recorded_and_picked_up(
        self, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With no daemon running the request is stored, and the next run completes it."""
        day = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)).isoformat()
        args = ["rerun", "--config", str(config), "--tenant", "acme", "--from", day, "--to", day]
        assert main(args) == 0
        assert "no running daemon found" in capsys.readouterr().out

        async def pending() -> int:
            async with SQLiteBackend(tmp_path / "var" / "cb.db") as storage:
                return len(await storage.pending_reruns("acme"))

        assert asyncio.run(pending()) == 1
        assert main(["once", "--config", str(config)]) == 0
        assert asyncio.run(pending()) == 0

    def test_rerun_now(self, config: Path) -> None:
        """--now runs the tenant in this process."""
        day = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)).isoformat()
        args = ["rerun", "--config", str(config), "--tenant", "acme", "--from", day, "--to", day]
        assert main([*args, "--now"]) == 0

    def test_reconcile_exits_1_on_a_refused_line_unless_accepted(
        self, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A stored refused line makes reconcile exit 1 naming it; --accept-refused exits 0."""
        day = dt.date(2026, 3, 1)
        line = BillingLineItem("huge", day, "KAFKA_NUM_CKUS", "KAFKA", 0, error=REFUSED + "x")
        reason = "source_error: refused: x"
        row = ChargebackRow("acme", day, "huge", UNALLOCATED, "KAFKA_NUM_CKUS", "KAFKA",
                            None, None, "usage", "source_error", 0, reason)  # fmt: skip

        async def store() -> None:
            (tmp_path / "var").mkdir(exist_ok=True)
            async with SQLiteBackend(tmp_path / "var" / "cb.db") as storage:
                await storage.commit_date(
                    "acme", day, lines=[line], rows=[row], plugin_rows=[],
                    billing_fingerprint="b", settings_fingerprint="s",
                    inventory_fingerprint="i", calculated_at=dt.datetime.now(dt.UTC),
                )  # fmt: skip

        asyncio.run(store())
        args = ["reconcile", "--config", str(config), "--tenant", "acme"]
        span = ["--from", "2026-03-01", "--to", "2026-03-01"]
        assert main([*args, *span]) == 1
        assert "REFUSED: 1 billing lines" in capsys.readouterr().out
        assert main([*args, *span, "--accept-refused"]) == 0
        assert "accepted (--accept-refused)" in capsys.readouterr().out

    def test_rerun_inverted_range(self, config: Path) -> None:
        """--to before --from is refused with exit 2."""
        args = ["rerun", "--config", str(config), "--tenant", "acme"]
        assert main([*args, "--from", "2026-03-05", "--to", "2026-03-01"]) == 2


class TestCheck:
    """check exits 1 when no daemon wrote a fresh heartbeat."""

    def test_no_daemon(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Without a heartbeat file the check fails."""
        assert main(["check", "--config", str(config)]) == 1
        assert "unhealthy" in capsys.readouterr().err
