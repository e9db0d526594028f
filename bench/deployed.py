"""A deployment-shaped run: the sim out of process, the client's default limits (issue 15).

The other benchmarks run ``ccloud_sim`` inside the measured process with no
client-side rate limit, which hides what sets the pace of a real deployment: the
number of API calls and the limits they run into. This one

1. starts ``ccloud-sim serve`` as its own process on a free loopback port, with the
   Metrics API's documented limit enforced per client IP (``--rate-limit-telemetry
   300``, reference §4.3) and unlimited metrics retention, its clock frozen at
   :data:`bench._harness.NOW`;
2. backfills the tenant (``--days``, default 90) into a fresh database through real
   HTTP with the plugin's default ``http`` and ``metrics`` settings and real sleeps;
3. moves the sim's clock and the tenant's one day on and runs the tenant again from a
   fresh runtime (the next day's scheduled run of a restarted daemon).

Reported per run: wall time (and the inventory crawl's part of it), the daemon's CPU
time (this process), the writer child's and the sim's CPU time, the sim's request
counts by endpoint and status (429s included), and the run summary. Targets (issue
15, large org): next-day run under 450 calls and 25 s, backfill under 60 s.

    .venv/bin/python -m bench.deployed                       # large, 90 days
    .venv/bin/python -m bench.deployed --scale medium --days 30 --out var/deployed.json
    .venv/bin/python -m bench.deployed --keep-db /tmp/deployed-90.sqlite --next-day-runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._harness import NOW, REPO, TENANT, api_calls, quiet_logs, write_report
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import RunSummary, TenantConfig
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin

TARGETS = {"next_day_calls": 450, "next_day_wall_s": 25.0, "backfill_wall_s": 60.0}
_TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OutOfProcessSim:
    """A ``ccloud-sim serve`` child process and a client for its ``/_sim`` endpoints."""

    proc: subprocess.Popen[bytes]
    base: str

    def cpu_s(self) -> float:
        """The sim process's CPU time so far (user + system)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text(encoding="ascii").split()
        return (int(fields[13]) + int(fields[14])) / _TICKS

    def reset_stats(self) -> None:
        """Zero the sim's request counters."""
        httpx.post(f"{self.base}/_sim/stats/reset", timeout=10).raise_for_status()

    def stats(self) -> dict[str, Any]:
        """Request counts by endpoint and by endpoint and status, and fault counts."""
        body = httpx.get(f"{self.base}/_sim/stats", timeout=10).json()
        return {
            "calls": api_calls(body["requests"]),
            "statuses": dict(sorted(body["statuses"].items())),
            "faults": body["faults"],
        }

    def set_now(self, now: dt.datetime) -> None:
        """Move the sim's frozen clock."""
        httpx.post(
            f"{self.base}/_sim/clock", json={"now": now.isoformat()}, timeout=10
        ).raise_for_status()


