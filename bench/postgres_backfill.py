"""PostgreSQL vs SQLite: one backfill of one org on each backend, in A/B pairs (issue 22).

Each run is a fresh child process: the in-process sim (frozen clock, no rate limits, as
``bench/backfill.py``), an empty database, one tenant run. ``sqlite`` is the embedded
file with its default writer child; ``postgresql`` is a database on a throwaway local
server (Debian's PostgreSQL, started once by the parent with the test suite's
``tests/support/postgres.py``: ``fsync`` off, as a local benchmark server). The pairs
alternate (sqlite, postgresql, sqlite, ...) so both see the same load; the report gives
each run and the medians, and the ratio PostgreSQL / SQLite of the median walls.

The PostgreSQL server's own CPU is the CPU its processes used during the run
(``/proc/<pid>/stat`` of the server and its backends, before and after).

    .venv/bin/python -m bench.postgres_backfill --scale large --days 90 --pairs 2
    .venv/bin/python -m bench.postgres_backfill --scale medium --days 30 --pairs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._harness import TENANT, Meter, Sim, plugin_settings, quiet_logs, write_report
from bench.backfill import lookback_for
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import TenantConfig
from chargeback.core.storage.backend import StorageBackend
from chargeback.core.storage.postgres import PostgresBackend
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.service import gcpolicy

REPO = Path(__file__).resolve().parents[1]


def _server_cpu_s() -> float:
    """CPU seconds of every ``postgres`` process so far (server and backends)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name == "postgres":
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


async def _run(backend: str, dsn: str, scale: str, days: int) -> dict[str, Any]:
    sim = Sim(scale=scale)
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        storage: StorageBackend = (
            SQLiteBackend(Path(tmp) / "db.sqlite") if backend == "sqlite" else PostgresBackend(dsn)
        )
        await storage.open()
        config = TenantConfig(
            name=TENANT, ecosystem="confluent_cloud", plugin_settings=plugin_settings(),
            lookback_days=lookback_for(days), cutoff_days=3, recalc_days=3,
            run_timeout_s=24 * 3600.0,
        )  # fmt: skip
        runtime = TenantRuntime(config, sim.plugin(), storage, clock=sim.clock.now)
        try:
            await runtime.start()
            gcpolicy.freeze_start_up()
            server_before = _server_cpu_s()
            with Meter() as meter:
                summary = await runtime.run("backfill")
            server_cpu = _server_cpu_s() - server_before
        finally:
            await runtime.aclose()
            await storage.close()
    if summary.status != "success":
        raise SystemExit(f"backfill failed: {summary.error}")
    return {
        "backend": backend, "scale": scale, "days": days, **meter.as_dict(),
        "server_cpu_s": round(server_cpu, 3) if backend == "postgresql" else None,
        "sim_cpu_s": round(sim.transport.sim_cpu_s, 3),
        "rows_written": summary.rows_written, "lines_read": summary.lines_read,
        "dates_calculated": summary.dates_calculated,
        "rows_per_s": round(summary.rows_written / meter.wall_s),
    }  # fmt: skip


def _child(args: argparse.Namespace) -> None:
    quiet_logs()
    gcpolicy.configure(gcpolicy.THRESHOLDS)
    result = asyncio.run(_run(args.backend, args.dsn or "", args.scale, args.days))
    print(json.dumps(result))


def _one(backend: str, dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.postgres_backfill", "--child", "--backend", backend,
           "--scale", args.scale, "--days", str(args.days)]  # fmt: skip
    env = dict(os.environ)
    if backend == "postgresql":
        cmd += ["--dsn", dsn]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"{backend} run failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {backend:<10} wall={result['wall_s']} s cpu={result['cpu_s']} s "
          f"server_cpu={result['server_cpu_s']} rows={result['rows_written']}",
          file=sys.stderr)  # fmt: skip
    return result


def _parent(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO))
    from tests.support.postgres import running_cluster  # noqa: PLC0415  (a bench-only server)

    runs: list[dict[str, Any]] = []
    with running_cluster() as cluster:
        os.environ["PGPASSWORD"] = cluster.password
        for pair in range(args.pairs):
            database = cluster.create_database(f"bench_{pair}")
            dsn = f"postgresql://{cluster.user}@{cluster.host}:{cluster.port}/{database.name}"
            runs.append(_one("sqlite", "", args))
            runs.append(_one("postgresql", dsn, args))
    medians = {
        backend: statistics.median(r["wall_s"] for r in runs if r["backend"] == backend)
        for backend in ("sqlite", "postgresql")
    }
    report = {
        "scale": args.scale, "days": args.days, "pairs": args.pairs, "runs": runs,
        "median_wall_s": medians,
        "ratio_postgresql_to_sqlite": round(medians["postgresql"] / medians["sqlite"], 2),
    }  # fmt: skip
    print(f"median wall: sqlite {medians['sqlite']} s, postgresql {medians['postgresql']} s "
          f"(ratio {report['ratio_postgresql_to_sqlite']})", file=sys.stderr)  # fmt: skip
    write_report(report, args.out)


def main() -> None:
    """Parse the command line and run the parent or one child."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="large")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
    else:
        _parent(args)


if __name__ == "__main__":
    main()
