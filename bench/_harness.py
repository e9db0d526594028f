"""Shared pieces of the benchmarks: an in-process sim, a tenant runtime, measurements.

The Confluent Cloud plugin talks to ``ccloud_sim`` through ``httpx.ASGITransport``
(its documented ``transport=`` constructor argument), with no rate limit and no
network. Every figure is taken in a fresh process (``ru_maxrss`` is a per-process
peak), so the drivers re-run their own script with ``--child`` and aggregate.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import structlog
from starlette.applications import Starlette

from ccloud_sim import SimClock, create_app
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import TenantConfig
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin

__all__ = [
    "NOW",
    "TENANT",
    "Meter",
    "MetricsRecorder",
    "Sim",
    "api_calls",
    "median_of",
    "plugin_settings",
    "quiet_logs",
    "run_children",
]

NOW = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)
"""The sim's frozen "now" for every benchmark (settled days end 3 days before)."""
TENANT = "bench"
REPO = Path(__file__).resolve().parent.parent
METRICS_PATH = "/v2/metrics/cloud/query"


def quiet_logs() -> None:
    """Drop every log line below error (logging is not what is measured)."""
    import logging  # noqa: PLC0415

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def plugin_settings(base_url: str = "http://sim") -> dict[str, Any]:
    """Plugin settings pointing every host at the sim, with no client-side rate limit."""
    return {
        "api_key": "SIMKEY",
        "api_secret": "SIMSECRET",
        "base_url": base_url,
        "telemetry_url": base_url,
        "flink_url": base_url,
        "http": {"requests_per_second": None},
        "metrics": {"retention_days": None},  # the benches' sims keep every day's usage
    }


@dataclass
class Sim:
    """A ccloud_sim app with a frozen clock, served in-process."""

    scale: str = "large"
    seed: int = 1
    now: dt.datetime = NOW
    app: Starlette = field(init=False)
    clock: SimClock = field(init=False)

    def __post_init__(self) -> None:
        self.clock = SimClock(self.now)
        self.app = create_app(
            seed=self.seed, scale=self.scale, clock=self.clock, metrics_retention_days=None
        )
        self.transport = MetricsRecorder(self.app)

    transport: MetricsRecorder = field(init=False)

    def plugin(self) -> ConfluentCloudPlugin:
        """A fresh plugin whose HTTP client goes into the sim app."""

        async def no_sleep(_: float) -> None:
            return None

        return ConfluentCloudPlugin(transport=self.transport, sleep=no_sleep)

    async def runtime(
        self, db: Path, *, lookback_days: int, cutoff_days: int = 3, recalc_days: int = 3
    ) -> tuple[TenantRuntime, SQLiteBackend]:
        """Open the database and build a TenantRuntime over the sim (clock = the sim's)."""
        storage = SQLiteBackend(db)
        await storage.open()
        config = TenantConfig(
            name=TENANT,
            ecosystem="confluent_cloud",
            plugin_settings=plugin_settings(),
            lookback_days=lookback_days,
            cutoff_days=cutoff_days,
            recalc_days=recalc_days,
            run_timeout_s=24 * 3600.0,
        )
        return TenantRuntime(config, self.plugin(), storage, clock=self.clock.now), storage

    def reset_stats(self) -> None:
        """Zero the sim's request counters and the recorded metrics queries."""
        self.app.state.stats.reset()
        self.transport.queries.clear()
        self.transport.sim_cpu_s = 0.0

    def calls(self) -> dict[str, int]:
        """Requests by endpoint since the last reset."""
        return api_calls(self.app.state.stats.requests)


class MetricsRecorder(httpx.AsyncBaseTransport):
    """ASGITransport into the sim that counts Metrics API requests per distinct query.

    A query is the request body without its page token; its count is its pages.
    It also sums the CPU time spent inside the sim (``sim_cpu_s``): the app runs
    within ``handle_async_request``, so that share of the process's CPU time is the
    simulator's, not chargeback's.
    """

    def __init__(self, app: Starlette) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.queries: Counter[str] = Counter()
        self.sim_cpu_s = 0.0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == METRICS_PATH:
            body = json.loads(await request.aread() or b"{}")
            body.pop("page_token", None)
            self.queries[json.dumps(body, sort_keys=True)] += 1
        c0 = time.process_time()
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.sim_cpu_s += time.process_time() - c0

    def summary(self) -> dict[str, Any]:
        """Distinct queries, requests, and queries by metric name."""
        by_metric: Counter[str] = Counter()
        for key in self.queries:
            for agg in json.loads(key).get("aggregations", []):
                by_metric[str(agg.get("metric"))] += 1
        return {
            "queries": len(self.queries),
            "requests": sum(self.queries.values()),
            "max_pages_per_query": max(self.queries.values(), default=0),
            "queries_by_metric": dict(sorted(by_metric.items())),
        }


