"""Every port, path, probe, env var and metric name the deploy files use exists in the code.

A real daemon (tmp SQLite, the docs' example plugin as its tenant) is started once; its
HTTP server answers the paths the manifests probe and scrape, and its exposition is
the list of metric names the dashboard may use.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ccloud_sim import cli as sim_cli
from ccloud_sim.scales import SCALES
from chargeback import cli
from chargeback.core.query.openmetrics import FAMILY_LABELS
from chargeback.service.daemon import Daemon
from chargeback.settings import AppSettings, HttpSettings, load_settings, validate_settings

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "deploy" / "kubernetes"
COMPOSE = REPO / "deploy" / "compose"
GRACE_MARGIN_S = 10


@dataclass(frozen=True, slots=True)
class LiveDaemon:
    """What the started daemon answered."""

    statuses: dict[str, int]
    labels_by_sample: dict[str, set[str]]


def _deployment_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def _http_paths(objects: list[dict[str, Any]], stages: list[Any], prom: dict[str, Any]) -> set[str]:
    """Every HTTP path that a probe, a health check or a scraper asks the daemon for."""
    container = _deployment_container(objects)
    paths = {
        container[probe]["httpGet"]["path"]
        for probe in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    paths.add(deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"])
    (monitor,) = [o for o in objects if o["kind"] == "ServiceMonitor"]
    paths.update(e["path"] for e in monitor["spec"]["endpoints"])
    healthcheck = stages[-1].last("HEALTHCHECK").exec_form()[2]
    paths.update(re.findall(r"'(/[a-z]+)'", healthcheck))
    paths.update(j["metrics_path"] for j in prom["scrape_configs"] if j["job_name"] == "chargeback")
    return paths


async def _run_daemon(tmp: Path, paths: set[str]) -> LiveDaemon:
    config = tmp / "settings.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage": {"path": str(tmp / "chargeback.db")},
                "plugins_path": str(REPO / "docs"),
                "http": {"host": "127.0.0.1", "port": 0},
                "daemon": {
                    "pid_file": str(tmp / "chargeback.pid"),
                    "heartbeat_file": str(tmp / "chargeback.heartbeat"),
                },
                "scheduling": {"run_missed_on_startup": False},
                "emitters": [
                    {"name": "csv", "type": "csv", "params": {"output_dir": str(tmp / "csv")}},
                    {"name": "prometheus", "type": "prometheus"},
                ],
                "tenants": {
                    "platform": {
                        "ecosystem": "shared_platform",
                        "lookback_days": 3,
                        "cutoff_days": 1,
                        "plugin_settings": {"daily_cost": "10.00", "teams": {"a": 1, "b": 2}},
                    }
                },
            }
        )
    )
    settings = load_settings(config)
    await validate_settings(settings, str(config))
    daemon = Daemon(settings, settings_path=config, handle_signals=False)
    await daemon.start()
    try:
        assert daemon.pool is not None
        assert daemon.http is not None
        key = daemon.pool.request_run("platform", "test")
        assert key is not None
        await asyncio.wait([daemon.pool.tasks[key]])
        # The Telemetry hook is how plugins report HTTP traffic; one of each gives the
        # API series their labels.
        daemon.metrics.api_request("api.example", "/v1/things", "200", 0.05)
        daemon.metrics.api_retry("api.example", "429")
        statuses: dict[str, int] = {}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.http.port}") as client:
            for path in sorted(paths | {"/no-such-path"}):
                statuses[path] = (await client.get(path)).status_code
            exposition = (await client.get("/metrics")).text
    finally:
        daemon.stop()
        await daemon.aclose()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return LiveDaemon(statuses, labels)


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory,
    k8s_objects: list[dict[str, Any]],
    dockerfile_stages: list[Any],
    prometheus_config: dict[str, Any],
) -> LiveDaemon:
    """A real daemon, run once, asked for every path the deploy files use."""
    paths = _http_paths(k8s_objects, dockerfile_stages, prometheus_config)
    return asyncio.run(_run_daemon(tmp_path_factory.mktemp("daemon"), paths))


@pytest.fixture
def env_loader(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, dict[str, str]], AppSettings]:
    """Load a settings file with extra environment variables set."""

    def load(path: Path, env: dict[str, str]) -> AppSettings:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return load_settings(path)

    return load


def _setting_at(settings: AppSettings, env_name: str) -> object:
    """Follow ``CHARGEBACK_A__B__C`` through the settings' fields and mapping keys."""
    node: object = settings
    for part in env_name.removeprefix("CHARGEBACK_").lower().split("__"):
        if isinstance(node, dict):
            assert part in node, f"{env_name}: no key {part!r}"
            node = node[part]
        else:
            assert part in type(node).model_fields, f"{env_name}: no setting {part!r}"  # type: ignore[attr-defined]
            node = getattr(node, part)
    return node


