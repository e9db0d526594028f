"""Rate limits of the HTTP client: per host, per named pool, per process.

A :class:`RateLimit` allows at most ``requests`` request starts in any ``per_s``
seconds. Each host of a client has one (``http.requests_per_second``, evenly spaced),
a named pool has its own, and a :class:`SharedRatePool` is one pool for every client
given it (an API limit counted per IP, whatever the credentials).
"""

from __future__ import annotations

import asyncio
import collections
import time
import weakref
from dataclasses import dataclass, field

__all__ = ["RateLimit", "SharedRatePool"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """At most ``requests`` request starts in any ``per_s`` seconds.

    ``RateLimit(requests=1, per_s=0.05)`` spaces starts 50 ms apart (20 a second);
    ``RateLimit(requests=280, per_s=60)`` lets 280 go at once, then one more each time
    the oldest of the last 280 is a minute old.
    """

    requests: int
    per_s: float

    @classmethod
    def per_second(cls, rps: float | None) -> RateLimit | None:
        """Evenly spaced starts, ``rps`` a second (``None``: no limit)."""
        return None if rps is None else cls(requests=1, per_s=1.0 / rps)


@dataclass(slots=True)
class _HostLimits:
    """The concurrency bound and rate limiter of one API host or rate pool."""

    semaphore: asyncio.Semaphore
    rate: RateLimit | None
    starts: collections.deque[float]
    """The booked starts of the last ``rate.requests`` requests (some in the future)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def book(self) -> tuple[float, float]:
        """Book the next start; return ``(now, start)``.

        The start is the first moment that keeps the last ``rate.requests`` starts
        within the limit, never before an earlier booking (first come, first served).
        Booking, not waiting in a loop, lets a fake ``sleep`` of the tests pass no time.
        """
        async with self.lock:
            now = time.monotonic()
            start = now
            if self.rate is not None:
                starts = self.starts
                if len(starts) == starts.maxlen:
                    start = max(start, starts[0] + self.rate.per_s)
                if starts:
                    start = max(start, starts[-1])
                starts.append(start)
        return now, start


class SharedRatePool:
    """A rate limit shared by every :class:`HttpClient` given it, in this process.

    For an API whose limit counts every request from one IP, whichever tenant's
    credentials it carries (the Confluent Metrics API: 300 a minute per IP): the
    clients of all tenants of a daemon take their turns from one pool. Its state is
    kept per event loop (asyncio's locks belong to one loop).
    """

    __slots__ = ("_by_loop", "rate")

    def __init__(self, rate: RateLimit) -> None:
        self.rate = rate
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _HostLimits] = (
            weakref.WeakKeyDictionary()
        )

    def limits(self, max_concurrency: int) -> _HostLimits:
        """The pool's state in the running event loop (made on first use)."""
        loop = asyncio.get_running_loop()
        found = self._by_loop.get(loop)
        if found is None:
            found = _HostLimits(
                semaphore=asyncio.Semaphore(max_concurrency),
                rate=self.rate,
                starts=collections.deque(maxlen=self.rate.requests),
            )
            self._by_loop[loop] = found
        return found
