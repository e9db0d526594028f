"""FOCUS export benchmark: a backfilled database's days as one FOCUS dataset (issue 20).

Each measurement runs in a fresh child process: open the database read-only, then
export every calculated date of the tenant into one CSV file through the same code the
``focus`` emitter and ``chargeback export focus`` use (:func:`build_context` +
:func:`export_days`: one date's lines and rows in memory at a time). Figures: wall and
CPU time, rows/s, peak RSS and the extra memory over the RSS before the export (the
interpreter, the imports and the open database), the file's size.

    .venv/bin/python -m bench.backfill --scale large --days 30 --keep-db /tmp/cb-bench --no-floor
    .venv/bin/python -m bench.focus_export --db /tmp/cb-bench/backfill-large-s1-d30.sqlite --runs 3

Goal (issue 20): the large organization's 30 days in under 30 s and 300 MB extra.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._harness import TENANT, Meter, median_of, quiet_logs, run_children, write_report
from chargeback.core.emitters.focus.export import (
    FocusOptions,
    build_context,
    export_days,
    statuses,
)
from chargeback.core.storage.sqlite import SQLiteBackend

GOAL_WALL_S = 30.0
GOAL_EXTRA_MB = 300.0


async def _export(db: Path, version: str, out: Path) -> dict[str, Any]:
    storage = SQLiteBackend(db, read_only=True, writer_process_min_rows=None)
    await storage.open()
    try:
        days = sorted(await storage.get_date_states(TENANT, dt.date.min, dt.date.max))
        with Meter() as meter:
            day_status, month_status = await statuses(storage, TENANT, dt.date.min, dt.date.max)
            ctx = await build_context(
                storage, TENANT, FocusOptions(version=version),
                day_status=day_status, month_status=month_status,
            )  # fmt: skip
            result = await export_days(storage, ctx, days, out)
    finally:
        await storage.close()
    figures = meter.as_dict()
    return {
        "version": version,
        "days": len(result.days),
        "rows": result.rows,
        **figures,
        "extra_rss_mb": round(figures["peak_rss_mb"] - figures["rss_before_mb"], 1),
        "rows_per_s": round(result.rows / meter.wall_s),
    }


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One export, in this process."""
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="bench-focus-") as tmp:
        out = Path(tmp) / "focus.csv"
        result = asyncio.run(_export(args.db, args.version, out))
        result["file_mb"] = round(out.stat().st_size / 2**20, 1)
        return result


def main() -> None:
    """Parse the arguments; run the children (or be one)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="a backfilled SQLite file")
    parser.add_argument("--version", default="1.3", choices=["1.2", "1.3"])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    runs = run_children(
        "bench.focus_export", ["--db", str(args.db), "--version", args.version], args.runs
    )
    report = {
        "runs": runs,
        "median_wall_s": median_of(runs, "wall_s"),
        "median_cpu_s": median_of(runs, "cpu_s"),
        "median_extra_rss_mb": median_of(runs, "extra_rss_mb"),
        "goal_wall_s": GOAL_WALL_S,
        "goal_extra_mb": GOAL_EXTRA_MB,
    }
    print(
        f"FOCUS {args.version}: {runs[0]['rows']} rows over {runs[0]['days']} days, median "
        f"{report['median_wall_s']:.1f} s wall ({report['median_cpu_s']:.1f} s CPU), "
        f"{report['median_extra_rss_mb']:.0f} MB extra RSS, over {len(runs)} runs",
        file=sys.stderr,
    )
    write_report(report, args.out)


if __name__ == "__main__":
    main()
