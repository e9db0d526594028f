"""The Daemon in-process: probes, runs, the per-tenant guard, reload and shutdown (DESIGN §9)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chargeback.core.emitters import registry as emitter_registry
from chargeback.core.plugin.registry import PluginRegistry
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.service.daemon import Daemon, DaemonState
from chargeback.settings import AppSettings, load_settings

EXAMPLE = Path(__file__).parents[2] / "fixtures" / "example_plugin"


class GatedRegistry:
    """The example plugin under three names: ``example``, ``gated`` (waits) and ``broken``."""

    def __init__(self, real: PluginRegistry) -> None:
        self.real = real
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.errors: dict[str, str] = {}

    def names(self) -> list[str]:
        return ["broken", "example", "gated"]

    def create(self, name: str) -> Any:
        plugin = self.real.create("example")
        original = plugin.build_shared_context

        async def gated(tenant_id: str) -> Any:
            self.entered.set()
            await self.gate.wait()
            return await original(tenant_id)

        async def broken(tenant_id: str) -> Any:
            raise RuntimeError("the plugin broke")

        if name == "gated":
            plugin.build_shared_context = gated  # type: ignore[method-assign]
        elif name == "broken":
            plugin.build_shared_context = broken  # type: ignore[method-assign]
        return plugin


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[GatedRegistry]:
    """The example plugin loaded from a copy in tmp_path, under three names."""
    root = tmp_path / "plugins"
    shutil.copytree(EXAMPLE, root / "example_plugin", ignore=shutil.ignore_patterns("__pycache__"))
    real = PluginRegistry.discover(root)
    assert "example" in real.names(), real.errors
    yield GatedRegistry(real)
    emitter_registry.unregister("example_jsonl")


def settings_text(tmp_path: Path, tenants: str, grace: float = 5) -> str:
    var = tmp_path / "var"
    return (
        f"storage: {{path: {var / 'cb.db'}}}\n"
        "http: {port: 0}\n"
        f"daemon: {{pid_file: {var / 'pid'}, heartbeat_file: {var / 'hb'}}}\n"
        f"scheduling: {{lookback_days: 3, cutoff_days: 1, shutdown_grace_s: {grace}}}\n"
        f"emitters: [{{name: csv, type: csv, params: {{output_dir: {var / 'csv'}}}}},"
        " {name: prometheus, type: prometheus}]\n"
        f"tenants:\n{tenants}"
    )


MakeDaemon = Callable[..., Daemon]


@pytest.fixture
async def make_daemon(tmp_path: Path, registry: GatedRegistry) -> AsyncIterator[Callable[..., Any]]:
    """Start daemons from settings text; close them afterwards."""
    made: list[Daemon] = []

    async def make(tenants: str, grace: float = 5) -> Daemon:
        path = tmp_path / "settings.yaml"
        path.write_text(settings_text(tmp_path, tenants, grace), encoding="utf-8")
        settings: AppSettings = load_settings(path)
        daemon = Daemon(settings, settings_path=path, handle_signals=False, plugins=registry)  # type: ignore[arg-type]
        made.append(daemon)
        await daemon.start()
        return daemon

    yield make
    registry.gate.set()
    for d in made:
        await d.aclose()


async def wait_idle(daemon: Daemon) -> None:
    assert daemon.pool is not None
    async with asyncio.timeout(30):
        while daemon.pool.tasks:  # the pool's tasks are the thing awaited
            await asyncio.wait(list(daemon.pool.tasks.values()))


async def poll(check: Callable[[], bool], timeout_s: float = 20) -> None:
    """Wait until ``check()`` is true, polling the loop every 10 ms, at most ``timeout_s``."""
    for _ in range(int(timeout_s * 100)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


def scraped(daemon: Daemon, name: str, **labels: str) -> float | None:
    """Return one sample's value from the daemon's /metrics body, parsed as Prometheus does."""
    text = daemon.exposition().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


class TestDaemonInProcess:
    """One Daemon object owns storage, HTTP, scheduler and tenant runs."""

    async def test_probes_and_a_run(self, make_daemon: Any, tmp_path: Path) -> None:
        """Ready after start; a requested run succeeds and shows in /metrics."""
        d: Daemon = await make_daemon("  acme: {ecosystem: example}\n")
        await wait_idle(d)  # the missed run at start-up (never ran before)
        assert d.http is not None
        base = f"http://127.0.0.1:{d.http.port}"
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/healthz")).json()["state"] == "running"
            assert (await client.get("/readyz")).status_code == 200
            metrics = (await client.get("/metrics")).text
        assert 'chargeback_runs_total{status="success",tenant="acme"} 1.0' in metrics
        assert "chargeback_cost_latest_day{" in metrics
        assert (tmp_path / "var" / "pid").exists()

    async def test_restart_serves_the_same_data_at_once(self, make_daemon: Any) -> None:
        """A restarted daemon serves the chargeback series and last success before any run."""
        first: Daemon = await make_daemon("  acme: {ecosystem: example}\n")
        await wait_idle(first)
        latest = scraped(first, "chargeback_latest_day_timestamp_seconds", tenant="acme")
        assert latest is not None
        served = first.exposition()
        await first.aclose()
        second: Daemon = await make_daemon("  acme: {ecosystem: example}\n")
        assert scraped(second, "chargeback_latest_day_timestamp_seconds", tenant="acme") == latest
        chargeback_part = served[served.index(b"# HELP chargeback_cost_latest_day") :]
        assert chargeback_part in second.exposition()
        get = second.registry.get_sample_value
        assert get("chargeback_last_success_timestamp_seconds", {"tenant": "acme"}) is not None
        assert second.pool is not None
        assert not second.pool.tasks  # its last success is recent: no missed run
        assert get("chargeback_runs_total", {"tenant": "acme", "status": "success"}) == 0

    async def test_one_tenant_never_runs_twice(
        self, make_daemon: Any, registry: GatedRegistry
    ) -> None:
        """Requests while the tenant runs are queued as one run that starts right after."""
        d: Daemon = await make_daemon("  acme: {ecosystem: gated}\n")
        assert d.pool is not None
        async with asyncio.timeout(10):
            await registry.entered.wait()
        assert d.request_run_all("signal") == []
        assert d.request_run_all("signal") == []  # coalesced with the first request
        assert d.pool.counters["runs_queued"] == 1
        assert d.pool.queued("acme")
        assert len(d.pool.tasks) == 1  # never two runs of one tenant at once
        registry.gate.set()
        await wait_idle(d)
        assert not d.pool.queued("acme")
        assert (
            d.registry.get_sample_value(
                "chargeback_runs_total", {"tenant": "acme", "status": "success"}
            )
            == 2
        )
        assert d.storage is not None
        runs = await d.storage.list_runs("acme")
        assert [r.trigger for r in runs] == ["signal", "missed"]

    async def test_failing_tenant_leaves_others_alone(self, make_daemon: Any) -> None:
        """A broken tenant fails and is counted; the other tenant succeeds."""
        d: Daemon = await make_daemon("  good: {ecosystem: example}\n  bad: {ecosystem: broken}\n")
        await wait_idle(d)
        get = d.registry.get_sample_value
        assert get("chargeback_runs_total", {"tenant": "good", "status": "success"}) == 1
        assert get("chargeback_runs_total", {"tenant": "bad", "status": "failed"}) == 1

    async def test_reload_adds_tenant_and_rejects_bad_file(
        self, make_daemon: Any, tmp_path: Path
    ) -> None:
        """SIGHUP's reload adds a tenant; a bad file afterwards changes nothing."""
        d: Daemon = await make_daemon("  acme: {ecosystem: example}\n")
        await wait_idle(d)
        path = tmp_path / "settings.yaml"
        path.write_text(
            settings_text(tmp_path, "  acme: {ecosystem: example}\n  beta: {ecosystem: example}\n"),
            encoding="utf-8",
        )
        assert await d.reload()
        assert d.pool is not None
        assert d.pool.names() == ["acme", "beta"]
        path.write_text("tenants:\n  acme: {ecosystem: example, bogus: 1}\n", encoding="utf-8")
        assert not await d.reload()
        assert d.pool.names() == ["acme", "beta"]
        assert "beta" in d.settings.tenants

    async def test_shutdown_cancels_after_grace(
        self, make_daemon: Any, registry: GatedRegistry, tmp_path: Path
    ) -> None:
        """A run still going after the grace period is cancelled; close is idempotent."""
        d: Daemon = await make_daemon("  acme: {ecosystem: gated}\n", grace=0.2)
        async with asyncio.timeout(10):
            await registry.entered.wait()
        d.stop()
        await d.aclose()
        await d.aclose()
        assert d.state is DaemonState.CLOSED
        assert (
            d.registry.get_sample_value(
                "chargeback_runs_total", {"tenant": "acme", "status": "cancelled"}
            )
            == 1
        )
        assert not (tmp_path / "var" / "pid").exists()
        assert '"closed"' in (tmp_path / "var" / "hb").read_text()