@contextmanager
def serve_sim(scale: str, seed: int, telemetry_per_minute: int) -> Iterator[OutOfProcessSim]:
    """Run ``ccloud-sim serve`` until the block ends."""
    port = _free_port()
    cmd = [
        sys.executable, "-m", "ccloud_sim", "serve", "--scale", scale, "--seed", str(seed),
        "--now", NOW.isoformat(), "--port", str(port), "--metrics-retention-days", "unlimited",
        "--rate-limit-telemetry", str(telemetry_per_minute),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL)
    sim = OutOfProcessSim(proc, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{sim.base}/_sim/clock", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("ccloud-sim serve did not start") from None
                time.sleep(0.2)
        yield sim
    finally:
        proc.terminate()
        proc.wait(timeout=30)


class TimedPlugin(ConfluentCloudPlugin):
    """The plugin, timing its inventory crawl (``build_shared_context``)."""

    inventory_s = 0.0

    async def build_shared_context(self, tenant_id: str) -> Any:
        """Crawl as the plugin does, adding the wall time to :attr:`inventory_s`."""
        t0 = time.perf_counter()
        try:
            return await super().build_shared_context(tenant_id)
        finally:
            self.inventory_s += time.perf_counter() - t0


def _settings(base: str) -> dict[str, Any]:
    """The plugin's settings: every host at the sim, every limit at its default."""
    return {
        "api_key": "SIMKEY", "api_secret": "SIMSECRET",
        "base_url": base, "telemetry_url": base, "flink_url": base,
        # The sim is started with unlimited retention, so the backfill is split by usage.
        "metrics": {"retention_days": None},
    }  # fmt: skip


async def _run(
    sim: OutOfProcessSim, db: Path, *, days: int, now: dt.datetime, trigger: str
) -> dict[str, Any]:
    """One tenant run from a fresh runtime, measured."""
    storage = SQLiteBackend(db)
    await storage.open()
    config = TenantConfig(
        name=TENANT, ecosystem="confluent_cloud", plugin_settings=_settings(sim.base),
        lookback_days=days, cutoff_days=3, recalc_days=3, run_timeout_s=24 * 3600.0,
    )  # fmt: skip
    plugin = TimedPlugin()
    runtime = TenantRuntime(config, plugin, storage, clock=lambda: now)
    sim.reset_stats()
    sim_cpu0, children0 = sim.cpu_s(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        await runtime.start()
        summary = await runtime.run(trigger)
    finally:
        await runtime.aclose()
        await storage.close()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    writer_cpu = (children.ru_utime - children0.ru_utime) + (children.ru_stime - children0.ru_stime)
    if summary.status != "success":
        raise SystemExit(f"{trigger} run failed: {summary.error}")
    return {
        "wall_s": round(wall, 2),
        "inventory_wall_s": round(plugin.inventory_s, 2),
        "cpu_s": round(cpu, 2),
        "writer_cpu_s": round(writer_cpu, 2),
        "sim_cpu_s": round(sim.cpu_s() - sim_cpu0, 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        **_summary(summary),
        **sim.stats(),
    }


def _summary(summary: RunSummary) -> dict[str, Any]:
    return {
        "dates_calculated": summary.dates_calculated,
        "dates_skipped": summary.dates_skipped,
        "lines_read": summary.lines_read,
        "rows_written": summary.rows_written,
    }


def main(argv: list[str] | None = None) -> None:
    """Backfill, then the next day's run, against an out-of-process sim."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="large")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--telemetry-per-minute", type=int, default=300)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--keep-db", type=Path,
        help="keep the backfilled database here; if it exists, measure only the next day",
    )  # fmt: skip
    parser.add_argument("--next-day-runs", type=int, default=1)
    args = parser.parse_args(argv)
    quiet_logs()
    with (
        tempfile.TemporaryDirectory(prefix="chargeback-deployed-") as tmp,
        serve_sim(args.scale, args.seed, args.telemetry_per_minute) as sim,
    ):
        db = Path(tmp) / "bench.sqlite"
        backfill: dict[str, Any] | None = None
        if args.keep_db is None or not args.keep_db.exists():
            backfill = asyncio.run(_run(sim, db, days=args.days, now=NOW, trigger="backfill"))
            print(f"  backfill: {backfill['wall_s']} s, {backfill['calls']['total']} calls",
                  file=sys.stderr)  # fmt: skip
            if args.keep_db is not None:
                shutil.copyfile(db, args.keep_db)
        tomorrow = NOW + dt.timedelta(days=1)
        sim.set_now(tomorrow)
        runs = []
        for _ in range(args.next_day_runs):  # each from the backfilled database
            shutil.copyfile(args.keep_db or db, Path(tmp) / "next.sqlite")
            runs.append(
                asyncio.run(
                    _run(sim, Path(tmp) / "next.sqlite", days=args.days, now=tomorrow,
                         trigger="schedule")
                )
            )  # fmt: skip
            print(f"  next day: {runs[-1]['wall_s']} s", file=sys.stderr)
    next_day = sorted(runs, key=lambda r: float(r["wall_s"]))[len(runs) // 2]
    report = {
        "scale": args.scale,
        "seed": args.seed,
        "days": args.days,
        "telemetry_limit_per_minute": args.telemetry_per_minute,
        "backfill": backfill,
        "next_day": next_day,
        "next_day_walls_s": [r["wall_s"] for r in runs],
        "targets": TARGETS,
        "met": {
            "next_day_calls": next_day["calls"]["total"] < TARGETS["next_day_calls"],
            "next_day_wall_s": next_day["wall_s"] < TARGETS["next_day_wall_s"],
            "backfill_wall_s": backfill is not None
            and backfill["wall_s"] < TARGETS["backfill_wall_s"],
        },
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
