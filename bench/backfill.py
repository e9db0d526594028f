"""Backfill benchmark: a sim org of one scale, N days, from an empty database (issue 7).

Each measurement runs in a fresh child process (so ``ru_maxrss`` is that backfill's
peak): build the sim (``ccloud_sim`` in-process, no rate limits), open an empty SQLite
file, run the tenant once, then measure the raw SQLite floor (``bench/sqlite_floor.py``)
for the same number of rows in the same process. The parent prints one JSON document
(every run plus medians) and a human summary on stderr.

    .venv/bin/python -m bench.backfill                       # large, 90 days, 1 run
    .venv/bin/python -m bench.backfill --days 30,90,180      # the RSS-vs-days table
    .venv/bin/python -m bench.backfill --scale medium --days 30 --runs 3 --out f.json

Figures: wall and CPU time of the run, peak RSS (and RSS before the run: the sim and
the interpreter), billing lines/s, chargeback rows/s, API calls by endpoint (the sim's
stats), Metrics API queries/pages and the expected counts (API economy), the floor
rows/s and the ratio floor / achieved.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import sqlite_floor
from bench._harness import (
    TENANT,
    Meter,
    Sim,
    median_of,
    peak_rss_of,
    quiet_logs,
    run_children,
    write_report,
)
from chargeback.service import gcpolicy

GOAL_WALL_S = 60.0
GOAL_FLOOR_RATIO = 10.0
GOAL_RSS_MB = 500.0
BILLING_DAYS_PER_QUERY = 30
BILLING_PAGE_SIZE = 10_000
CUTOFF_DAYS = 3


def lookback_for(days: int, cutoff_days: int = CUTOFF_DAYS) -> int:
    """The ``lookback_days`` whose window holds exactly ``days`` settled dates."""
    return days + cutoff_days - 1


def expected_calls(db: Path) -> dict[str, Any]:
    """The API economy's expected counts, from what the backfill stored.

    Metrics: one query per (Kafka cluster, byte metric) and per (Flink pool, CFU
    metric) billed in the window, one page each unless a query has more than 1000
    groups. Billing: per 30-day window, ceil(lines / 10000) pages (at least one).
    """
    con = sqlite3.connect(db)
    try:
        clusters = con.execute(
            "SELECT COUNT(DISTINCT resource_id) FROM billing_lines "
            "WHERE tenant_id = ? AND product_type LIKE 'KAFKA_NETWORK_%'",
            (TENANT,),
        ).fetchone()[0]
        pools = con.execute(
            "SELECT COUNT(DISTINCT resource_id) FROM billing_lines "
            "WHERE tenant_id = ? AND product_type LIKE 'FLINK_%'",
            (TENANT,),
        ).fetchone()[0]
        per_day = dict(
            con.execute(
                "SELECT date, COUNT(*) FROM billing_lines WHERE tenant_id = ? GROUP BY date",
                (TENANT,),
            ).fetchall()
        )
        states = [
            r[0]
            for r in con.execute(
                "SELECT date FROM date_state WHERE tenant_id = ? ORDER BY date", (TENANT,)
            )
        ]
    finally:
        con.close()
    windows = [states[i : i + BILLING_DAYS_PER_QUERY] for i in range(0, len(states), 30)]
    billing_pages = [
        max(1, math.ceil(sum(per_day.get(d, 0) for d in w) / BILLING_PAGE_SIZE)) for w in windows
    ]
    return {
        "kafka_clusters_billed": clusters,
        "flink_pools_billed": pools,
        "metrics_queries": clusters * 2 + pools,
        "billing_windows": len(windows),
        "billing_calls": sum(billing_pages),
        "billing_pages_per_window": billing_pages,
    }


def gc_setting(text: str) -> tuple[int, int, int] | None:
    """``--gc``: ``process`` (the CLI's policy), ``default`` (Python's), or ``T0,T1,T2``."""
    if text == "default":
        return None
    if text == "process":
        return gcpolicy.THRESHOLDS
    young, middle, old = (int(t) for t in text.split(","))
    return young, middle, old


async def _backfill(scale: str, days: int, seed: int, db: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    sim = Sim(scale=scale, seed=seed)
    sim_build_s = time.perf_counter() - t0
    runtime, storage = await sim.runtime(db, lookback_days=lookback_for(days))
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        await runtime.start()
        gcpolicy.freeze_start_up()  # as the daemon does once it started (if configured)
        sim.reset_stats()
        with Meter() as meter:
            summary = await runtime.run("backfill")
        writer_hwm_mb = peak_rss_of(storage.writer_pid)
    finally:
        await runtime.aclose()
        await storage.close()  # waits for the writer child, so its rusage is in
    if summary.status != "success":
        raise SystemExit(f"backfill failed: {summary.error}")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    writer_cpu_s = (children.ru_utime + children.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    # The child's own peak (VmHWM after exec). ru_maxrss of children is no good here:
    # it counts the parent's pages the child shared between fork and exec.
    writer_rss_mb = writer_hwm_mb
    total_cpu_s = meter.cpu_s + writer_cpu_s  # this process and its writer child
    wall = meter.wall_s
    return {
        "scale": scale,
        "days": days,
        "seed": seed,
        "sim_build_s": round(sim_build_s, 3),
        **meter.as_dict(),
        "writer_cpu_s": round(writer_cpu_s, 3),
        "writer_peak_rss_mb": round(writer_rss_mb, 1),
        "peak_rss_with_writer_mb": round(meter.peak_rss_mb + writer_rss_mb, 1),
        "total_cpu_s": round(total_cpu_s, 3),
        "sim_cpu_s": round(sim.transport.sim_cpu_s, 3),
        "chargeback_cpu_s": round(total_cpu_s - sim.transport.sim_cpu_s, 3),
        "dates_calculated": summary.dates_calculated,
        "lines_read": summary.lines_read,
        "rows_written": summary.rows_written,
        "lines_per_s": round(summary.lines_read / wall),
        "rows_per_s": round(summary.rows_written / wall),
        "rows_per_cpu_s": round(summary.rows_written / total_cpu_s),
        "rows_per_chargeback_cpu_s": round(
            summary.rows_written / (total_cpu_s - sim.transport.sim_cpu_s)
        ),
        "api_calls": sim.calls(),
        "metrics": sim.transport.summary(),
        "expected": expected_calls(db),
    }


def keep(db: Path, target: Path) -> None:
    """Checkpoint ``db`` and copy it to ``target`` (the steady-state benchmark's cache)."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    shutil.copyfile(db, partial)
    partial.rename(target)


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One backfill and its floor, in this process."""
    quiet_logs()
    thresholds = gc_setting(args.gc)
    if thresholds is not None:
        gcpolicy.configure(thresholds)  # as `chargeback run` and `once` do
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        db = Path(tmp) / "db.sqlite"
        result = asyncio.run(_backfill(args.scale, args.days, args.seed, db))
        result["db_mb"] = round(db.stat().st_size / 2**20, 1)
        if args.keep_db is not None:
            keep(db, args.keep_db / f"backfill-{args.scale}-s{args.seed}-d{args.days}.sqlite")
        if not args.no_floor:
            floor = sqlite_floor.measure(result["rows_written"], Path(tmp))
            result["floor_rows_per_s"] = round(floor)
            result["floor_s"] = round(result["rows_written"] / floor, 3)
            result["floor_ratio"] = round(floor / result["rows_per_s"], 2)
            result["floor_ratio_cpu"] = round(floor / result["rows_per_cpu_s"], 2)
            result["floor_ratio_chargeback_cpu"] = round(
                floor / result["rows_per_chargeback_cpu_s"], 2
            )
    return result


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the numeric figures over runs of the same scale and days."""
    keys = [
        "wall_s", "cpu_s", "peak_rss_mb", "rss_before_mb", "lines_per_s", "rows_per_s",
        "rows_per_cpu_s", "floor_rows_per_s", "floor_ratio", "floor_ratio_cpu", "sim_cpu_s",
        "chargeback_cpu_s", "floor_ratio_chargeback_cpu", "load_avg_1m", "writer_cpu_s",
        "writer_peak_rss_mb", "peak_rss_with_writer_mb", "total_cpu_s",
        "peak_rss_with_children_mb",
    ]  # fmt: skip
    first = runs[0]
    out: dict[str, Any] = {
        "scale": first["scale"],
        "days": first["days"],
        "runs": len(runs),
        "lines_read": first["lines_read"],
        "rows_written": first["rows_written"],
        "api_calls": first["api_calls"],
        "metrics": first["metrics"],
        "expected": first["expected"],
    }
    for key in keys:
        if key in first:
            out[f"median_{key}"] = round(median_of(runs, key), 3)
    if len(runs) > 1:
        out["spread_wall_s"] = [min(r["wall_s"] for r in runs), max(r["wall_s"] for r in runs)]
        out["stdev_wall_s"] = round(statistics.stdev(r["wall_s"] for r in runs), 3)
    return out


def human(agg: dict[str, Any]) -> str:
    """A few lines a person reads."""
    m = agg
    calls = m["api_calls"]
    metrics_calls = calls.get("POST /v2/metrics/cloud/query", 0)
    billing_calls = calls.get("GET /billing/v1/costs", 0)
    exp = m["expected"]
    lines = [
        f"backfill {m['scale']} x {m['days']} days ({m['runs']} run(s), medians):",
        f"  wall {m['median_wall_s']:.1f} s (goal <= {GOAL_WALL_S:.0f}), "
        f"cpu {m['median_cpu_s']:.1f} s (sim {m['median_sim_cpu_s']:.1f} s) "
        f"+ writer child {m.get('median_writer_cpu_s', 0):.1f} s, "
        f"peak RSS {m['median_peak_rss_mb']:.0f} MB "
        f"+ writer child {m.get('median_writer_peak_rss_mb', 0):.0f} MB, "
        f"both at once {m.get('median_peak_rss_with_children_mb', 0):.0f} MB "
        f"(before run {m['median_rss_before_mb']:.0f} MB; goal < {GOAL_RSS_MB:.0f})",
        f"  {m['lines_read']} billing lines ({m['median_lines_per_s']:.0f}/s), "
        f"{m['rows_written']} chargeback rows ({m['median_rows_per_s']:.0f}/s wall, "
        f"{m['median_rows_per_cpu_s']:.0f}/s cpu)",
    ]
    if "median_floor_rows_per_s" in m:
        lines.append(
            f"  SQLite floor {m['median_floor_rows_per_s']:.0f} rows/s: "
            f"{m['median_floor_ratio']:.1f}x slower by wall, {m['median_floor_ratio_cpu']:.1f}x "
            f"by cpu, {m.get('median_floor_ratio_chargeback_cpu', 0):.1f}x by chargeback's "
            f"cpu (without the sim's) (goal <= {GOAL_FLOOR_RATIO:.0f}x)"
        )
    lines.append(
        f"  API calls {calls['total']}: metrics {metrics_calls} "
        f"(queries {m['metrics']['queries']}, expected {exp['metrics_queries']} = "
        f"{exp['kafka_clusters_billed']} clusters x 2 + {exp['flink_pools_billed']} pools), "
        f"billing {billing_calls} (expected {exp['billing_calls']} over "
        f"{exp['billing_windows']} windows)"
    )
    return "\n".join(lines)


def main() -> None:
    """Parse the options; run children (or be one) and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="large")
    parser.add_argument("--days", default="90", help="one number or a comma list (30,90,180)")
    parser.add_argument("--runs", type=int, default=1, help="runs per number of days")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-floor", action="store_true", help="skip the SQLite floor")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument(
        "--keep-db", type=Path, metavar="DIR", help="keep the backfilled databases in DIR"
    )
    parser.add_argument(
        "--gc",
        default="process",
        help="collector policy: process (the CLI's, default), default (Python's), or T0,T1,T2",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.days = int(args.days)
        print(json.dumps(child(args)))
        return
    report: dict[str, Any] = {
        "benchmark": "backfill",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "results": [],
    }
    for days in [int(d) for d in str(args.days).split(",")]:
        print(f"backfill {args.scale} x {days} days, {args.runs} run(s)...", file=sys.stderr)
        extra = ["--no-floor"] if args.no_floor else []
        if args.keep_db is not None:
            extra += ["--keep-db", str(args.keep_db)]
        child_args = ["--scale", args.scale, "--days", str(days), "--seed", str(args.seed)]
        child_args += ["--gc", args.gc, *extra]
        runs = run_children("bench.backfill", child_args, args.runs)
        agg = aggregate(runs)
        report["results"].append({"summary": agg, "runs": runs})
        print(human(agg), file=sys.stderr)
    if len(report["results"]) > 1:
        print("\n  days | wall s | cpu s | peak RSS MB | rows | metrics calls", file=sys.stderr)
        for entry in report["results"]:
            s = entry["summary"]
            print(
                f"  {s['days']:>4} | {s['median_wall_s']:>6.1f} | {s['median_cpu_s']:>5.1f} | "
                f"{s['median_peak_rss_mb']:>11.0f} | {s['rows_written']} | "
                f"{s['api_calls'].get('POST /v2/metrics/cloud/query', 0)}",
                file=sys.stderr,
            )
    write_report(report, args.out)


if __name__ == "__main__":
    main()
