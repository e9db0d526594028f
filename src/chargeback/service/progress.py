"""Progress while tenants run: a log line every few seconds of what the run is doing.

A large organisation's run spends its first minute listing the inventory, downloading
the bill and querying usage before its first date commits, and its last seconds on the
emitters: without this, nothing is printed then. :class:`ProgressTelemetry` sits in
front of the daemon's metrics as the :mod:`~chargeback.core.telemetry` hook, counts
every API request by endpoint template (billing pages, inventory listings, metric
queries) and, while a run is going, logs ``run progress`` every ``interval_s`` with the
requests since the last line and in all, the retries, and the dates emitted. The daemon,
``once``, ``rerun --now`` and ``demo`` all run it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import structlog

from chargeback.core.telemetry import Telemetry

__all__ = ["PROGRESS_INTERVAL_S", "ProgressTelemetry"]

log = structlog.get_logger(__name__)

PROGRESS_INTERVAL_S = 5.0
"""Seconds between two progress lines while a run is going."""

_TOP_ENDPOINTS = 6


class ProgressTelemetry:
    """The telemetry hook: forwards to ``inner`` and counts for the progress lines.

    Args:
        inner: the telemetry that records the metrics.
        running: the names of the tenants running now.
        interval_s: seconds between two progress lines.
    """

    def __init__(
        self,
        inner: Telemetry,
        running: Callable[[], list[str]],
        *,
        interval_s: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self._inner = inner
        self._running = running
        self.interval_s = interval_s
        self.requests: Counter[str] = Counter()
        self.retries = 0
        self.dates_emitted = 0
        self._reported: Counter[str] = Counter()
        self._since = time.monotonic()

    def api_request(self, host: str, endpoint: str, status: str, seconds: float) -> None:
        """Count one finished HTTP request."""
        self._inner.api_request(host, endpoint, status, seconds)
        self.requests[endpoint] += 1

    def api_retry(self, host: str, reason: str) -> None:
        """Count one retry of an HTTP request."""
        self._inner.api_retry(host, reason)
        self.retries += 1

    def date_emitted(self) -> None:
        """Count one date handed to the emitters."""
        self.dates_emitted += 1

    def report(self) -> bool:
        """Log one progress line if a run is going; return whether one was logged."""
        running = self._running()
        if not running:
            self._reported = Counter(self.requests)
            return False
        new = self.requests - self._reported
        self._reported = Counter(self.requests)
        elapsed = time.monotonic() - self._since
        self._since = time.monotonic()
        busiest = dict(new.most_common(_TOP_ENDPOINTS))
        log.info(
            "run progress",
            running=running,
            api_requests=sum(self.requests.values()),
            api_requests_last=sum(new.values()),
            last_s=round(elapsed, 1),
            by_endpoint=busiest or "no API request (allocating, committing or emitting)",
            retries=self.retries,
            dates_emitted=self.dates_emitted,
        )
        return True

    async def loop(self) -> None:
        """Report every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.interval_s)
            self.report()
