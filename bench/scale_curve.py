"""Scale curve: the backfill from tiny to xlarge, to show cost grows linearly (issue 7).

Runs ``bench.backfill`` children (fresh process each, in-process sim, empty database)
for every scale with the same number of days (default 14: xlarge, five large orgs,
takes minutes per run on this machine), and reports per scale: wall and CPU time,
peak RSS, billing lines, chargeback rows, CPU microseconds per billing line and per
row, and a least-squares line ``cpu_s = a + b * rows`` with its R².

    .venv/bin/python -m bench.scale_curve
    .venv/bin/python -m bench.scale_curve --scales tiny,small,medium,large --days 30 --runs 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from bench._harness import median_of, run_children, write_report


def fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares ``y = a + b x`` and R²."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    b = sxy / sxx if sxx else 0.0
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return {"a": a, "b": b, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0}


def main() -> None:
    """Run every scale and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="tiny,small,medium,large,xlarge")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for scale in args.scales.split(","):
        print(f"scale {scale}, {args.days} days, {args.runs} run(s)...", file=sys.stderr)
        child = ["--scale", scale, "--days", str(args.days), "--seed", str(args.seed), "--no-floor"]
        runs = run_children("bench.backfill", child, args.runs)
        first = runs[0]
        cpu = median_of(runs, "cpu_s")
        rows.append(
            {
                "scale": scale,
                "days": args.days,
                "runs": len(runs),
                "lines": first["lines_read"],
                "rows": first["rows_written"],
                "api_calls": first["api_calls"]["total"],
                "median_wall_s": median_of(runs, "wall_s"),
                "median_cpu_s": cpu,
                "median_peak_rss_mb": median_of(runs, "peak_rss_mb"),
                "median_rss_before_mb": median_of(runs, "rss_before_mb"),
                "cpu_us_per_line": round(cpu / first["lines_read"] * 1e6, 1),
                "cpu_us_per_row": round(cpu / first["rows_written"] * 1e6, 2),
            }
        )
    report: dict[str, Any] = {
        "benchmark": "scale_curve",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scales": rows,
    }
    if len(rows) >= 3:
        cpus = [r["median_cpu_s"] for r in rows]
        report["fit_cpu_vs_rows"] = fit([r["rows"] for r in rows], cpus)
        report["fit_cpu_vs_lines"] = fit([r["lines"] for r in rows], cpus)
    print(
        "\n  scale  | lines   | rows      | wall s | cpu s  | peak RSS MB | us/line | us/row",
        file=sys.stderr,
    )
    for r in rows:
        print(
            f"  {r['scale']:<6} | {r['lines']:>7} | {r['rows']:>9} | {r['median_wall_s']:>6.1f} | "
            f"{r['median_cpu_s']:>6.1f} | {r['median_peak_rss_mb']:>11.0f} | "
            f"{r['cpu_us_per_line']:>7.0f} | {r['cpu_us_per_row']:>6.1f}",
            file=sys.stderr,
        )
    if "fit_cpu_vs_rows" in report:
        f = report["fit_cpu_vs_rows"]
        print(
            f"  cpu_s = {f['a']:.2f} + {f['b'] * 1e6:.2f} us x rows (R² {f['r2']:.4f})",
            file=sys.stderr,
        )
    write_report(report, args.out)


if __name__ == "__main__":
    main()
