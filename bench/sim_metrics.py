"""Micro-benchmark of ccloud_sim's Metrics API handler (``POST /v2/metrics/cloud/query``).

What the sim costs per query shape, in-process through ``httpx.ASGITransport`` (the
client only reads the bytes; it does not decode them), for one org scale and a range
of settled days ending three days before the benchmarks' frozen "now":

- ``per_principal``: one query per Kafka cluster and metric (request and response
  bytes), ``P1D``, ``group_by [metric.principal_id]``: what the engine sends today.
- ``compound``: one query per metric for every cluster at once (an OR of
  ``resource.kafka.id`` EQ filters, ``group_by [resource.kafka.id,
  metric.principal_id]``, pages of 1000 groups): the same figures in fewer calls.
- ``topics`` (skipped by a sim without topic metrics): ``received_bytes`` and
  ``sent_bytes`` by ``metric.topic`` for every cluster at once, and ``retained_bytes``
  by ``[metric.topic, metric.partition]``.

Every repetition builds a fresh :class:`~ccloud_sim.Organization` (its caches start
cold, as in a backfill), outside the timed part. The sim's retention is asked to be
unlimited so every day has data. Run from the repository root::

    .venv/bin/python -m bench.sim_metrics --scale large --days 90 --runs 3

``PYTHONPATH=<other checkout>/src`` measures another version of the sim alike (the
script only uses ``create_app``'s documented arguments, and ``metrics_retention_days``
where the sim has it), which is how A/B figures in ``bench/README.md`` are taken.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import inspect
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from ccloud_sim import Organization, SimClock, create_app

NOW = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)
PATH = "/v2/metrics/cloud/query"
REQUEST, RESPONSE = (
    "io.confluent.kafka.server/request_bytes",
    "io.confluent.kafka.server/response_bytes",
)
TOPIC_METRICS = (
    "io.confluent.kafka.server/received_bytes",
    "io.confluent.kafka.server/sent_bytes",
)
RETAINED = "io.confluent.kafka.server/retained_bytes"


def _body(metric: str, clusters: list[str], group_by: list[str], days: int) -> dict[str, Any]:
    end = NOW.date() - dt.timedelta(days=3)
    start = end - dt.timedelta(days=days)
    eqs = [{"field": "resource.kafka.id", "op": "EQ", "value": c} for c in clusters]
    return {
        "aggregations": [{"metric": metric}],
        "filter": eqs[0] if len(eqs) == 1 else {"op": "OR", "filters": eqs},
        "granularity": "P1D",
        "group_by": group_by,
        "intervals": [f"{start}T00:00:00Z/{end}T00:00:00Z"],
        "limit": 1000,
        "format": "FLAT",
    }


def _bodies(scenario: str, org: Organization, days: int) -> Iterator[dict[str, Any]]:
    ids = sorted(c.id for c in org.inventory.clusters)
    if scenario == "per_principal":
        for metric in (REQUEST, RESPONSE):
            for cid in ids:
                yield _body(metric, [cid], ["metric.principal_id"], days)
    elif scenario == "compound":
        for metric in (REQUEST, RESPONSE):
            yield _body(metric, ids, ["resource.kafka.id", "metric.principal_id"], days)
    else:
        for metric in TOPIC_METRICS:
            yield _body(metric, ids, ["resource.kafka.id", "metric.topic"], days)
        yield _body(RETAINED, ids, ["resource.kafka.id", "metric.topic", "metric.partition"], days)


async def _run(scenario: str, scale: str, days: int) -> dict[str, Any] | None:
    org = Organization(1, scale, NOW.date())
    extra: dict[str, Any] = {}
    if "metrics_retention_days" in inspect.signature(create_app).parameters:
        extra["metrics_retention_days"] = None
    app = create_app(org, clock=SimClock(NOW), **extra)
    transport = httpx.ASGITransport(app=app)
    calls = rows_bytes = 0
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sim", auth=("SIMKEY", "SIMSECRET"), timeout=600
    ) as client:
        wall, cpu = time.perf_counter(), time.process_time()
        for body in _bodies(scenario, org, days):
            token: str | None = None
            while True:
                r = await client.post(
                    PATH, json=body, params={"page_token": token} if token else {}
                )
                calls += 1
                if r.status_code == 400 and scenario == "topics":
                    return None  # a sim without topic metrics
                r.raise_for_status()
                rows_bytes += len(r.content)
                token = _next_token(r.content)
                if not token:
                    break
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "calls": calls,
            "mb": round(rows_bytes / 1e6, 1)}  # fmt: skip


def _next_token(content: bytes) -> str | None:
    """The next page token, read from the tail of the body (the meta object is last)."""
    tail = content[content.rfind(b'"meta"') :]
    meta: dict[str, Any] = json.loads(b"{" + tail)["meta"]
    token: str | None = meta["pagination"].get("next_page_token")
    return token


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(float(statistics.median(r[key] for r in runs)), 3)


def main(argv: list[str] | None = None) -> int:
    """Measure each scenario ``--runs`` times; print JSON on stdout, a summary on stderr."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="large")
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--scenarios", default="per_principal,compound,topics")
    a = p.parse_args(argv)
    out: dict[str, Any] = {"scale": a.scale, "days": a.days, "runs": a.runs, "scenarios": {}}
    runner: Callable[[str], dict[str, Any] | None] = lambda s: asyncio.run(  # noqa: E731
        _run(s, a.scale, a.days)
    )
    for scenario in a.scenarios.split(","):
        runs = [x for x in (runner(scenario) for _ in range(a.runs)) if x is not None]
        if not runs:
            print(f"{scenario}: not served by this sim", file=sys.stderr)
            continue
        summary = {"wall_s": _median(runs, "wall_s"), "cpu_s": _median(runs, "cpu_s"),
                   "calls": runs[0]["calls"], "mb": runs[0]["mb"], "runs": runs}  # fmt: skip
        out["scenarios"][scenario] = summary
        print(
            f"{scenario}: median wall {summary['wall_s']} s, CPU {summary['cpu_s']} s, "
            f"{summary['calls']} calls, {summary['mb']} MB",
            file=sys.stderr,
        )
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