class TestSignals:
    """Signals reach the daemon through the running loop."""

    async def test_usr1_hup_term(self, tmp_path: Path, registry: GatedRegistry) -> None:
        """SIGUSR1 runs, SIGHUP reloads, SIGTERM ends async_run; handlers are removed after."""
        path = tmp_path / "settings.yaml"
        path.write_text(settings_text(tmp_path, "  acme: {ecosystem: example}\n"), "utf-8")
        text = path.read_text("utf-8").replace(
            "lookback_days: 3,", "lookback_days: 3, run_missed_on_startup: false,"
        )
        path.write_text(text, "utf-8")
        d = Daemon(load_settings(path), settings_path=path, plugins=registry)  # type: ignore[arg-type]
        main = asyncio.create_task(d.async_run())
        await poll(lambda: d.state is DaemonState.RUNNING)
        os.kill(os.getpid(), signal.SIGUSR1)
        await poll(
            lambda: (
                d.registry.get_sample_value(
                    "chargeback_runs_total", {"tenant": "acme", "status": "success"}
                )
                == 1
            )
        )
        path.write_text(text + "  beta: {ecosystem: example}\n", "utf-8")
        os.kill(os.getpid(), signal.SIGHUP)
        await poll(lambda: d.pool is not None and d.pool.names() == ["acme", "beta"])
        os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(20):
            await main
        assert d.state is DaemonState.CLOSED
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