def _k8s_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    env = {}
    for var in _deployment_container(objects)["env"]:
        env[var["name"]] = var.get("value", f"from-secret-{var['name'].lower()}")
    return env


class TestEndpoints:
    """The daemon answers every path the deploy files ask for."""

    def test_probe_and_scrape_paths_answer(self, live: LiveDaemon) -> None:
        """Probes, the image health check and the scrapers get 200; an unknown path 404."""
        assert live.statuses.pop("/no-such-path") == 404
        assert {"/healthz", "/readyz", "/metrics"} <= set(live.statuses)
        assert live.statuses == dict.fromkeys(live.statuses, 200)

    def test_dashboard_metrics_are_exported(
        self, live: LiveDaemon, dashboard_metric_names: set[str]
    ) -> None:
        """Every chargeback_* name in the dashboard is exported live or by the history export."""
        assert dashboard_metric_names
        missing = sorted(dashboard_metric_names - set(live.labels_by_sample) - set(FAMILY_LABELS))
        assert not missing, f"dashboard uses metrics the daemon does not export: {missing}"

    def test_dashboard_labels_exist_on_their_metrics(
        self, live: LiveDaemon, dashboard_expressions: list[str]
    ) -> None:
        """Labels grouped by or matched on in a panel exist on that panel's metrics."""
        for expr in dashboard_expressions:
            names = re.findall(r"\bchargeback_[a-zA-Z0-9_]+", expr)
            known = set().union(*(live.labels_by_sample.get(n, set()) for n in names))
            known |= set().union(*(FAMILY_LABELS.get(n, ()) for n in names))
            used = {
                label.strip()
                for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
                for label in group.split(",")
                if label.strip()
            }
            used |= set(re.findall(r"[{,]\s*([a-z_]+)\s*=~?", expr))
            used |= set(re.findall(r"label_values\([a-z_]+,\s*([a-z_]+)\)", expr))
            assert used <= known, f"{expr}: labels {sorted(used - known)} not on {names}"


class TestPorts:
    """One port everywhere: the settings' default."""

    def test_every_port_is_the_settings_default(
        self,
        dockerfile_stages: list[Any],
        k8s_objects: list[dict[str, Any]],
        compose_file: dict[str, Any],
        prometheus_config: dict[str, Any],
    ) -> None:
        """EXPOSE, health check, containerPort, Service, annotations, compose and scrape agree."""
        port = HttpSettings().port
        runtime = dockerfile_stages[-1]
        assert int(runtime.last("EXPOSE").args) == port
        assert f"'{port}'" in runtime.last("HEALTHCHECK").exec_form()[2]
        assert load_settings(REPO / "settings.yaml").http.port == port
        container = _deployment_container(k8s_objects)
        assert [p["containerPort"] for p in container["ports"]] == [port]
        (service,) = [o for o in k8s_objects if o["kind"] == "Service"]
        assert [p["port"] for p in service["spec"]["ports"]] == [port]
        (deployment,) = [o for o in k8s_objects if o["kind"] == "Deployment"]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) == port
        k8s_settings = yaml.safe_load((K8S / "settings.yaml").read_text())
        assert k8s_settings["http"]["port"] == port
        assert compose_file["services"]["chargeback"]["ports"] == [f"{port}:{port}"]
        (job,) = [j for j in prometheus_config["scrape_configs"] if j["job_name"] == "chargeback"]
        assert job["static_configs"][0]["targets"] == [f"chargeback:{port}"]


