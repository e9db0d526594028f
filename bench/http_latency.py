"""``/metrics`` latency of the daemon's HTTP server alone, idle and beside a busy loop.

``bench/scrape.py`` measures a whole deployment, but on a shared 2-core machine its
phases hold a few dozen scrapes each and the pipeline's own speed varies from run to
run. This script isolates the HTTP layer with many samples: the daemon's app
(``chargeback.service.http.make_app``, served by its ``HttpServer`` on a thread of its
own, exactly as the daemon does) serving a fixed exposition of ``--series`` chargeback
series, pre-compressed once as the ``prometheus`` emitter does, while the starting
loop is either idle or busy with CPU-bound slices of ``--slice-ms`` (a pipeline's
allocation holding the loop and the GIL). A scraper process (``bench.scrape``'s, httpx,
gzip) scrapes it every ``--interval`` seconds.

Because it only uses ``make_app(source, health)``, ``HttpServer`` and ``gzip_stream``,
the same script runs against older trees for an A/B::

    .venv/bin/python -m bench.http_latency --out http.json
    (cd OLD && PYTHONPATH=OLD/src:OLD $OLDPWD/.venv/bin/python -m bench.http_latency)
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
import zlib
from pathlib import Path
from typing import Any

from bench._harness import quiet_logs, write_report


class Source:
    """A fixed exposition: the chargeback series pre-compressed, a small service tail."""

    def __init__(self, series: int) -> None:
        rows = (
            f'chargeback_cost_latest_day{{tenant="t",identity="sa-{i:06d}",'
            f'product_type="P{i % 37}",cost_type="usage",env="env-{i % 53}"}} {i * 0.37:.9g}\n'
            for i in range(series)
        )
        self.text = b"# TYPE chargeback_cost_latest_day gauge\n" + "".join(rows).encode()
        c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.deflate = c.compress(self.text) + c.flush(zlib.Z_SYNC_FLUSH)
        self.crc = zlib.crc32(self.text)
        self.tail = b"# TYPE chargeback_tenants_running gauge\nchargeback_tenants_running 0\n"

    def exposition(self) -> bytes:
        return self.text + self.tail

    def exposition_gzip(self) -> bytes:
        from chargeback.service.http import gzip_stream  # noqa: PLC0415  (the tree under test)

        return gzip_stream([(self.text, self.deflate, self.crc)], self.tail)


class Health:
    """Probe answers (not scraped here)."""

    def health(self) -> dict[str, Any]:
        return {"state": "running"}

    def readiness(self) -> list[str]:
        return []


async def _busy(slice_ms: float, stop: asyncio.Event) -> None:
    """Hold the loop (and the GIL) for ``slice_ms`` at a time, yielding in between."""
    while not stop.is_set():
        end = time.perf_counter() + slice_ms / 1000
        x = 0
        while time.perf_counter() < end:
            x += sum(range(200))
        await asyncio.sleep(0)


async def _phase(
    url: str, work: Path, name: str, seconds: float, args: argparse.Namespace
) -> list[list[float]]:
    """Scrape for ``seconds`` from a subprocess; busy the loop meanwhile if asked."""
    stop_file = work / f"stop-{name}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.scrape", "--scraper", url,
        "--stop-file", str(stop_file), "--interval", str(args.interval),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    await proc.stdout.readline()  # "ready <twin port>"
    stop = asyncio.Event()
    load = asyncio.create_task(_busy(args.slice_ms, stop)) if name == "busy" else None
    await asyncio.sleep(seconds)
    stop.set()
    if load is not None:
        await load
    stop_file.touch()
    out = await proc.stdout.read()
    await proc.wait()
    samples: list[list[float]] = json.loads(out)
    return samples


def _stats(samples: list[list[float]]) -> dict[str, Any]:
    ok = [s for s in samples if s[2] == 200]
    out: dict[str, Any] = {"scrapes": len(samples), "failed": len(samples) - len(ok)}
    for key, index in (("ttfb", 5), ("ttlb", 6), ("client", 1)):
        values = sorted(s[index] * 1000 for s in ok)
        if values:
            out[f"{key}_median_ms"] = round(statistics.median(values), 2)
            out[f"{key}_p90_ms"] = round(values[int(0.9 * (len(values) - 1))], 2)
    out["bytes_on_wire"] = int(ok[0][3]) if ok else 0
    return out


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Serve the app and scrape it idle, then beside a busy loop."""
    from chargeback.service.http import HttpServer, make_app  # noqa: PLC0415

    server = HttpServer(make_app(Source(args.series), Health()), "127.0.0.1", 0)
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        phases = {}
        for name in ("idle", "busy"):
            phases[name] = _stats(await _phase(url, work, name, args.seconds, args))
    finally:
        await server.aclose()
    return {"series": args.series, "slice_ms": args.slice_ms, "phases": phases}


def main() -> None:
    """Parse the options and measure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between scrapes")
    parser.add_argument("--slice-ms", type=float, default=50.0, help="busy loop slice")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    result = {"benchmark": "http_latency", "when": dt.datetime.now(dt.UTC).isoformat(), **result}
    for name, ph in result["phases"].items():
        print(
            f"{name}: {ph['scrapes']} scrapes, {ph['bytes_on_wire'] // 1024} KiB on the wire;"
            f" median ms first byte {ph.get('ttfb_median_ms')}, last byte"
            f" {ph.get('ttlb_median_ms')}, decoded {ph.get('client_median_ms')}",
            file=sys.stderr,
        )
    write_report(result, args.out)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
