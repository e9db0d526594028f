"""Scrape latency of the daemon's ``/metrics`` while a backfill runs (issue 7).

One process runs the daemon as ``chargeback run`` does (``chargeback.service.daemon.Daemon``:
storage, the ``csv`` and ``prometheus`` emitters, the tenant pool, uvicorn serving
``/metrics`` on the same event loop), with one ``confluent_cloud`` tenant whose plugin
talks to an in-process ``ccloud_sim`` (wall clock) through ``httpx.ASGITransport`` (a
``PluginRegistry`` whose factory passes the transport). A second process scrapes
``/metrics`` over loopback HTTP with httpx every ``--interval`` seconds, like
Prometheus, and records each scrape's latency, size and series count.

Phases: ``backfill`` (the tenant's first run, from an empty database) then ``idle``
(the full series, nothing running). In the daemon a probe task measures the event
loop's lag (how late a 10 ms sleep wakes up): the time a scrape could be blocked.

    .venv/bin/python -m bench.scrape                        # large org, 30 days
    .venv/bin/python -m bench.scrape --scale medium --days 10 --out scrape.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench._harness import plugin_settings, quiet_logs
from bench.backfill import lookback_for

GOAL_MEDIAN_MS = 50.0


# -- the scraper (its own process) -------------------------------------------------------


def scraper(url: str, stop_file: Path, interval: float) -> None:
    """Scrape ``url`` until ``stop_file`` exists; print the samples as JSON."""
    samples: list[tuple[float, float, int, int, int]] = []
    with httpx.Client(timeout=60.0) as client:
        while not stop_file.exists():
            started = time.time()
            t0 = time.perf_counter()
            try:
                resp = client.get(url)
                status, body = resp.status_code, resp.content
            except httpx.HTTPError:
                status, body = 0, b""
            latency = time.perf_counter() - t0
            series = body.count(b"\nchargeback_cost_")
            samples.append((started, latency, status, len(body), series))
            if len(samples) == 1:
                print("ready", flush=True)
            time.sleep(max(0.0, interval - latency))
    print(json.dumps(samples))


# -- the daemon side ----------------------------------------------------------------------


def _settings_yaml(work: Path, lookback: int) -> str:
    ps = json.dumps(plugin_settings())
    return (
        f"storage: {{path: {work / 'cb.db'}}}\n"
        "http: {enabled: true, host: 127.0.0.1, port: 0}\n"
        "logging: {level: error}\n"
        f"daemon: {{pid_file: {work / 'pid'}, heartbeat_file: {work / 'hb'}}}\n"
        "scheduling: {run_missed_on_startup: false, run_timeout_s: 86400}\n"
        f"emitters: [{{name: csv, type: csv, params: {{output_dir: {work / 'csv'}}}}},"
        " {name: prometheus, type: prometheus}]\n"
        "tenants:\n"
        f"  bench: {{ecosystem: confluent_cloud, lookback_days: {lookback}, cutoff_days: 3,"
        f" plugin_settings: {ps}}}\n"
    )


class LoopLag:
    """A task that sleeps 10 ms in a loop and records how late it wakes up."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            self.samples.append((time.time(), time.perf_counter() - t0 - 0.01))

    def start(self) -> None:
        """Start probing."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop probing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def daemon_side(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Start the daemon, scrape it from a subprocess during a backfill and after."""
    from ccloud_sim import create_app  # noqa: PLC0415  (heavy imports after arg parsing)
    from chargeback.core.plugin.registry import PluginRegistry  # noqa: PLC0415
    from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin  # noqa: PLC0415
    from chargeback.service.daemon import Daemon  # noqa: PLC0415
    from chargeback.settings import load_settings  # noqa: PLC0415

    app = create_app(seed=args.seed, scale=args.scale)  # wall clock, like the real API

    async def no_sleep(_: float) -> None:
        return None

    def factory() -> ConfluentCloudPlugin:
        return ConfluentCloudPlugin(transport=httpx.ASGITransport(app=app), sleep=no_sleep)

    registry = PluginRegistry({"confluent_cloud": factory})
    path = work / "settings.yaml"
    path.write_text(_settings_yaml(work, lookback_for(args.days)), encoding="utf-8")
    daemon = Daemon(load_settings(path), handle_signals=False, plugins=registry)
    await daemon.start()
    assert daemon.http is not None
    url = f"http://127.0.0.1:{daemon.http.port}/metrics"
    stop_file = work / "stop"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.scrape", "--scraper", url,
        "--stop-file", str(stop_file), "--interval", str(args.interval),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    lag = LoopLag()
    lag.start()
    phases: dict[str, tuple[float, float]] = {}
    assert proc.stdout is not None
    await proc.stdout.readline()  # "ready": the scraper has done its first scrape
    pool = daemon.pool
    assert pool is not None
    t0 = time.time()
    pool.request_run_all("bench")
    await asyncio.wait(list(pool.tasks.values()))
    phases["backfill"] = (t0, time.time())
    t1 = time.time()
    await asyncio.sleep(args.idle_s)
    phases["idle"] = (t1, time.time())
    stop_file.touch()
    out = await proc.stdout.read()
    await proc.wait()
    await lag.stop()
    daemon.stop()
    await daemon.aclose()
    samples = json.loads(out)
    return {
        "scale": args.scale,
        "days": args.days,
        "interval_s": args.interval,
        "phases": {
            name: _phase(samples, lag.samples, start, end) for name, (start, end) in phases.items()
        },
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _phase(
    samples: list[list[float]], lag: list[tuple[float, float]], start: float, end: float
) -> dict[str, Any]:
    inside = [s for s in samples if start <= s[0] < end]
    full = [s for s in inside if s[4] >= 10_000]
    lat = [s[1] * 1000 for s in inside]
    lat_full = [s[1] * 1000 for s in full]
    lags = [x * 1000 for t, x in lag if start <= t < end]
    out: dict[str, Any] = {
        "duration_s": round(end - start, 1),
        "scrapes": len(inside),
        "failed": sum(1 for s in inside if s[2] != 200),
        "max_series": max((int(s[4]) for s in inside), default=0),
        "max_bytes": max((int(s[3]) for s in inside), default=0),
    }
    if lat:
        out |= {
            "median_ms": round(statistics.median(lat), 1),
            "p99_ms": round(_pct(lat, 0.99), 1),
            "max_ms": round(max(lat), 1),
        }
    if lat_full:
        out |= {
            "scrapes_10k_series": len(lat_full),
            "median_ms_10k_series": round(statistics.median(lat_full), 1),
            "p99_ms_10k_series": round(_pct(lat_full, 0.99), 1),
        }
    if lags:
        out |= {
            "loop_lag_median_ms": round(statistics.median(lags), 1),
            "loop_lag_p99_ms": round(_pct(lags, 0.99), 1),
            "loop_lag_max_ms": round(max(lags), 1),
        }
    return out


def main() -> None:
    """Parse the options; be the daemon (default) or the scraper."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="large")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between scrapes")
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle phase after the run")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--scraper", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--stop-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scraper:
        scraper(args.scraper, args.stop_file, args.interval)
        return
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as tmp:
        result = asyncio.run(daemon_side(args, Path(tmp)))
    result = {"benchmark": "scrape", "when": dt.datetime.now(dt.UTC).isoformat(), **result}
    for name, ph in result["phases"].items():
        print(
            f"{name}: {ph['scrapes']} scrapes in {ph['duration_s']} s, up to {ph['max_series']} "
            f"series ({ph['max_bytes'] // 1024} KiB); latency median {ph.get('median_ms')} ms, "
            f"p99 {ph.get('p99_ms')} ms, max {ph.get('max_ms')} ms "
            f"(>=10k series: median {ph.get('median_ms_10k_series')} ms, "
            f"p99 {ph.get('p99_ms_10k_series')} ms); loop lag p99 "
            f"{ph.get('loop_lag_p99_ms')} ms, max {ph.get('loop_lag_max_ms')} ms "
            f"(goal: median < {GOAL_MEDIAN_MS:.0f} ms)",
            file=sys.stderr,
        )
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