class TestCommands:
    """The commands the deploy files run parse with the real command lines."""

    def _config_of(self, argv: list[str]) -> Path:
        assert argv[0] == "chargeback"
        args = cli._parser().parse_args(argv[1:])
        assert args.command == "run"
        return Path(args.config)

    def test_daemon_commands_share_one_config_path(
        self,
        dockerfile_stages: list[Any],
        k8s_objects: list[dict[str, Any]],
        compose_file: dict[str, Any],
    ) -> None:
        """Docker CMD, the k8s args and compose all run `chargeback run` on the same file."""
        runtime = dockerfile_stages[-1]
        docker = self._config_of(runtime.last("CMD").exec_form())
        k8s = self._config_of(_deployment_container(k8s_objects)["args"])
        compose = self._config_of(compose_file["services"]["chargeback"]["command"])
        assert docker == k8s == compose == Path("/etc/chargeback/settings.yaml")
        mounts = {m["mountPath"] for m in _deployment_container(k8s_objects)["volumeMounts"]}
        assert str(k8s.parent) in mounts

    def test_sim_command_parses(self, compose_file: dict[str, Any]) -> None:
        """The compose sim runs `ccloud-sim serve` with a real scale on the URLs' port."""
        command = compose_file["services"]["ccloud-sim"]["command"]
        assert command[0] == "ccloud-sim"
        args = sim_cli._parser().parse_args(command[1:])
        assert args.command == "serve"
        assert args.scale in SCALES
        env = compose_file["services"]["chargeback"]["environment"]
        assert env["CHARGEBACK_TENANTS__DEMO__PLUGIN_SETTINGS__BASE_URL"].endswith(f":{args.port}")

    def test_readme_commands_parse(self) -> None:
        """The rerun and reconcile commands in the k8s README parse with the real CLI."""
        text = (K8S / "README.md").read_text().replace("\\\n", " ")
        commands = re.findall(r"-- (chargeback (?:rerun|reconcile) [^\n`]+)", text)
        assert len(commands) == 2
        for command in commands:
            argv = shlex.split(command)
            args = cli._parser().parse_args(argv[1:])
            assert args.config == Path("/etc/chargeback/settings.yaml")
            assert args.tenant == "prod"


class TestEnvironment:
    """Every CHARGEBACK_* variable a deploy file sets is a real setting and takes effect."""

    def test_image_env(
        self,
        dockerfile_stages: list[Any],
        env_loader: Callable[[Path, dict[str, str]], AppSettings],
    ) -> None:
        """The Dockerfile's variables override the default settings.yaml."""
        env = {k: v for k, v in dockerfile_stages[-1].env().items() if k.startswith("CHARGEBACK_")}
        assert "CHARGEBACK_HTTP__HOST" in env
        settings = env_loader(REPO / "settings.yaml", env)
        for name, value in env.items():
            assert str(_setting_at(settings, name)) == value, name
        volume = dockerfile_stages[-1].last("VOLUME").exec_form()[0]
        assert settings.storage.path.is_relative_to(volume)

    async def test_kubernetes_env_and_settings(
        self,
        k8s_objects: list[dict[str, Any]],
        env_loader: Callable[[Path, dict[str, str]], AppSettings],
    ) -> None:
        """The Deployment's variables land in the ConfigMap's settings, which the plugin accepts."""
        env = _k8s_env(k8s_objects)
        settings = env_loader(K8S / "settings.yaml", env)
        for name, value in env.items():
            actual = _setting_at(settings, name)
            assert str(actual) == value, name
        assert settings.http.host == "0.0.0.0"  # noqa: S104  (the container must listen outside)
        await validate_settings(settings, str(K8S / "settings.yaml"))

    async def test_compose_env(
        self,
        compose_file: dict[str, Any],
        env_loader: Callable[[Path, dict[str, str]], AppSettings],
    ) -> None:
        """The compose daemon's variables override the image's settings.yaml, validly."""
        env = {k: str(v) for k, v in compose_file["services"]["chargeback"]["environment"].items()}
        settings = env_loader(REPO / "settings.yaml", env)
        for name, value in env.items():
            assert str(_setting_at(settings, name)) == value, name
        await validate_settings(settings, "compose")


class TestShutdown:
    """The orchestrator waits longer than the daemon drains."""

    def test_kubernetes_grace_covers_the_drain(self, k8s_objects: list[dict[str, Any]]) -> None:
        """terminationGracePeriodSeconds >= shutdown_grace_s + a margin."""
        grace = load_settings(K8S / "settings.yaml").scheduling.shutdown_grace_s
        (deployment,) = [o for o in k8s_objects if o["kind"] == "Deployment"]
        period = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert period >= grace + GRACE_MARGIN_S

    def test_compose_grace_covers_the_drain(self, compose_file: dict[str, Any]) -> None:
        """The compose stop_grace_period >= shutdown_grace_s + a margin."""
        grace = load_settings(REPO / "settings.yaml").scheduling.shutdown_grace_s
        period = compose_file["services"]["chargeback"]["stop_grace_period"]
        assert int(period.removesuffix("s")) >= grace + GRACE_MARGIN_S