def api_calls(requests: Mapping[str, int]) -> dict[str, int]:
    """Requests by endpoint, sorted, with a ``total``."""
    out = {k: int(v) for k, v in sorted(requests.items())}
    out["total"] = sum(requests.values())
    return out


def current_rss_mb() -> float:
    """This process's resident set size now (Linux ``/proc/self/statm``)."""
    pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_of(pid: int | None) -> float:
    """Peak resident set size of a running process (``VmHWM``), in MB; 0 without one."""
    if pid is None:
        return 0.0
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except FileNotFoundError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return 0.0


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_pages(pid: int | str) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text(encoding="ascii").split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return 0


def _child_pids() -> set[str]:
    """Children that have exec'd: one between fork and exec still shares (and would
    double count) this process's pages; it shows this process's command line."""
    own = Path("/proc/self/cmdline").read_bytes()
    pids: set[str] = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            pids.update((task / "children").read_text(encoding="ascii").split())
        except FileNotFoundError:
            continue
    execd = set()
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes() != own:
                execd.add(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return execd


class _TreeSampler(threading.Thread):
    """Samples this process's RSS plus its children's (the writer), every 20 ms.

    Each process's own peak is exact (``ru_maxrss``, ``VmHWM``), but the two peaks need
    not coincide; this is the peak of their sum, to the sampling interval.
    """

    def __init__(self) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.peak_pages = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.02):
            pages = _rss_pages("self") + sum(_rss_pages(pid) for pid in _child_pids())
            self.peak_pages = max(self.peak_pages, pages)

    def stop(self) -> float:
        """Stop; return the peak sum in MB."""
        self._stop_event.set()
        self.join()
        return self.peak_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class Meter:
    """Wall time, CPU time and memory of a block (``with Meter() as m: ...``)."""

    def __init__(self) -> None:
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self.rss_before_mb = 0.0
        self.peak_rss_mb = 0.0
        self.peak_tree_rss_mb = 0.0
        self._t0 = 0.0
        self._c0 = 0.0
        self.load_avg_1m = 0.0
        self._sampler: _TreeSampler | None = None

    def __enter__(self) -> Meter:
        self.rss_before_mb = current_rss_mb()
        self._sampler = _TreeSampler()
        self._sampler.start()
        self._t0 = time.perf_counter()
        self._c0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._t0
        self.cpu_s = time.process_time() - self._c0
        self.peak_rss_mb = _peak_rss_mb()
        if self._sampler is not None:
            self.peak_tree_rss_mb = self._sampler.stop()
        self.load_avg_1m = os.getloadavg()[0]

    def as_dict(self) -> dict[str, float]:
        """The figures, rounded."""
        return {
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "rss_before_mb": round(self.rss_before_mb, 1),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "peak_rss_with_children_mb": round(self.peak_tree_rss_mb, 1),
            "load_avg_1m": round(self.load_avg_1m, 2),
        }


def run_children(module: str, args: Sequence[str], runs: int) -> list[dict[str, Any]]:
    """Run ``python -m module --child args`` ``runs`` times; return their JSON results."""
    results = []
    for i in range(runs):
        cmd = [sys.executable, "-m", module, "--child", *args]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"{module} child run {i + 1} failed with status {proc.returncode}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"  run {i + 1}/{runs}: {_brief(results[-1])}", file=sys.stderr)
    return results


def _brief(result: Mapping[str, Any]) -> str:
    keys = ("scale", "days", "wall_s", "cpu_s", "peak_rss_mb")
    return " ".join(f"{k}={result[k]}" for k in keys if k in result)


def median_of(results: Sequence[Mapping[str, Any]], key: str) -> float:
    """The median of a numeric figure over several runs."""
    return float(statistics.median(float(r[key]) for r in results))


def write_report(report: Mapping[str, Any], out: Path | None) -> None:
    """Print the report as JSON on stdout and, with ``out``, also write it there."""
    text = json.dumps(report, indent=2)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    print(text)
