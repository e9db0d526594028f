"""A real Prometheus holding history: OpenMetrics text -> promtool blocks -> a running server.

What Debian's Prometheus 2.42 does with backfilled data (tried here; see README.md beside):

* ``promtool tsdb create-blocks-from openmetrics`` needs the text to end with ``# EOF``;
  timestamps are in seconds (fractions allowed, stored in ms).
* Within one block, a sample older than or at the same time as the series' previous
  sample is **dropped without an error** (exit 0, fewer samples). So
  :func:`openmetrics_text` sorts every series by time and refuses duplicate timestamps.
* The block size is ``--max-block-duration`` (default 2h: one block per 2 h window that
  has samples; 30 daily points make 30 blocks), rounded down to 2h·3^k (2h, 6h, 18h, 54h,
  162h, 486h, 1458h). :data:`DEFAULT_MAX_BLOCK` = 486h makes 30 days two or three blocks.
* Retention is measured from the newest block's end, not from the clock, and it is
  15 days by default: start-up silently deletes older blocks (30 daily points came back
  as 16). :func:`start_prometheus` sets ``--storage.tsdb.retention.time`` to 100 years.
  With no scraping, no head data overlaps the blocks, so any past time range works.
* Queries look back 5 minutes (``lookback-delta``) from each evaluation time: a daily
  sample at midnight is found by an instant query at midnight (or up to 5 min later), and
  by ``query_range`` when ``start`` is that midnight and ``step=1d``; at noon the same
  query finds nothing (use ``last_over_time(m[1d])`` for that).
* Values are float64: integers above 2**53 (nanos of large amounts) lose precision.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest
from tests.support.process import (
    ServiceStartError,
    free_port,
    log_tail,
    run_checked,
    stop_process,
    wait_ready,
)

SERVICE = "Prometheus"
INSTALL_HINT = "run `make test` (or scripts/install-system-deps: Debian package prometheus)"
DEFAULT_MAX_BLOCK = "486h"
RETENTION = "100y"
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

Timestamp = dt.datetime | dt.date | int | float


@dataclass(frozen=True, slots=True)
class Point:
    """One sample of one series: its labels, its time and its value."""

    labels: Mapping[str, str]
    timestamp: Timestamp
    value: float


@dataclass(frozen=True, slots=True)
class MetricHistory:
    """A metric family over time. A counter's samples are written as ``<name>_total``.

    Every point of a family carries the same label names; an absent label is written as
    the empty string, which Prometheus treats as the label not being there.
    """

    name: str
    kind: Literal["gauge", "counter"]
    help: str
    points: Sequence[Point] = field(default_factory=tuple)


def to_seconds(timestamp: Timestamp) -> float:
    """Seconds since the epoch; a date means its midnight UTC, a naive datetime is refused."""
    if isinstance(timestamp, dt.datetime):
        if timestamp.tzinfo is None:
            raise ValueError(f"naive datetime {timestamp}: give it a timezone (UTC)")
        return timestamp.timestamp()
    if isinstance(timestamp, dt.date):
        return dt.datetime(
            timestamp.year, timestamp.month, timestamp.day, tzinfo=dt.UTC
        ).timestamp()
    return float(timestamp)


def _check_names(history: MetricHistory, label_names: Sequence[str]) -> None:
    if not _NAME.fullmatch(history.name) or history.name.startswith("__"):
        raise ValueError(f"invalid metric name {history.name!r}: expected {_NAME.pattern}")
    if history.kind == "counter" and history.name.endswith("_total"):
        raise ValueError(
            f"counter {history.name!r}: give the family name without _total (it is added)"
        )
    for name in label_names:
        if not _LABEL.fullmatch(name) or name.startswith("__"):
            raise ValueError(f"invalid label name {name!r} on {history.name}")


def _family(history: MetricHistory) -> Metric:
    label_names = sorted({name for point in history.points for name in point.labels})
    _check_names(history, label_names)
    family_type = GaugeMetricFamily if history.kind == "gauge" else CounterMetricFamily
    family = family_type(history.name, history.help, labels=label_names)
    series: dict[tuple[str, ...], list[tuple[float, float]]] = {}
    for point in history.points:
        key = tuple(point.labels.get(name, "") for name in label_names)
        series.setdefault(key, []).append((to_seconds(point.timestamp), float(point.value)))
    for key, samples in series.items():
        samples.sort()
        for (earlier, _), (later, _) in itertools.pairwise(samples):
            if math.isclose(earlier, later, abs_tol=0.0005):  # same millisecond
                raise ValueError(
                    f"{history.name}{dict(zip(label_names, key, strict=True))}: two samples at "
                    f"{earlier} (promtool would silently keep only one)"
                )
        for seconds, value in samples:
            family.add_metric(list(key), value, timestamp=_format_seconds(seconds))
    return family


def _format_seconds(seconds: float) -> float | int:
    return int(seconds) if seconds.is_integer() else round(seconds, 3)


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def openmetrics_text(histories: Iterable[MetricHistory]) -> str:
    """OpenMetrics text with timestamps and ``# EOF``, in the order promtool needs.

    Label values are escaped by prometheus_client's OpenMetrics writer (backslash, double
    quote, newline); names are checked here, since that writer would rewrite them.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([_family(history) for history in histories]))
    text: bytes = generate_latest(registry)
    return text.decode("utf-8")


