"""One daemon, three ecosystems side by side (issue 23): a Confluent Cloud tenant on
ccloud_sim, a self_managed_kafka tenant and a generic_metrics tenant on a real Prometheus
holding generated history of the last days. The daemon and the CLI run as real
processes; a day without samples is counted in the run's summary, the log, the metric
and the exit status of ``once``.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.test_daemon_e2e import (
    CLI,
    Proc,
    cli,
    daemon_env,
    free_port,
    http_ok,
    metric,
    procs,
    settings,
    sim,
    tenant,
    wait_until,
)
from tests.integration.self_managed_kafka.history import kafka_histories
from tests.support.prometheus import (
    MetricHistory,
    Point,
    PrometheusServer,
    prometheus_with_history,
)

pytestmark = pytest.mark.e2e

__all__ = ["procs", "sim"]  # fixtures, imported to be used here

TODAY = dt.datetime.now(dt.UTC).date()
DAYS = [TODAY - dt.timedelta(days=d) for d in range(8, 0, -1)]  # the first is the baseline
GAP_DAY = TODAY - dt.timedelta(days=5)
"""No sample of the platform's size and query series on this day."""
GAP_LINES = 3
"""PG_STORAGE on the gap day, PG_QUERIES on it and on the day after (no baseline)."""
HOURS = (0, 6, 12, 18)
PRINCIPALS = ("User:alice", "User:bob")
TEAMS = ("team-a", "team-b")


def _at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def _kafka() -> list[MetricHistory]:
    points: dict[str, list[Point]] = {k: [] for k in ("in", "out", "log", "brokers", "parts")}
    totals = dict.fromkeys(PRINCIPALS, 0)
    for n, day in enumerate(DAYS):
        for hour in HOURS:
            at = _at(day, hour)
            for i, who in enumerate(PRINCIPALS):
                totals[who] += (i + 1) * 2**28 + n * 2**20
                for key in ("in", "out"):
                    points[key].append(
                        Point({"cluster": "east-1", "principal": who}, at, totals[who])
                    )
            points["brokers"].append(Point({"cluster": "east-1"}, at, 3))
            points["parts"].append(Point({"cluster": "east-1"}, at, 12))
            points["log"].append(Point({"cluster": "east-1", "topic": "t"}, at, (n + 40) * 2**30))
    return kafka_histories(points)


def _platform() -> list[MetricHistory]:
    size: list[Point] = []
    queries: list[Point] = []
    totals = dict.fromkeys(TEAMS, 0)
    for n, day in enumerate(DAYS):
        for hour in HOURS:
            for i, team in enumerate(TEAMS):
                totals[team] += (i + 1) * 1000 + n * 10
                if day == GAP_DAY:
                    continue
                at = _at(day, hour)
                queries.append(Point({"team": team}, at, totals[team]))
                size.append(Point({"team": team}, at, (i + 1) * (n + 5) * 2**30))
    return [
        MetricHistory("pg_database_size_bytes", "gauge", "size", size),
        MetricHistory("pg_queries", "counter", "queries", queries),
    ]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """One Prometheus holding both the brokers' and the platform's last eight days."""
    with prometheus_with_history(_kafka() + _platform(), tmp_path_factory.mktemp("eco")) as prom:
        yield prom


def _tenant(name: str, ecosystem: str, plugin_settings: dict[str, Any]) -> str:
    body = {"ecosystem": ecosystem, "plugin_settings": plugin_settings}
    return f"  {name}: {json.dumps(body)}\n"


def kafka_tenant(url: str) -> str:
    """A self_managed_kafka tenant of one cluster."""
    return _tenant("onprem", "self_managed_kafka", {
        "prometheus": {"url": url},
        "clusters": [{"id": "east-1", "region": "us-east"}],
        "rate_card": [{"valid_from": "2020-01-01", "rates": {
            "compute_per_broker_hour": "0.25", "storage_per_gib_hour": "0.0001",
            "partition_per_hour": "0.001", "ingress_per_gib": "0.01", "egress_per_gib": "0.02"}}],
    })  # fmt: skip


def platform_tenant(url: str) -> str:
    """A generic_metrics tenant: storage by bytes, queries by count, compute evenly."""
    return _tenant("platform", "generic_metrics", {
        "prometheus": {"url": url},
        "cost_types": [
            {"name": "PG_COMPUTE", "rates": [{"valid_from": "2020-01-01", "rate": "0.5"}],
             "quantity": {"kind": "count_hours", "count": 2}},
            {"name": "PG_STORAGE", "rates": [{"valid_from": "2020-01-01", "rate": "0.0002"}],
             "quantity": {"kind": "gauge_average", "query": "pg_database_size_bytes",
                          "multiplier": 24, "divisor": 2**30},
             "allocation": {"rule": "usage", "query": "pg_database_size_bytes",
                            "kind": "gauge_average"}},
            {"name": "PG_QUERIES", "rates": [{"valid_from": "2020-01-01", "rate": "0.01"}],
             "quantity": {"kind": "increase", "query": "pg_queries_total", "divisor": 1000},
             "allocation": {"rule": "usage", "query": "pg_queries_total"}},
        ],
    })  # fmt: skip


