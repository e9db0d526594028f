"""Latency of the query API on a backfilled database (issue 19's "Fast" section).

Serves the daemon's app (``make_app`` with the API routes and a read-only backend of
``--db``, on its ``HttpServer`` thread, as the daemon does) and asks each query
``--requests`` times over loopback with httpx, in turn, so every query sees the same
machine load; ``/metrics`` is scraped between them to show it keeps its latency::

    .venv/bin/python -m bench.backfill --days 90 --runs 1 --no-floor --keep-db /tmp/qapi-bench
    .venv/bin/python -m bench.query_api --db /tmp/qapi-bench/backfill-large-s1-d90.sqlite

Reports p50 / p90 / p99 (ms, client side, whole answer read) per query.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import statistics
import time
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

from bench._harness import quiet_logs, write_report
from bench.http_latency import Health, Source


def _window(db: Path) -> tuple[str, str, str, int]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        tenant, first, last, rows = conn.execute(
            "SELECT tenant_id, MIN(date), MAX(date), SUM(row_count) FROM date_state GROUP BY 1"
        ).fetchone()
    return tenant, first, last, int(rows)


def _lines(db: Path, tenant: str, n: int) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT line_id, date FROM billing_lines WHERE tenant_id = ? ORDER BY random() LIMIT ?",
            (tenant, n),
        ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def _stats(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2),
            "p90_ms": round(cuts[89], 2), "p99_ms": round(cuts[98], 2),
            "max_ms": round(ms[-1], 2)}  # fmt: skip


async def _time(client: httpx.AsyncClient, path: str, params: Mapping[str, str]) -> float:
    start = time.perf_counter()
    response = await client.get(path, params=params)
    await response.aread()
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"{path} {dict(params)} -> {response.status_code}: {response.text}")
    return elapsed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Serve the app over ``--db`` and time each query."""
    from chargeback.core.storage.sqlite import SQLiteBackend  # noqa: PLC0415
    from chargeback.service import api  # noqa: PLC0415
    from chargeback.service.api._auth import ApiTokens  # noqa: PLC0415
    from chargeback.service.http import HttpServer, make_app  # noqa: PLC0415

    tenant, first, last, rows = _window(args.db)
    window = f"{first},{last}"
    app = make_app(
        Source(1000), Health(), storage=lambda: SQLiteBackend(args.db, read_only=True),
        routes=api.routes(tokens=ApiTokens.from_text("")),
    )  # fmt: skip
    server = HttpServer(app, "127.0.0.1", 0)
    await server.start()
    base = {"tenant": tenant, "window": window}
    queries: dict[str, dict[str, str]] = {
        "by team, step=1d": {**base, "aggregate": "team", "step": "1d"},
        "by team and product_type (the UI's chart)": {**base, "aggregate": "team,product_type",
                                                       "limit": "10000"},
        "by product_type, step=1d": {**base, "aggregate": "product_type", "step": "1d"},
        "by environment, step=1d": {**base, "aggregate": "environment", "step": "1d"},
        "by identity, whole window": {**base, "aggregate": "identity", "limit": "10000"},
        "by identity, step=1d, top 10": {**base, "aggregate": "identity", "step": "1d",
                                         "limit": "10"},
        "one identity, step=1d": {**base, "aggregate": "product_type", "step": "1d"},
    }  # fmt: skip
    results: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=120) as c:
            top = (await c.get("/api/v1/allocation", params={**base, "limit": "1"})).json()
            ident = top["sets"][0]["entries"][0]["key"]["identity"]
            queries["one identity, step=1d"]["filter"] = f"identity:{ident}"
            metrics: list[float] = []
            for name, params in queries.items():
                if args.only and not any(word in name for word in args.only):
                    continue
                samples = []
                for _ in range(args.requests):
                    samples.append(await _time(c, "/api/v1/allocation", params))
                    metrics.append(await _time(c, "/metrics", {}))
                results[name] = _stats(samples)
                print(f"{name:32} {results[name]}", flush=True)
            explain = []
            for line_id, day in _lines(args.db, tenant, args.requests * 3):
                params = {"tenant": tenant, "line_id": line_id, "date": day}
                explain.append(await _time(c, "/api/v1/explain", params))
            results["explain (with date)"] = _stats(explain)
            print(f"{'explain (with date)':32} {results['explain (with date)']}", flush=True)
            results["/metrics between queries"] = _stats(metrics)
    finally:
        await server.aclose()
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return {"db": str(args.db), "rows": rows, "window": window, "requests": args.requests,
            "at": at, "queries": results}  # fmt: skip


def main() -> None:
    """Parse the arguments, run, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="a backfilled SQLite file")
    parser.add_argument("--requests", type=int, default=20, help="requests per query")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument(
        "--only", action="append", help="only the queries whose name holds this (repeatable)"
    )
    args = parser.parse_args()
    quiet_logs()
    write_report(asyncio.run(run(args)), args.out)


if __name__ == "__main__":
    main()