def backfill(
    text: str, tsdb_dir: Path, *, max_block_duration: str = DEFAULT_MAX_BLOCK
) -> list[str]:
    """Write OpenMetrics ``text`` into TSDB blocks under ``tsdb_dir``; the new block ids."""
    tsdb_dir.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in tsdb_dir.iterdir()}
    source = tsdb_dir.parent / f"{tsdb_dir.name}-backfill.om"
    source.write_text(text, encoding="utf-8")
    promtool = shutil.which("promtool")
    if promtool is None:
        raise ServiceStartError(SERVICE, "promtool not found on PATH", hint=INSTALL_HINT)
    run_checked(
        SERVICE,
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            f"--max-block-duration={max_block_duration}",
            "--quiet",
            str(source),
            str(tsdb_dir),
        ],
        timeout=300,
        hint=INSTALL_HINT,
    )
    return sorted(p.name for p in tsdb_dir.iterdir() if p.name not in before)


@dataclass(slots=True)
class PrometheusServer:
    """A running Prometheus on 127.0.0.1 with its TSDB, log and a tiny query client."""

    url: str
    tsdb_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def query(self, promql: str, at: Timestamp | None = None) -> list[dict[str, Any]]:
        """Instant query (at a past time if given): the result list of the JSON answer."""
        params = {"query": promql}
        if at is not None:
            params["time"] = str(to_seconds(at))
        return self._get("/api/v1/query", params)

    def query_range(
        self, promql: str, start: Timestamp, end: Timestamp, step: str
    ) -> list[dict[str, Any]]:
        """Range query: one entry per series, each with ``values`` as [seconds, "value"]."""
        params = {
            "query": promql,
            "start": str(to_seconds(start)),
            "end": str(to_seconds(end)),
            "step": step,
        }
        return self._get("/api/v1/query_range", params)

    def log_text(self) -> str:
        """Prometheus's log so far (for failure messages)."""
        return log_tail(self.log_path, lines=10_000)

    def _get(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        response = httpx.get(self.url + path, params=params, timeout=30)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"{path} {dict(params)} -> {response.status_code}: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_prometheus(
    tsdb_dir: Path, *, retention: str = RETENTION, start_timeout: float = 60.0
) -> PrometheusServer:
    """Start Prometheus on ``tsdb_dir`` with no scrape targets; waits until /-/ready."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise ServiceStartError(SERVICE, "prometheus not found on PATH", hint=INSTALL_HINT)
    config = tsdb_dir.parent / f"{tsdb_dir.name}-prometheus.yml"
    config.write_text("global: {scrape_interval: 1h}\nscrape_configs: []\n", encoding="utf-8")
    log_path = tsdb_dir.parent / f"{tsdb_dir.name}-prometheus.log"
    port = free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tsdb_dir}",
        f"--storage.tsdb.retention.time={retention}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_ready(SERVICE, proc, lambda: _ready(url), log_path=log_path, timeout=start_timeout)
    return PrometheusServer(url, tsdb_dir, log_path, proc)


def stop_prometheus(server: PrometheusServer) -> None:
    """SIGTERM (graceful), SIGKILL if it hangs."""
    stop_process(server.process)


@contextlib.contextmanager
def prometheus_with_history(
    history: str | Iterable[MetricHistory],
    workdir: Path | None = None,
    *,
    max_block_duration: str = DEFAULT_MAX_BLOCK,
) -> Iterator[PrometheusServer]:
    """Backfill ``history`` (OpenMetrics text or families) and serve it for the block.

    The TSDB, the config and the log go under ``workdir`` (an unused directory; a temp
    directory removed afterwards when omitted).
    """
    text = history if isinstance(history, str) else openmetrics_text(history)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cb-prom-")))
        tsdb_dir = workdir / "tsdb"
        backfill(text, tsdb_dir, max_block_duration=max_block_duration)
        server = start_prometheus(tsdb_dir)
        stack.callback(stop_prometheus, server)
        yield server