def write_config(tmp_path: Path, port: int, tenants: str) -> Path:
    config = tmp_path / "settings.yaml"
    config.write_text(settings(tmp_path, port, tenants), encoding="utf-8")
    return config


def once(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``chargeback once`` without the Confluent tenant's secret in the environment."""
    env = {k: v for k, v in daemon_env().items() if not k.startswith("CHARGEBACK_")}
    return subprocess.run(
        [*CLI, "once", *args, "--config", str(config)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def run_finished(log: str, tenant_name: str) -> dict[str, Any]:
    """The daemon's ``run finished`` log record of a tenant."""
    for line in log.splitlines():
        if '"run finished"' in line and f'"{tenant_name}"' in line:
            record: dict[str, Any] = json.loads(line)
            return record
    raise AssertionError(f"no 'run finished' for {tenant_name} in the log:\n{log[-3000:]}")


class TestThreeEcosystems:
    def test_one_daemon_runs_and_reconciles_a_tenant_of_each(
        self,
        tmp_path: Path,
        sim: str,
        prometheus: PrometheusServer,
        procs: Callable[..., Proc],
    ) -> None:
        """Confluent, self-managed Kafka and generic metrics tenants each run, reconcile, and
        the platform's scrape gap is in its summary, its log and the metric."""
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        tenants = tenant("demo", sim) + kafka_tenant(prometheus.url)
        config = write_config(tmp_path, port, tenants + platform_tenant(prometheus.url))
        daemon = procs([*CLI, "run", "--config", str(config)], tmp_path / "d.log", daemon_env())
        wait_until(lambda: http_ok(f"{base}/readyz"), 30, "/readyz")
        daemon.signal(signal.SIGUSR1)

        def ran(name: str) -> bool:
            text = httpx.get(f"{base}/metrics").text
            return (metric(text, "chargeback_runs_total", tenant=name, status="success") or 0) >= 1

        for name in ("demo", "onprem", "platform"):
            wait_until(lambda n=name: ran(n), 90, f"a successful run of {name}")  # type: ignore[misc]
        scrape = httpx.get(f"{base}/metrics").text
        for name in ("demo", "onprem", "platform"):
            assert metric(scrape, "chargeback_dates_calculated_total", tenant=name) == 4
        assert metric(scrape, "chargeback_scrape_gap_lines_total", tenant="platform") == GAP_LINES
        assert metric(scrape, "chargeback_scrape_gap_lines_total", tenant="onprem") == 0
        assert metric(scrape, "chargeback_scrape_gap_lines_total", tenant="demo") == 0
        assert run_finished(daemon.text(), "platform")["scrape_gap_lines"] == GAP_LINES
        assert run_finished(daemon.text(), "onprem")["scrape_gap_lines"] == 0
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
        for name in ("demo", "onprem", "platform"):
            report = cli("reconcile", "--tenant", name, config=config)
            assert report.returncode == 0, (name, report.stdout, report.stderr)
            assert "OK" in report.stdout, report.stdout

    def test_once_exits_4_on_scrape_gaps_unless_accepted(
        self, tmp_path: Path, prometheus: PrometheusServer
    ) -> None:
        """`once` says how many lines had no data and exits 4; on a fresh database
        --accept-gaps exits 0 for the same lines; a tenant without gaps exits 0."""
        tenants = kafka_tenant(prometheus.url) + platform_tenant(prometheus.url)
        configs = []
        for name in ("first", "second"):
            (tmp_path / name).mkdir()
            configs.append(write_config(tmp_path / name, free_port(), tenants))
        gaps = once(configs[0], "--tenant", "platform")
        assert gaps.returncode == 4, gaps.stderr
        assert f"{GAP_LINES} lines without data (scrape_gap" in gaps.stderr
        accepted = once(configs[1], "--tenant", "platform", "--accept-gaps")
        assert accepted.returncode == 0, accepted.stderr
        assert f"{GAP_LINES} lines without data (scrape_gap" in accepted.stderr
        clean = once(configs[0], "--tenant", "onprem")
        assert clean.returncode == 0, clean.stderr
        assert "lines without data" not in clean.stderr