class TestStorageHealth:
    """The daemon reports database trouble to the orchestrator and cleans up after kills."""

    async def test_readyz_reports_a_failing_database_until_a_run_succeeds(
        self, make_daemon: Any, tmp_path: Path
    ) -> None:
        """A run that fails on a locked database makes /readyz 503 until a run succeeds."""
        d: Daemon = await make_daemon("  acme: {ecosystem: example}\n")
        await wait_idle(d)
        assert d.readiness() == []
        blocker = sqlite3.connect(tmp_path / "var" / "cb.db", isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            d.request_run_all("signal")
            await wait_idle(d)
            reasons = d.readiness()
            assert any(r.startswith("storage failing: tenant acme") for r in reasons), reasons
            assert d.http is not None
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{d.http.port}") as client:
                response = await client.get("/readyz")
            assert response.status_code == 503
            assert "storage failing" in response.text
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        d.request_run_all("signal")
        await wait_idle(d)
        assert d.readiness() == []

    async def test_start_marks_runs_left_running_as_interrupted(
        self, make_daemon: Any, tmp_path: Path
    ) -> None:
        """A run row left 'running' by a killed process is marked interrupted at start-up."""
        var = tmp_path / "var"
        var.mkdir()
        async with SQLiteBackend(var / "cb.db") as storage:
            started = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
            await storage.start_run("acme", "killed-run", "schedule", started)
        with sqlite3.connect(var / "cb.db") as conn:  # as if a process now gone owned it
            conn.execute("UPDATE runs SET owner = ? WHERE run_id = 'killed-run'", (dead_owner(),))
        d: Daemon = await make_daemon("  acme: {ecosystem: example}\n")
        await wait_idle(d)
        assert d.storage is not None
        runs = {r.run_id: r for r in await d.storage.list_runs("acme")}
        assert runs["killed-run"].status == "interrupted"
        assert runs["killed-run"].finished_at is not None
        assert [r.status for r in runs.values() if r.run_id != "killed-run"] == ["success"]


def dead_owner() -> str:
    """The owner string of a process of this host that has ended."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return f"{socket.gethostname()}/{int(child.stdout)}/1"


def samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    """The samples of an exposition, order-free."""
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class TestDaemonMetricsEncoding:
    async def test_gzip_and_plain_bodies_carry_the_same_samples(
        self, make_daemon: Any, tmp_path: Path
    ) -> None:
        """/metrics in gzip (as Prometheus asks) and plain carry exactly the same samples."""
        d = await make_daemon("  acme: {ecosystem: example}\n")
        await wait_idle(d)
        assert d.http is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{d.http.port}") as client:
            zipped = await client.get("/metrics", headers={"accept-encoding": "gzip"})
            plain = await client.get("/metrics", headers={"accept-encoding": "identity"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert "content-encoding" not in plain.headers
        assert int(zipped.headers["content-length"]) < len(plain.content)
        assert samples(zipped.text) == samples(plain.text)
        assert any(s[0] == "chargeback_cost_latest_day" for s in samples(plain.text))


class TestOwnershipReload:
    """SIGHUP re-reads the ownership rules file: applied at once, or rejected whole."""

    async def test_rule_file_change_applies_and_bad_file_keeps_old_rules(
        self, make_daemon: Any, tmp_path: Path
    ) -> None:
        """A changed rules file re-attributes at reload; a broken one is rejected, rules kept."""
        from chargeback.core.storage.ownership import ownership_store  # noqa: PLC0415

        rules = tmp_path / "rules.yaml"
        rules.write_text("rules:\n  - {team: alpha, match: {identity_id: sa-1}}\n", "utf-8")
        tenants = f"  acme: {{ecosystem: example}}\nownership: {{rules_file: {rules}}}\n"
        d: Daemon = await make_daemon(tenants)
        await wait_idle(d)
        assert d.storage is not None
        store = ownership_store(d.storage)

        async def teams_of_sa1() -> set[str]:
            states = await store.attribution_states("acme")
            assert states
            teams: set[str] = set()
            for day in states:
                att = await store.read_attribution("acme", day)
                assert att is not None
                teams |= {s.decision.team for s in att.shares if s.key.identity_id == "sa-1"}
            return teams

        assert await teams_of_sa1() == {"alpha"}
        rules.write_text("rules:\n  - {team: beta, match: {identity_id: sa-1}}\n", "utf-8")
        assert await d.reload()
        assert await teams_of_sa1() == {"beta"}
        assert {s.rule_version for s in (await store.attribution_states("acme")).values()} == {2}
        rules.write_text("rules:\n  - {team: gamma, match: {identity_name: '['}}\n", "utf-8")
        assert not await d.reload()
        assert await teams_of_sa1() == {"beta"}
        assert d.settings.ownership.all_rules()[0].team == "beta"

    async def test_budget_gauges_after_a_run_and_at_restart(
        self, make_daemon: Any, tmp_path: Path
    ) -> None:
        """The budget gauges are evaluated after the run from the stored team totals, a
        restarted daemon serves them before any run, and a reload re-evaluates them."""
        tenants = (
            "  acme: {ecosystem: example}\n"
            "ownership: {rules: [{name: a, team: alpha, match: {identity_id: sa-1}}]}\n"
            "budgets: {forecast_days: 3, rules: [{name: al, tenant: acme, team: alpha,"
            " amount: '2.5'}]}\n"
        )
        first: Daemon = await make_daemon(tenants)
        await wait_idle(first)
        with sqlite3.connect(tmp_path / "var" / "cb.db") as conn:
            (latest,) = conn.execute("SELECT MAX(date) FROM ownership_dates").fetchone()
            (spent,) = conn.execute(
                "SELECT SUM(amount) FROM ownership_team_totals WHERE team = 'alpha'"
                " AND substr(date, 1, 7) = substr(?, 1, 7)",
                (latest,),
            ).fetchone()
        assert spent > 0
        labels = {"tenant": "acme", "budget": "al", "team": "alpha"}
        want = spent / 2.5e9
        assert scraped(first, "chargeback_budget_spent_ratio", **labels) == pytest.approx(want)
        assert scraped(first, "chargeback_budget_amount", **labels) == 2.5
        forecast = scraped(first, "chargeback_forecast_month_end", tenant="acme", team="alpha")
        assert forecast is not None
        assert forecast >= spent / 1e9
        await first.aclose()
        second: Daemon = await make_daemon(tenants)
        assert scraped(second, "chargeback_budget_spent_ratio", **labels) == pytest.approx(want)
        assert scraped(second, "chargeback_forecast_month_end", tenant="acme", team="alpha") == (
            forecast
        )
        settings = settings_text(tmp_path, tenants.replace("'2.5'", "'5'"))
        (tmp_path / "settings.yaml").write_text(settings, encoding="utf-8")
        assert await second.reload()  # SIGHUP: the new amount is evaluated at once
        assert scraped(second, "chargeback_budget_amount", **labels) == 5
        assert scraped(second, "chargeback_budget_spent_ratio", **labels) == pytest.approx(want / 2)


class TestUnattributedGauge:
    async def test_gauge_counts_principals_the_inventory_lost(
        self, make_daemon: Any, tmp_path: Path
    ) -> None:
        """chargeback_unattributed_amount is the latest day's cost on UNALLOCATED, sentinels
        and principals not in the inventory: an identity removed from the stored inventory
        joins it at the next start, beside an unchanged unallocated gauge."""
        first: Daemon = await make_daemon("  acme: {ecosystem: example}\n")
        await wait_idle(first)
        await first.aclose()
        db = sqlite3.connect(tmp_path / "var" / "cb.db")
        try:
            latest, identity, cost = db.execute(
                "SELECT date, identity_id, SUM(amount) FROM chargeback_rows WHERE tenant_id = "
                "'acme' AND identity_id != 'UNALLOCATED' AND date = (SELECT MAX(date) FROM "
                "chargeback_rows WHERE tenant_id = 'acme') GROUP BY identity_id "
                "ORDER BY SUM(amount) DESC LIMIT 1"
            ).fetchone()
            assert cost > 0
            with db:
                db.execute("DELETE FROM identities WHERE tenant_id = 'acme' AND identity_id = ?",
                           (identity,))  # fmt: skip
            expected = db.execute(
                "SELECT COALESCE(SUM(r.amount), 0) FROM chargeback_rows AS r LEFT JOIN "
                "identities AS i ON i.tenant_id = r.tenant_id AND i.identity_id = r.identity_id "
                "WHERE r.tenant_id = 'acme' AND r.date = ? AND (r.identity_id = 'UNALLOCATED' "
                "OR i.identity_id IS NULL OR i.identity_type = 'sentinel')",
                (latest,),
            ).fetchone()[0]
        finally:
            db.close()
        second: Daemon = await make_daemon("  acme: {ecosystem: example}\n")
        get = second.registry.get_sample_value
        unattributed = get("chargeback_unattributed_amount", {"tenant": "acme"})
        unallocated = get("chargeback_unallocated_amount", {"tenant": "acme"})
        assert unattributed == expected / 10**9
        assert unallocated is not None
        assert unattributed >= unallocated + cost / 10**9 - 1e-9
