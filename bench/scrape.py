"""Scrape latency of the daemon's ``/metrics`` while a backfill runs (issue 7).

Three processes, like a deployment: ``ccloud_sim`` serving the org over loopback HTTP
(wall clock), the daemon as ``chargeback run`` builds it (``Daemon``: storage, the
``csv`` and ``prometheus`` emitters, plugin discovery, the tenant pool, uvicorn
serving ``/metrics`` on the engine's event loop), and a scraper that GETs
``/metrics`` with httpx every ``--interval`` seconds, like Prometheus, recording each
scrape's latency, size and series count.

Phases: ``backfill`` (the tenant's first run from an empty database; the series
appear after the first date commits), ``idle`` (full series, nothing running) and
``rerun_all_dates`` (an operator rerun of the whole window: every date recomputed
with the full series present). Inside the daemon a probe measures the event loop's
lag (how late a 10 ms sleep wakes up) and a watchdog thread samples the main
thread's stack whenever the loop stalls for 200 ms: which code held the loop.

    .venv/bin/python -m bench.scrape                        # large org, 30 days
    .venv/bin/python -m bench.scrape --scale medium --days 10 --out scrape.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench._harness import plugin_settings, quiet_logs, write_report
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


def _settings_yaml(work: Path, lookback: int, sim_url: str) -> str:
    ps = json.dumps(plugin_settings(sim_url))
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
    """Measures how late a 10 ms sleep on the loop wakes up, and who blocked it.

    A watchdog thread looks at the loop's last tick every 20 ms; when the loop has
    not ticked for ``stall_s``, it samples the main thread's stack once per stall
    and keeps the innermost ``chargeback`` frames: the code that held the loop.
    """

    def __init__(self, stall_s: float = 0.2) -> None:
        self.samples: list[tuple[float, float]] = []
        self.stalls: Counter[str] = Counter()
        self.stall_s = stall_s
        self._task: asyncio.Task[None] | None = None
        self._beat = time.perf_counter()
        self._stop = threading.Event()
        self._main = threading.get_ident()
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            self._beat = time.perf_counter()
            self.samples.append((time.time(), self._beat - t0 - 0.01))

    def _watch(self) -> None:
        sampled_beat = 0.0
        while not self._stop.wait(0.02):
            beat = self._beat
            if time.perf_counter() - beat < self.stall_s or beat == sampled_beat:
                continue
            sampled_beat = beat
            frame = sys._current_frames().get(self._main)
            if frame is None:
                continue
            ours = [
                f"{Path(f.filename).name}:{f.name}"
                for f in traceback.extract_stack(frame)
                if "/chargeback/" in f.filename or "/prometheus_client/" in f.filename
            ]
            self.stalls[" > ".join(ours[-3:]) or "(outside chargeback)"] += 1

    def start(self) -> None:
        """Start probing."""
        self._task = asyncio.create_task(self._run())
        self._thread.start()

    async def stop(self) -> None:
        """Stop probing."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _start_sim(args: argparse.Namespace) -> tuple[asyncio.subprocess.Process, str]:
    """ccloud_sim in its own process (wall clock), like the real API is elsewhere."""
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ccloud_sim", "serve", "--port", str(port),
        "--seed", str(args.seed), "--scale", args.scale,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/_sim/clock")).status_code == 200:
                    return proc, url
            await asyncio.sleep(0.1)
    proc.kill()
    raise SystemExit("ccloud_sim did not start")


async def _run_and_wait(daemon: Any) -> None:
    pool = daemon.pool
    pool.request_run_all("bench")
    await asyncio.wait(list(pool.tasks.values()))


async def daemon_side(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Start the daemon, scrape it from a subprocess during a backfill and after."""
    from chargeback.service.daemon import Daemon  # noqa: PLC0415  (heavy imports after args)
    from chargeback.settings import load_settings  # noqa: PLC0415

    sim, sim_url = await _start_sim(args)
    try:
        path = work / "settings.yaml"
        path.write_text(_settings_yaml(work, lookback_for(args.days), sim_url), encoding="utf-8")
        daemon = Daemon(load_settings(path), handle_signals=False)
        await daemon.start()
        try:
            return await _measure(args, daemon, work)
        finally:
            daemon.stop()
            await daemon.aclose()
    finally:
        sim.terminate()
        await sim.wait()


async def _measure(args: argparse.Namespace, daemon: Any, work: Path) -> dict[str, Any]:
    url = f"http://127.0.0.1:{daemon.http.port}/metrics"
    stop_file = work / "stop"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.scrape", "--scraper", url,
        "--stop-file", str(stop_file), "--interval", str(args.interval),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    await proc.stdout.readline()  # "ready": the scraper has done its first scrape
    lag = LoopLag()
    lag.start()
    phases: dict[str, tuple[float, float]] = {}
    stalls: dict[str, dict[str, int]] = {}

    async def phase(name: str, work: Any) -> None:
        lag.stalls.clear()
        t0 = time.time()
        await work
        phases[name] = (t0, time.time())
        stalls[name] = dict(lag.stalls.most_common(8))

    await phase("backfill", _run_and_wait(daemon))
    await phase("idle", asyncio.sleep(args.idle_s))
    # A second pass over every date of the window with the series already present:
    # an operator's rerun of the whole window (what `chargeback rerun` records).
    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=lookback_for(args.days))
    await daemon.storage.request_rerun("bench", start, today, dt.datetime.now(dt.UTC))
    await phase("rerun_all_dates", _run_and_wait(daemon))
    stop_file.touch()
    out = await proc.stdout.read()
    await proc.wait()
    await lag.stop()
    samples = json.loads(out)
    t_first = samples[0][0] if samples else 0.0
    return {
        "scale": args.scale,
        "days": args.days,
        "interval_s": args.interval,
        "phases": {
            name: {**_phase(samples, lag.samples, start, end), "loop_stalls": stalls[name]}
            for name, (start, end) in phases.items()
        },
        "timeline": [[round(s[0] - t_first, 2), round(s[1] * 1000, 1), int(s[4])] for s in samples],
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
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between scrapes")
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
        for where, count in ph["loop_stalls"].items():
            print(f"    loop stalled >= 200 ms x{count}: {where}", file=sys.stderr)
    write_report(result, args.out)


if __name__ == "__main__":
    main()
