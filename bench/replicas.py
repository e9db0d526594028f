"""N daemon replicas on one PostgreSQL database vs one replica: total backfill wall time.

``ccloud-sim serve`` (frozen clock) out of process, one throwaway PostgreSQL server
(``tests/support/postgres.py``), T tenants all on the sim; for each replica count R,
a fresh database and R ``chargeback run`` processes started together
(``run_missed_on_startup``: each claims what it can, the leases share the tenants).
The figure is the time from the start until every tenant's every date is committed
and no run is left running, plus the runs each replica did.

    .venv/bin/python -m bench.replicas --tenants 12 --scale medium --days 30 --replicas 1,3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "chargeback.cli"]


def _free_port() -> int:
    sys.path.insert(0, str(REPO))
    from tests.support.process import free_port  # noqa: PLC0415

    return free_port()


def _settings(url: str, sim: str, tenants: int, days: int, var: Path) -> str:
    block = "".join(
        f"  t{i}:\n    ecosystem: confluent_cloud\n    plugin_settings:\n"
        f"      api_key: SIMKEY\n      api_secret: SIMSECRET\n      base_url: {sim}\n"
        f"      telemetry_url: {sim}\n      flink_url: {sim}\n"
        f"      http: {{requests_per_second: null}}\n"
        for i in range(tenants)
    )
    return (
        f"storage: {{url: '{url}', lease_ttl_s: 10}}\n"
        f"http: {{enabled: false}}\nlogging: {{level: warning, format: json}}\n"
        f"daemon: {{pid_file: {var / 'pid'}, heartbeat_file: {var / 'hb'}}}\n"
        f"scheduling: {{lookback_days: {days + 2}, cutoff_days: 3, jitter_s: 0,"
        " schedule: '0 0 1 1 *', run_missed_on_startup: true, max_concurrent_tenants: 2}\n"
        f"tenants:\n{block}"
    )


def _state(dsn: str, password: str) -> tuple[int, int, int]:
    with psycopg.connect(dsn, password=password) as conn:
        try:
            row = conn.execute(
                "SELECT (SELECT COUNT(*) FROM date_state),"
                " (SELECT COUNT(*) FROM runs WHERE status = 'running'),"
                " (SELECT COUNT(DISTINCT tenant_id) FROM runs WHERE status = 'success')"
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0, 0, 0
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def _measure(cluster: Any, sim: str, args: argparse.Namespace, replicas: int) -> dict[str, Any]:
    database = cluster.create_database(f"replicas_{replicas}")
    dsn = f"postgresql://{cluster.user}@{cluster.host}:{cluster.port}/{database.name}"
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        procs = []
        t0 = time.perf_counter()
        for r in range(replicas):
            var = Path(tmp) / f"r{r}"
            var.mkdir()
            config = var / "settings.yaml"
            config.write_text(_settings(dsn, sim, args.tenants, args.days, var), encoding="utf-8")
            command = [*CLI, "run", "--config", str(config)]
            quiet = subprocess.DEVNULL
            procs.append(subprocess.Popen(command, stdout=quiet, stderr=quiet))
        expected = args.tenants * args.days
        while True:
            dates, running, succeeded = _state(dsn, cluster.password)
            if dates >= expected and running == 0 and succeeded == args.tenants:
                break
            if time.perf_counter() - t0 > args.timeout:
                raise SystemExit(f"{replicas} replicas: not done after {args.timeout} s")
            time.sleep(0.5)
        wall = time.perf_counter() - t0
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    with psycopg.connect(dsn, password=cluster.password) as conn:
        claims = conn.execute("SELECT MAX(epoch), COUNT(*) FROM tenant_leases").fetchone()
    result = {"replicas": replicas, "wall_s": round(wall, 2), "dates": expected,
              "lease_rows": claims[1] if claims else 0,
              "load_avg_1m": round(os.getloadavg()[0], 2)}  # fmt: skip
    print(f"  {replicas} replica(s): {result['wall_s']} s", file=sys.stderr)
    return result


def main() -> None:
    """Start the sim and the server, measure each replica count, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=12)
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--replicas", default="1,3")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.support.postgres import running_cluster  # noqa: PLC0415

    port = _free_port()
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0).isoformat()
    sim_proc = subprocess.Popen(
        [sys.executable, "-m", "ccloud_sim", "serve", "--port", str(port), "--scale",
         args.scale, "--now", now, "--metrics-retention-days", "unlimited"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    sim = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{sim}/_sim/stats", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        with running_cluster() as cluster:
            os.environ["PGPASSWORD"] = cluster.password
            results = [_measure(cluster, sim, args, int(n)) for n in args.replicas.split(",")]
    finally:
        sim_proc.terminate()
        sim_proc.wait(10)
    report = {"tenants": args.tenants, "scale": args.scale, "days": args.days, "runs": results}
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
