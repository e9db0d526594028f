"""What ownership attribution costs a backfill (issue 18): interleaved A/B, same session.

Each run is a fresh child process (as ``bench/backfill.py``): build the sim, backfill
``--days`` into an empty SQLite file, either without an attributor (A) or with the
demo rule set of ``settings.yaml`` (B). Runs alternate A, B, A, B, ... so drift of a
shared machine hits both alike. B also reports the time spent inside the attribution
step's own Python work (grouping the rows by key, deciding, encoding).

    .venv/bin/python -m bench.ownership --scale large --days 90 --pairs 2
    .venv/bin/python -m bench.ownership --scale small --days 30 --pairs 3   # quick

Figures per mode: median wall s, CPU s (this process and the writer child), and for B
the attribution's own CPU s and its share of B's CPU; the A/B difference of the
medians, in per cent of A.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._harness import TENANT, Meter, Sim, quiet_logs, run_children, write_report
from bench.backfill import lookback_for
from chargeback.core.ownership import attributor as attributor_mod
from chargeback.core.ownership.attribution import DateAttribution
from chargeback.core.ownership.attributor import Attributor
from chargeback.core.ownership.rules import compile_rules
from chargeback.core.storage.ownership import ownership_store
from chargeback.service import gcpolicy
from chargeback.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
GOAL_OVERHEAD = 0.05
"""Attribution should cost under 5 % of the backfill (issue 18)."""


class _Cpu:
    """CPU seconds spent in the attribution's own Python work (grouping, deciding,
    encoding), counted by wrapping those functions for the bench only. The SQL of an
    attribution runs in the database thread beside the next date's work, and its
    wait for the write lock is no cost; the A/B medians show what all of it adds."""

    def __init__(self) -> None:
        self.cpu_s = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu_s += time.thread_time() - t0

        return timed


async def _run(scale: str, days: int, seed: int, mode: str, db: Path) -> dict[str, Any]:
    sim = Sim(scale=scale, seed=seed)
    runtime, storage = await sim.runtime(db, lookback_days=lookback_for(days))
    cpu = _Cpu()
    if mode == "B":
        rules = compile_rules(load_settings(REPO / "settings.yaml").ownership, TENANT)
        store = ownership_store(storage)
        runtime.attributor = Attributor(TENANT, rules, store, storage, clock=sim.clock.now)
        attributor_mod.attribute = cpu.wrap(attributor_mod.attribute)  # type: ignore[attr-defined]
        attributor_mod.key_amounts = cpu.wrap(attributor_mod.key_amounts)  # type: ignore[attr-defined]
        encode = DateAttribution.encode
        DateAttribution.encode = cpu.wrap(encode)  # type: ignore[method-assign]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        await runtime.start()
        gcpolicy.freeze_start_up()
        with Meter() as meter:
            summary = await runtime.run("bench")
    finally:
        await runtime.aclose()
        await storage.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if summary.status != "success":
        raise SystemExit(f"backfill failed: {summary.error}")
    writer_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "mode": mode,
        "scale": scale,
        "days": days,
        "wall_s": round(meter.wall_s, 3),
        "cpu_s": round(meter.cpu_s + writer_cpu, 3),
        "rows_written": summary.rows_written,
        "attribution_cpu_s": round(cpu.cpu_s, 3),
        "load_avg_1m": round(meter.load_avg_1m, 2),
    }


def _child(args: argparse.Namespace) -> dict[str, Any]:
    quiet_logs()
    gcpolicy.configure()
    with tempfile.TemporaryDirectory(prefix="bench-ownership-") as tmp:
        return asyncio.run(_run(args.scale, args.days, args.seed, args.mode, Path(tmp) / "db"))


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main() -> None:
    """Alternate A and B children; print medians and the overhead."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="large")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode", choices=["A", "B"], default="A", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args)))
        return
    base = ["--scale", args.scale, "--days", str(args.days), "--seed", str(args.seed)]
    runs: list[dict[str, Any]] = []
    for i in range(args.pairs):
        print(f"pair {i + 1}/{args.pairs}", file=sys.stderr)
        for mode in ("A", "B"):
            runs += run_children("bench.ownership", [*base, "--mode", mode], 1)
    a = [r for r in runs if r["mode"] == "A"]
    b = [r for r in runs if r["mode"] == "B"]
    summary = {
        "median_wall_s_A": _median(a, "wall_s"),
        "median_wall_s_B": _median(b, "wall_s"),
        "median_cpu_s_A": _median(a, "cpu_s"),
        "median_cpu_s_B": _median(b, "cpu_s"),
        "median_attribution_cpu_s": _median(b, "attribution_cpu_s"),
    }
    summary["wall_overhead"] = round(summary["median_wall_s_B"] / summary["median_wall_s_A"] - 1, 4)
    summary["cpu_overhead"] = round(summary["median_cpu_s_B"] / summary["median_cpu_s_A"] - 1, 4)
    summary["attribution_cpu_share_of_B"] = round(
        summary["median_attribution_cpu_s"] / summary["median_cpu_s_B"], 4
    )
    print(
        f"{args.scale} x {args.days} days, {args.pairs} pairs:"
        f" wall A {summary['median_wall_s_A']:.2f} s,"
        f" B {summary['median_wall_s_B']:.2f} s ({summary['wall_overhead']:+.1%}); CPU A"
        f" {summary['median_cpu_s_A']:.2f} s, B {summary['median_cpu_s_B']:.2f} s"
        f" ({summary['cpu_overhead']:+.1%}); attribution's own Python CPU"
        f" {summary['median_attribution_cpu_s']:.2f} s ="
        f" {summary['attribution_cpu_share_of_B']:.1%} of B's CPU (goal < {GOAL_OVERHEAD:.0%})",
        file=sys.stderr,
    )
    write_report(
        {
            "benchmark": "ownership",
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "summary": summary,
            "runs": runs,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
