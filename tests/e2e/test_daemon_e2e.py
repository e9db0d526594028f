"""The daemon as a real process against ccloud_sim, scraped by a real Prometheus (issue 5)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

pytestmark = pytest.mark.e2e

SIM_SECRET = "E2E-Distinct-S3cret-7f3a9c"
SIM_KEY = "E2EKEY42"


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` every 0.1 s until it is true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def http_ok(url: str) -> bool:
    """Return whether GET ``url`` answers 200."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Proc:
    """A subprocess with its output in a file, stopped at teardown."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._out: IO[bytes] = log.open("wb")
        self.popen = subprocess.Popen(
            args, stdout=self._out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def signal(self, sig: signal.Signals) -> None:
        self.popen.send_signal(sig)

    def wait(self, timeout_s: float) -> int:
        return self.popen.wait(timeout=timeout_s)

    def text(self) -> str:
        self._out.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)  # its own session: only its group
                self.popen.wait(timeout=5)
        self._out.close()


@pytest.fixture
def procs() -> Iterator[Callable[..., Proc]]:
    """Start subprocesses; every one is stopped at teardown."""
    started: list[Proc] = []

    def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(args, log, env)
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def sim(tmp_path: Path, procs: Callable[..., Proc]) -> str:
    """A ccloud_sim server on a free loopback port with distinctive credentials."""
    port = free_port()
    procs(
        [
            sys.executable,
            "-m",
            "ccloud_sim",
            "serve",
            "--port",
            str(port),
            "--seed",
            "3",
            "--scale",
            "tiny",
            "--api-key",
            SIM_KEY,
            "--api-secret",
            SIM_SECRET,
            "--metrics-retention-days",
            "unlimited",
        ],
        tmp_path / "sim.log",
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"{url}/_sim/stats"), 20, "ccloud_sim to listen")
    return url


def daemon_env() -> dict[str, str]:
    """The environment for chargeback processes: the tenant secret comes from here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGEBACK_")}
    env["CHARGEBACK_TENANTS__DEMO__PLUGIN_SETTINGS__API_SECRET"] = SIM_SECRET
    return env


CLI = [sys.executable, "-m", "chargeback.cli"]
SECRET_FORMS = (SIM_SECRET, base64.b64encode(f"{SIM_KEY}:{SIM_SECRET}".encode()).decode())


def tenant(name: str, sim: str, *, inline_secret: bool = False) -> str:
    """A Confluent Cloud tenant on the sim; its secret from the environment unless inline."""
    secret = f"      api_secret: {SIM_SECRET}\n" if inline_secret else ""
    return (
        f"  {name}:\n    ecosystem: confluent_cloud\n    plugin_settings:\n"
        f"      api_key: {SIM_KEY}\n{secret}      base_url: {sim}\n      telemetry_url: {sim}\n"
        f"      flink_url: {sim}\n"
        "      metrics: {retention_days: null}\n"  # the sim keeps every day's usage
    )


def settings(tmp_path: Path, port: int, tenants: str, grace_s: float = 20) -> str:
    var = tmp_path / "var"
    return (
        f"storage: {{path: {var / 'cb.db'}}}\n"
        f"http: {{host: 127.0.0.1, port: {port}}}\n"
        "logging: {level: info, format: json}\n"
        f"daemon: {{pid_file: {var / 'cb.pid'}, heartbeat_file: {var / 'hb'},"
        " heartbeat_interval_s: 1}\n"
        "scheduling: {lookback_days: 6, cutoff_days: 3, recalc_days: 1,"
        f" run_missed_on_startup: false, shutdown_grace_s: {grace_s}}}\n"
        f"emitters: [{{name: csv, type: csv, params: {{output_dir: {var / 'csv'}}}}},"
        " {name: prometheus, type: prometheus}]\n"
        f"tenants:\n{tenants}"
    )


