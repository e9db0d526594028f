"""The compose stack: the daemon, ccloud_sim, Prometheus and a provisioned Grafana."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from chargeback.settings import load_settings

COMPOSE = Path(__file__).resolve().parents[3] / "deploy" / "compose"


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Return container path -> host path of a service's bind mounts (relative to compose/)."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            mounts[target] = (COMPOSE / source).resolve()
    return mounts


class TestServices:
    """The five services and how they reach each other."""

    def test_the_five_services_exist(self, compose_file: dict[str, Any]) -> None:
        """chargeback, the one-shot history, ccloud-sim, prometheus and grafana are defined
        (the PostgreSQL services only come up with their profile)."""
        default = {n for n, svc in compose_file["services"].items() if "profiles" not in svc}
        assert default == {"chargeback", "history", "ccloud-sim", "prometheus", "grafana"}

    def test_the_postgres_profile_runs_replicas_after_migrate(
        self, compose_file: dict[str, Any]
    ) -> None:
        """--profile postgres: a server, a one-shot migrate, then several replicas on one
        database, the password the server was given and the profile's own settings."""
        services = compose_file["services"]
        profile = {n for n, svc in services.items() if svc.get("profiles") == ["postgres"]}
        assert profile == {"postgres", "chargeback-pg-migrate", "chargeback-pg"}
        password = services["postgres"]["environment"]["POSTGRES_PASSWORD"]
        replicas = services["chargeback-pg"]
        assert replicas["deploy"]["replicas"] >= 2
        assert replicas["depends_on"]["chargeback-pg-migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert services["chargeback-pg-migrate"]["command"][:2] == ["chargeback", "migrate"]
        for name in ("chargeback-pg", "chargeback-pg-migrate"):
            assert services[name]["environment"] == {"PGPASSWORD": password}
            assert services[name]["volumes"] == [
                "./settings.postgres.yaml:/etc/chargeback/settings.yaml:ro"
            ]
        settings = load_settings(COMPOSE / "settings.postgres.yaml")
        assert settings.storage.url == "postgresql://chargeback@postgres:5432/chargeback"
        assert password not in (COMPOSE / "settings.postgres.yaml").read_text()

    def test_daemon_and_sim_share_the_repository_image(self, compose_file: dict[str, Any]) -> None:
        """Both are built from the repository's Dockerfile (one image, two commands)."""
        for name in ("chargeback", "ccloud-sim"):
            service = compose_file["services"][name]
            build = service["build"]
            assert (COMPOSE / build["context"] / build["dockerfile"]).resolve().is_file()
            assert service["image"] == "chargeback:local"

    def test_daemon_waits_for_a_healthy_sim(self, compose_file: dict[str, Any]) -> None:
        """The daemon starts after the sim's health check passes."""
        services = compose_file["services"]
        assert services["chargeback"]["depends_on"]["ccloud-sim"]["condition"] == "service_healthy"
        assert services["ccloud-sim"]["healthcheck"]["test"][0] == "CMD"

    def test_demo_tenant_points_at_the_sim_service(self, compose_file: dict[str, Any]) -> None:
        """The demo tenant's base URLs are the sim's service name and its listening port."""
        services = compose_file["services"]
        sim_cmd = services["ccloud-sim"]["command"]
        sim_port = sim_cmd[sim_cmd.index("--port") + 1]
        env = services["chargeback"]["environment"]
        prefix = "CHARGEBACK_TENANTS__DEMO__PLUGIN_SETTINGS__"
        urls = {k: v for k, v in env.items() if k.startswith(prefix) and k.endswith("_URL")}
        assert urls
        for value in urls.values():
            assert value.startswith(f"http://ccloud-sim:{sim_port}")
        assert f"{sim_port}:{sim_port}" in services["ccloud-sim"]["ports"]

    def test_database_is_on_a_named_volume(self, compose_file: dict[str, Any]) -> None:
        """The daemon's /var/lib/chargeback is a named volume that survives `down`."""
        volumes = compose_file["services"]["chargeback"]["volumes"]
        assert "chargeback-data:/var/lib/chargeback" in volumes
        assert "chargeback-data" in compose_file["volumes"]


class TestPrometheus:
    """Prometheus scrapes the daemon's /metrics."""

    def test_promtool_accepts_the_config(self) -> None:
        """`promtool check config` passes on prometheus.yml."""
        promtool = shutil.which("promtool")
        if promtool is None:
            pytest.fail("promtool not found: run `make system-deps` (Debian package prometheus)")
        result = subprocess.run(
            [promtool, "check", "config", str(COMPOSE / "prometheus.yml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_scrapes_the_daemon_service(
        self, prometheus_config: dict[str, Any], compose_file: dict[str, Any]
    ) -> None:
        """The chargeback job targets the compose service on its published port."""
        (job,) = [j for j in prometheus_config["scrape_configs"] if j["job_name"] == "chargeback"]
        assert job["metrics_path"] == "/metrics"
        (target,) = job["static_configs"][0]["targets"]
        host, port = target.split(":")
        assert host in compose_file["services"]
        assert f"{port}:{port}" in compose_file["services"][host]["ports"]

    def test_config_file_is_mounted(self, compose_file: dict[str, Any]) -> None:
        """The prometheus service mounts this prometheus.yml where --config.file points."""
        service = compose_file["services"]["prometheus"]
        flag = next(a for a in service["command"] if a.startswith("--config.file="))
        assert _mounts(service)[flag.split("=", 1)[1]] == COMPOSE / "prometheus.yml"


class TestHistoryBackfill:
    """At start the stack calculates the demo's days and Prometheus backfills them."""

    def test_history_runs_commands_the_cli_accepts(self, compose_file: dict[str, Any]) -> None:
        """Each command of the history service parses with chargeback's own parser."""
        from chargeback.cli import _parser  # noqa: PLC0415

        service = compose_file["services"]["history"]
        sh, flag, script = service["command"]
        assert (sh, flag) == ("sh", "-c")
        commands = [shlex.split(part) for part in script.split("&&")]
        assert [c[:2] for c in commands] == [["chargeback", "once"], ["chargeback", "export"]]
        for command in commands:
            _parser().parse_args(command[1:])
        export = commands[1]
        output = export[export.index("--output") + 1]
        assert output.startswith("/var/lib/chargeback/")
        assert "chargeback-data:/var/lib/chargeback" in service["volumes"]
        assert service["environment"] == {
            k: v
            for k, v in compose_file["services"]["chargeback"]["environment"].items()
            if k != "CHARGEBACK_HTTP__HOST"
        }

    def test_prometheus_backfills_the_export_before_it_starts(
        self, compose_file: dict[str, Any]
    ) -> None:
        """promtool reads the history file from the shared volume, then Prometheus runs."""
        services = compose_file["services"]
        prom = services["prometheus"]
        assert prom["depends_on"]["history"]["condition"] == "service_completed_successfully"
        assert services["chargeback"]["depends_on"]["history"]["condition"] == (
            "service_completed_successfully"
        )
        script = prom["entrypoint"][2]
        assert "promtool tsdb create-blocks-from openmetrics /history/history.om /prometheus" in (
            script
        )
        assert script.endswith('exec /bin/prometheus "$$@"')  # compose makes $$ a literal $
        assert "chargeback-data:/history:ro" in prom["volumes"]
        tsdb = next(a for a in prom["command"] if a.startswith("--storage.tsdb.path="))
        assert tsdb == "--storage.tsdb.path=/prometheus"

    def test_over_days_panels_read_the_backfilled_history(self, dashboard: dict[str, Any]) -> None:
        """The "over days" cost panels read the daily series, any step (last_over_time [1d])."""
        panels = [p for p in dashboard["panels"] if "over days" in p["title"]]
        assert len(panels) == 4
        for panel in panels:
            assert "last_over_time(chargeback_" in panel["targets"][0]["expr"]
            assert "_daily{" in panel["targets"][0]["expr"]


class TestGrafana:
    """Grafana finds its datasource and the dashboard without clicks."""

    def test_provisioning_is_mounted(self, compose_file: dict[str, Any]) -> None:
        """The provisioning folder and the dashboards folder are mounted where Grafana reads."""
        mounts = _mounts(compose_file["services"]["grafana"])
        assert mounts["/etc/grafana/provisioning"] == COMPOSE / "grafana" / "provisioning"
        provider = yaml.safe_load(
            (COMPOSE / "grafana/provisioning/dashboards/chargeback.yaml").read_text()
        )
        path = provider["providers"][0]["options"]["path"]
        assert (mounts[path] / "chargeback.json").is_file()

    def test_datasource_points_at_the_prometheus_service(
        self, compose_file: dict[str, Any]
    ) -> None:
        """The provisioned datasource's URL is the prometheus service on its port."""
        datasources = yaml.safe_load(
            (COMPOSE / "grafana/provisioning/datasources/prometheus.yaml").read_text()
        )
        (ds,) = datasources["datasources"]
        assert ds["type"] == "prometheus"
        assert ds["url"] == "http://prometheus:9090"
        assert "9090:9090" in compose_file["services"]["prometheus"]["ports"]

    def test_every_panel_uses_the_provisioned_datasource(self, dashboard: dict[str, Any]) -> None:
        """Panels and targets refer to the datasource uid that provisioning creates."""
        datasources = yaml.safe_load(
            (COMPOSE / "grafana/provisioning/datasources/prometheus.yaml").read_text()
        )
        uid = datasources["datasources"][0]["uid"]
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == uid, panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid

    def test_panel_ids_are_unique_and_titles_cover_the_brief(
        self, dashboard: dict[str, Any]
    ) -> None:
        """Panel ids are unique; the dashboard has cost, unallocated and pipeline panels."""
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
        for words in (
            "cost by identity",
            "cost by product type",
            "cost by environment",
            "unallocated",
            "runs by status",
            "last success",
            "api requests",
            "api retries",
        ):
            assert words in titles, words
