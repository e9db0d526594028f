"""Scrape latency of the daemon's ``/metrics`` while a backfill runs (issue 7).

Three processes, like a deployment: ``ccloud_sim`` serving the org over loopback HTTP
(wall clock), the daemon as ``chargeback run`` builds it (``Daemon``: storage, the
``csv`` and ``prometheus`` emitters, plugin discovery, the tenant pool, uvicorn
serving ``/metrics`` on the engine's event loop), and a scraper that GETs
``/metrics`` with httpx every ``--interval`` seconds asking for gzip, like Prometheus.
Per scrape it records the time to the first byte, to the last raw byte (the daemon's
share plus the loopback transfer) and to the decoded body (a client's whole cost,
including its own inflate of ~14 MB), the size on the wire and decoded, and the
series count.

With ``--prometheus`` a real Prometheus server also scrapes the daemon at the same
interval, and a static twin (the scraper process serving the last body it got, byte
for byte) beside it: ``scrape_duration_seconds`` covers request, transfer, gunzip,
parse and append to Prometheus' head, so the twin's figure is what this many series
cost Prometheus whoever serves them, and the difference is the daemon's share.

Phases: ``backfill`` (the tenant's first run from an empty database; the series
appear after the run's end flush), ``idle`` (full series, nothing running) and
``rerun_all_dates`` (an operator rerun of the whole window: every date recomputed
with the full series present). Inside the daemon a probe measures the event loop's
lag (how late a 10 ms sleep wakes up) and a watchdog thread samples the main
thread's stack whenever the loop stalls for 200 ms: which code held the loop.

    .venv/bin/python -m bench.scrape                        # large org, 30 days
    .venv/bin/python -m bench.scrape --prometheus           # + a real Prometheus
    .venv/bin/python -m bench.scrape --scale medium --days 10 --out scrape.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import http.server
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
import traceback
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench._harness import plugin_settings, quiet_logs, write_report
from bench.backfill import lookback_for

GOAL_MEDIAN_MS = 50.0


# -- the scraper (its own process) -------------------------------------------------------


class Twin:
    """A static server of the last body the scraper got: Prometheus' own floor.

    Prometheus' ``scrape_duration_seconds`` covers the request, the transfer, its own
    gunzip, parsing and appending every sample to its head block. Scraping this twin
    (the daemon's exact bytes, served by a thread that does nothing else) alongside the
    daemon separates what the daemon adds from what the body costs Prometheus anyway.
    """

    def __init__(self) -> None:
        self.body = b""
        self.text = b""
        self.encoding = ""
        twin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gzip_ok = "gzip" in self.headers.get("Accept-Encoding", "")
                body, encoding = twin.body, twin.encoding
                if encoding and not gzip_ok:
                    body, encoding = twin.text, ""
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                if encoding:
                    self.send_header("Content-Encoding", encoding)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, name="twin", daemon=True).start()


def scraper(url: str, stop_file: Path, interval: float) -> None:
    """Scrape ``url`` until ``stop_file`` exists; print the samples as JSON.

    Each sample times three points of one GET (gzip asked, like Prometheus): the
    response headers (time to first byte), the last raw byte (the server's share plus
    the loopback transfer) and the body decoded (what a client holds in the end: the
    scraper's own inflate of ~14 MB is part of it, as it is of any client's scrape).
    """
    samples: list[tuple[float, ...]] = []
    twin = Twin()
    print(f"ready {twin.port}", flush=True)
    with httpx.Client(timeout=60.0, headers={"Accept-Encoding": "gzip"}) as client:
        while not stop_file.exists():
            started = time.time()
            t0 = time.perf_counter()
            ttfb = ttlb = 0.0
            try:
                with client.stream("GET", url) as resp:
                    ttfb = time.perf_counter() - t0
                    raw = b"".join(resp.iter_raw())
                    ttlb = time.perf_counter() - t0
                    encoding = resp.headers.get("content-encoding", "")
                status = resp.status_code
                body = zlib.decompress(raw, 31) if encoding == "gzip" else raw
            except (httpx.HTTPError, zlib.error):
                status, raw, body, encoding = 0, b"", b"", ""
            latency = time.perf_counter() - t0
            series = body.count(b"\nchargeback_cost_")
            samples.append((started, latency, status, len(raw), series, ttfb, ttlb, len(body)))
            if status == 200:
                twin.text, twin.body, twin.encoding = body, raw, encoding
            time.sleep(max(0.0, interval - latency))
    twin.server.shutdown()
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
    and keeps the innermost ``chargeback`` frames: the code that held the loop. A
    ``gc`` callback records every collection's pause (it holds the GIL: no thread of
    the daemon, the HTTP server's included, runs meanwhile).
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
        self.gc_pauses: list[tuple[float, int, float]] = []  # (time, generation, seconds)
        self._gc_start = 0.0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            pause = time.perf_counter() - self._gc_start
            self.gc_pauses.append((time.time(), info["generation"], pause))

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
        gc.callbacks.append(self._on_gc)

    async def stop(self) -> None:
        """Stop probing."""
        self._stop.set()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
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
        "--seed", str(args.seed), "--scale", args.scale, "--metrics-retention-days", "unlimited",
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
    from chargeback.service import gcpolicy  # noqa: PLC0415
    from chargeback.service.daemon import Daemon  # noqa: PLC0415  (heavy imports after args)
    from chargeback.settings import load_settings  # noqa: PLC0415

    gcpolicy.configure()  # as `chargeback run` does; the daemon freezes its start-up
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


class Prometheus:
    """The real ``prometheus`` binary scraping the daemon and the scraper's twin.

    Its ``scrape_duration_seconds`` is what an operator sees for this target: request,
    transfer, gunzip, parse and append of every sample. The twin job scrapes the same
    bytes from a static server, so ``daemon - twin`` is the daemon's own share.
    """

    def __init__(self, binary: str, work: Path, interval: float) -> None:
        self.binary = binary
        self.work = work
        self.interval_ms = max(1, round(interval * 1000))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, daemon_port: int, twin_port: int) -> None:
        """Start scraping both targets; return once Prometheus is ready."""
        config = self.work / "prometheus.yml"
        every = f"{self.interval_ms}ms"
        config.write_text(
            f"global: {{scrape_interval: {every}, scrape_timeout: {every}}}\n"
            "scrape_configs:\n"
            + "".join(
                f"  - {{job_name: {job}, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}\n"
                for job, port in (("daemon", daemon_port), ("twin", twin_port))
            ),
            encoding="utf-8",
        )
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/-/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise SystemExit("prometheus did not start")

    async def samples(self, since: float) -> dict[str, list[tuple[float, float, float]]]:
        """Per job: every scrape's (start time, duration s, samples scraped) since ``since``."""
        window = f"[{int(time.time() - since) + 10}s]"
        out: dict[str, dict[float, list[float]]] = {"daemon": {}, "twin": {}}
        async with httpx.AsyncClient(timeout=60.0) as client:
            for i, metric in enumerate(("scrape_duration_seconds", "scrape_samples_scraped")):
                resp = await client.get(
                    f"{self.url}/api/v1/query", params={"query": metric + window}
                )
                for series in resp.json()["data"]["result"]:
                    job = out[series["metric"]["job"]]
                    for ts, value in series["values"]:
                        job.setdefault(float(ts), [0.0, 0.0])[i] = float(value)
        return {job: [(t, d, n) for t, (d, n) in sorted(v.items())] for job, v in out.items()}

    async def stop(self) -> None:
        """Stop Prometheus."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


async def _measure(args: argparse.Namespace, daemon: Any, work: Path) -> dict[str, Any]:
    url = f"http://127.0.0.1:{daemon.http.port}/metrics"
    stop_file = work / "stop"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.scrape", "--scraper", url,
        "--stop-file", str(stop_file), "--interval", str(args.interval),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    twin_port = int((await proc.stdout.readline()).split()[1])  # "ready <twin port>"
    prometheus = Prometheus(args.prometheus, work, args.interval) if args.prometheus else None
    if prometheus is not None:
        await prometheus.start(daemon.http.port, twin_port)
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

    t_begin = time.time()
    try:
        await phase("backfill", _run_and_wait(daemon))
        await phase("idle", asyncio.sleep(args.idle_s))
        # A second pass over every date of the window with the series already present:
        # an operator's rerun of the whole window (what `chargeback rerun` records).
        today = dt.datetime.now(dt.UTC).date()
        start = today - dt.timedelta(days=lookback_for(args.days))
        await daemon.storage.request_rerun("bench", start, today, dt.datetime.now(dt.UTC))
        await phase("rerun_all_dates", _run_and_wait(daemon))
        await asyncio.sleep(args.interval)  # the last scrapes of the phase land in Prometheus
        prom = {} if prometheus is None else await prometheus.samples(t_begin)
    finally:
        if prometheus is not None:
            await prometheus.stop()
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
        "prometheus": args.prometheus,
        "phases": {
            name: {
                **_phase(samples, lag.samples, lag.gc_pauses, start, end),
                **_prom_phase(prom, start, end),
                "loop_stalls": stalls[name],
            }
            for name, (start, end) in phases.items()
        },
        "timeline": [
            [round(s[0] - t_first, 2), round(s[6] * 1000, 1), round(s[1] * 1000, 1), int(s[4])]
            for s in samples
        ],
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _stats(prefix: str, values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        f"{prefix}median_ms": round(statistics.median(values), 1),
        f"{prefix}p99_ms": round(_pct(values, 0.99), 1),
        f"{prefix}max_ms": round(max(values), 1),
    }


def _phase(
    samples: list[list[float]],
    lag: list[tuple[float, float]],
    gc_pauses: list[tuple[float, int, float]],
    start: float,
    end: float,
) -> dict[str, Any]:
    """The scraper's figures: ``ttlb`` (last raw byte) and ``client`` (body decoded)."""
    inside = [s for s in samples if start <= s[0] < end]
    full = [s for s in inside if s[4] >= 10_000]
    out: dict[str, Any] = {
        "duration_s": round(end - start, 1),
        "scrapes": len(inside),
        "failed": sum(1 for s in inside if s[2] != 200),
        "max_series": max((int(s[4]) for s in inside), default=0),
        "max_bytes_on_wire": max((int(s[3]) for s in inside), default=0),
        "max_bytes_decoded": max((int(s[7]) for s in inside), default=0),
        "scrapes_10k_series": len(full),
    }
    for group, name in ((inside, ""), (full, "full_")):
        out |= _stats(f"{name}ttfb_", [s[5] * 1000 for s in group])
        out |= _stats(f"{name}ttlb_", [s[6] * 1000 for s in group])
        out |= _stats(f"{name}client_", [s[1] * 1000 for s in group])
    out |= _stats("loop_lag_", [x * 1000 for t, x in lag if start <= t < end])
    full_gc = [p * 1000 for t, gen, p in gc_pauses if start <= t < end and gen == 2]
    young = [p * 1000 for t, gen, p in gc_pauses if start <= t < end and gen < 2]
    out |= {
        "gc_gen2_collections": len(full_gc),
        "gc_gen2_pause_max_ms": round(max(full_gc, default=0.0), 1),
        "gc_gen2_pause_total_ms": round(sum(full_gc), 1),
        "gc_young_pause_max_ms": round(max(young, default=0.0), 1),
    }
    return out


def _prom_phase(
    prom: dict[str, list[tuple[float, float, float]]], start: float, end: float
) -> dict[str, Any]:
    """Prometheus' ``scrape_duration_seconds`` of the daemon and of the twin."""
    out: dict[str, Any] = {}
    for job, scrapes in prom.items():
        inside = [s for s in scrapes if start <= s[0] < end]
        out[f"prom_{job}_scrapes"] = len(inside)
        out |= _stats(f"prom_{job}_", [s[1] * 1000 for s in inside])
        out |= _stats(f"prom_{job}_full_", [s[1] * 1000 for s in inside if s[2] >= 10_000])
    return out


def _summary(name: str, ph: dict[str, Any]) -> str:
    def trio(prefix: str) -> str:
        return "/".join(str(ph.get(f"{prefix}{q}_ms", "-")) for q in ("median", "p99", "max"))

    text = (
        f"{name}: {ph['scrapes']} scrapes in {ph['duration_s']} s, up to {ph['max_series']}"
        f" series ({ph['max_bytes_on_wire'] // 1024} KiB on the wire,"
        f" {ph['max_bytes_decoded'] // 1024} KiB decoded); median/p99/max ms:"
        f" first byte {trio('ttfb_')}, last byte {trio('ttlb_')}, decoded {trio('client_')}"
    )
    if "prom_daemon_scrapes" in ph:
        text += (
            f"; prometheus scrape_duration daemon {trio('prom_daemon_')},"
            f" static twin {trio('prom_twin_')}"
        )
    return (
        text + f"; loop lag p99/max {ph.get('loop_lag_p99_ms')}/{ph.get('loop_lag_max_ms')} ms"
        f"; gc gen2 x{ph['gc_gen2_collections']} max {ph['gc_gen2_pause_max_ms']} ms"
        f" (goal: median < {GOAL_MEDIAN_MS:.0f} ms)"
    )


def main() -> None:
    """Parse the options; be the daemon (default) or the scraper."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="large")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between scrapes")
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle phase after the run")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--prometheus",
        nargs="?",
        const="prometheus",
        metavar="BINARY",
        help="also scrape with a real Prometheus (default binary: prometheus on PATH)",
    )
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
        print(_summary(name, ph), file=sys.stderr)
        for where, count in ph["loop_stalls"].items():
            print(f"    loop stalled >= 200 ms x{count}: {where}", file=sys.stderr)
    write_report(result, args.out)


if __name__ == "__main__":
    main()