def metric(text: str, name: str, **labels: str) -> float | None:
    """Return one sample's value from exposition text."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.rindex("}") + 1]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=daemon_env(),
        timeout=60,
        check=False,
    )


class TestDaemonProcess:
    """Probes, signals, scraping and shutdown of `chargeback run` as a subprocess."""

    def test_lifecycle(self, tmp_path: Path, sim: str, procs: Callable[..., Proc]) -> None:
        """Ready, SIGUSR1 run, promtool, Prometheus scrape, SIGHUP, rerun + SIGTERM, no secrets."""
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        config = tmp_path / "settings.yaml"
        config.write_text(settings(tmp_path, port, tenant("demo", sim)), encoding="utf-8")

        daemon = procs(
            [*CLI, "run", "--config", str(config)], tmp_path / "daemon.log", daemon_env()
        )
        wait_until(lambda: http_ok(f"{base}/readyz"), 30, "/readyz")
        health = httpx.get(f"{base}/healthz").json()
        assert health["state"] == "running"
        assert cli("check", config=config).returncode == 0

        # SIGUSR1 runs every tenant now
        daemon.signal(signal.SIGUSR1)

        def ran(tenant_name: str) -> bool:
            text = httpx.get(f"{base}/metrics").text
            return (
                metric(text, "chargeback_runs_total", tenant=tenant_name, status="success") or 0
            ) >= 1

        wait_until(lambda: ran("demo"), 60, "a successful run of demo")
        scrape = httpx.get(f"{base}/metrics").text
        assert metric(scrape, "chargeback_dates_calculated_total", tenant="demo") == 4
        assert metric(scrape, "chargeback_latest_day_timestamp_seconds", tenant="demo") is not None
        assert "chargeback_cost_month_to_date{" in scrape
        assert (
            metric(
                scrape, "chargeback_api_requests_total", endpoint="/billing/v1/costs", status="200"
            )
            is not None
        )

        # promtool accepts the exposition
        lint = subprocess.run(
            ["promtool", "check", "metrics"],
            input=scrape,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr

        # a real Prometheus scrapes it
        prom_port = free_port()
        prom_cfg = tmp_path / "prometheus.yml"
        prom_cfg.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
            "scrape_configs:\n  - job_name: chargeback\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n",
            encoding="utf-8",
        )
        procs(
            [
                "prometheus",
                f"--config.file={prom_cfg}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            tmp_path / "prometheus.log",
        )
        prom = f"http://127.0.0.1:{prom_port}"

        def scraped() -> bool:
            try:
                body = httpx.get(f"{prom}/api/v1/query", params={"query": 'up{job="chargeback"}'})
                result = body.json()["data"]["result"]
            except (httpx.HTTPError, ValueError, KeyError):
                return False
            return bool(result) and result[0]["value"][1] == "1"

        wait_until(scraped, 40, "Prometheus to scrape /metrics with up == 1")
        targets = httpx.get(f"{prom}/api/v1/targets").json()["data"]["activeTargets"]
        assert targets[0]["health"] == "up", targets[0].get("lastError")

        # SIGHUP adds a tenant; a bad file afterwards is rejected and the daemon keeps going
        config.write_text(
            settings(
                tmp_path, port, tenant("demo", sim) + tenant("second", sim, inline_secret=True)
            ),
            encoding="utf-8",
        )
        daemon.signal(signal.SIGHUP)
        wait_until(
            lambda: 'tenant="second"' in httpx.get(f"{base}/metrics").text, 30, "tenant second"
        )
        good = config.read_text(encoding="utf-8")
        config.write_text(good + "  third: {ecosystem: nosuch}\n", encoding="utf-8")
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "settings reload rejected" in daemon.text(), 20, "reload rejected")
        assert http_ok(f"{base}/readyz")
        config.write_text(good, encoding="utf-8")

        # a rerun request signals the daemon; SIGTERM while it runs exits 0, no partial date
        day = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=4)).isoformat()
        rerun = cli("rerun", "--tenant", "demo", "--from", day, "--to", day, config=config)
        assert rerun.returncode == 0, rerun.stderr
        assert "signalled the daemon" in rerun.stdout
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
        log = daemon.text()
        assert "daemon stopped" in log
        assert not (tmp_path / "var" / "cb.pid").exists()
        assert cli("check", config=config).returncode == 1

        rec = cli("reconcile", "--tenant", "demo", config=config)
        assert rec.returncode == 0, rec.stdout + rec.stderr

        # every log line is JSON, none carries a secret, nor does any scrape
        for line in log.splitlines():
            json.loads(line)
        for form in SECRET_FORMS:
            assert form not in log
            assert form not in scrape

    def test_bad_settings_exit_2_naming_field(self, tmp_path: Path) -> None:
        """`run` and `check-config` on a bad file exit 2 naming the file and the field."""
        config = tmp_path / "bad.yaml"
        config.write_text("http: {port: 8000}\nscheduling: {max_concurrent: 2}\n", encoding="utf-8")
        for command in ("run", "check-config"):
            result = cli(command, config=config)
            assert result.returncode == 2
            assert "scheduling.max_concurrent" in result.stderr
            assert str(config) in result.stderr

    def test_check_config_masks_secret(self, tmp_path: Path, sim: str) -> None:
        """check-config prints the effective settings without the environment's secret."""
        config = tmp_path / "settings.yaml"
        config.write_text(settings(tmp_path, free_port(), tenant("demo", sim)), encoding="utf-8")
        result = cli("check-config", config=config)
        assert result.returncode == 0, result.stderr
        assert "api_secret: '**********'" in result.stdout
        for form in SECRET_FORMS:
            assert form not in result.stdout + result.stderr


class TestGracefulShutdown:
    """SIGTERM in the middle of a run: no new work, the rest cancelled, exit 0, no partial date."""

    def test_sigterm_cancels_a_slow_run(
        self, tmp_path: Path, sim: str, procs: Callable[..., Proc]
    ) -> None:
        """With usage queries slowed down, SIGTERM during the run exits 0 within 30 s."""
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        config = tmp_path / "settings.yaml"
        config.write_text(settings(tmp_path, port, tenant("demo", sim), grace_s=0.5), "utf-8")
        slow = {"rate_slow": 1.0, "slow_seconds": 5, "paths": ["/v2/metrics"]}
        assert httpx.post(f"{sim}/_sim/faults", json=slow).status_code == 200
        daemon = procs([*CLI, "run", "--config", str(config)], tmp_path / "d.log", daemon_env())
        wait_until(lambda: http_ok(f"{base}/readyz"), 30, "/readyz")
        daemon.signal(signal.SIGUSR1)

        def running() -> bool:
            text = httpx.get(f"{base}/metrics").text
            return metric_value(text, "chargeback_tenants_running") == 1

        wait_until(running, 30, "the run to be in progress")
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
        assert time.monotonic() - started < 30
        log = daemon.text()
        assert "cancelling running tenants" in log
        outcomes = [json.loads(line) for line in log.splitlines() if '"run failed"' in line]
        assert [o["status"] for o in outcomes] == ["cancelled"]
        rec = cli("reconcile", "--tenant", "demo", config=config)
        assert rec.returncode == 0, rec.stdout + rec.stderr
        for form in SECRET_FORMS:
            assert form not in log


def metric_value(text: str, name: str) -> float | None:
    """Return the value of an unlabelled sample."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None
