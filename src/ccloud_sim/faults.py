"""Switchable faults, rate limits and request statistics of the simulator.

All three are plain mutable objects hung on ``app.state`` (``faults``,
``rate_limits``, ``stats``) so tests can flip them between requests; the real
server sets them from CLI flags or ``POST /_sim/faults``.

Fault decisions are deterministic: request number *n* (counted per app, control
endpoints excluded) draws from ``blake2b(fault_seed, n)``.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ccloud_sim._det import unit_float

__all__ = ["METRICS_API_REQUESTS_PER_MINUTE", "Faults", "RateLimits", "Stats"]


@dataclass(slots=True)
class Faults:
    """Fault injection switches (rates are probabilities per request, 0 = off).

    Attributes:
        seed: seeds the per-request draws.
        rate_429: answer 429 with ``Retry-After: retry_after`` (and rate-limit headers).
        retry_after: seconds sent in ``Retry-After`` for injected 429s.
        rate_500: answer 500 with the error envelope.
        rate_503: answer 503 with the error envelope.
        rate_drop: drop the connection mid-response (see README: the app raises
            ``SimulatedDisconnect``, an ``httpx.RemoteProtocolError``; under uvicorn the
            socket is closed after a partial body).
        rate_slow: delay the response by ``slow_seconds``.
        slow_seconds: the delay of slow responses.
        rate_truncate: serve a list page with fewer items than asked (still a valid
            ``next``/``page_token``; the client must still get everything).
        rate_cut_body: send a 200 whose JSON body is cut in half.
        outage: every request gets 503.
        billing_amounts: line type -> the ``amount`` every cost row of that type reports
            (a bad bill, e.g. ``{"KAFKA_PARTITION": 1e15}``; empty = the true amounts).
        paths: only requests whose path starts with one of these prefixes get faults
            (empty = all).
    """

    seed: int = 0
    rate_429: float = 0.0
    retry_after: int = 1
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_drop: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 0.5
    rate_truncate: float = 0.0
    rate_cut_body: float = 0.0
    outage: bool = False
    paths: tuple[str, ...] = ()
    billing_amounts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def uniform(cls, rate: float, seed: int = 0) -> Faults:
        """*rate* spread over 429, 500, 503, drops, truncated pages and cut bodies."""
        share = rate / 6
        return cls(
            seed=seed,
            rate_429=share,
            rate_500=share,
            rate_503=share,
            rate_drop=share,
            rate_truncate=share,
            rate_cut_body=share,
            retry_after=0,
        )

    def update(self, values: dict[str, Any]) -> None:
        """Set the named attributes (used by ``POST /_sim/faults``).

        Raises:
            ValueError: for an unknown attribute name.
        """
        names = {f.name for f in fields(self)}
        for key, value in values.items():
            if key not in names:
                raise ValueError(f"unknown fault {key!r}; expected one of {sorted(names)}")
            if key == "billing_amounts" and not isinstance(value, dict):
                raise ValueError("billing_amounts is an object: line type -> amount")
            setattr(self, key, tuple(value) if key == "paths" else value)

    def as_dict(self) -> dict[str, Any]:
        """All switches as a JSON-ready dict."""
        out = asdict(self)
        out["paths"] = list(self.paths)
        return out

    def applies(self, path: str) -> bool:
        """True if faults may hit *path*."""
        return not self.paths or path.startswith(self.paths)

    def draw(self, n: int, what: str) -> float:
        """The deterministic uniform draw of request *n* for fault kind *what*."""
        return unit_float("fault", self.seed, n, what)

    def pick(self, n: int) -> str | None:
        """The status fault of request *n*: ``429``, ``500``, ``503``, ``drop`` or None."""
        u = self.draw(n, "status")
        for name, rate in (
            ("429", self.rate_429),
            ("500", self.rate_500),
            ("503", self.rate_503),
            ("drop", self.rate_drop),
        ):
            if u < rate:
                return name
            u -= rate
        return None


METRICS_API_REQUESTS_PER_MINUTE = 300
"""The Metrics API's documented limit: 300 requests per minute per IP (reference §4.3)."""


@dataclass(slots=True)
class RateLimits:
    """Fixed-window request limits per API host group (``None`` = unlimited).

    ``management`` covers every ``api.confluent.cloud`` path (and the Flink SQL
    host), counted for all clients together (Confluent publishes no figure);
    ``telemetry`` covers ``/v2/metrics`` and is counted per client IP, like the
    Metrics API's documented limit (:data:`METRICS_API_REQUESTS_PER_MINUTE`, e.g.
    ``RateLimits(telemetry=METRICS_API_REQUESTS_PER_MINUTE)``).
    """

    management: int | None = None
    telemetry: int | None = None
    window_seconds: float = 60.0
    _windows: dict[str, tuple[float, int]] = field(default_factory=dict, repr=False)

    def limit(self, group: str) -> int | None:
        """The configured limit of *group*."""
        return self.management if group == "management" else self.telemetry

    def hit(self, group: str, client: str | None = None) -> tuple[bool, int, int, int]:
        """Count a request of *client* (an IP); returns
        ``(allowed, limit, remaining, reset_seconds)``."""
        limit = self.limit(group)
        if limit is None:
            return True, 0, 0, 0
        window = f"{group} {client}" if group == "telemetry" else group
        now = time.monotonic()
        start, count = self._windows.get(window, (now, 0))
        if now - start >= self.window_seconds:
            start, count = now, 0
        reset = max(1, round(self.window_seconds - (now - start)))
        if count >= limit:
            self._windows[window] = (start, count)
            return False, limit, 0, reset
        self._windows[window] = (start, count + 1)
        return True, limit, limit - count - 1, reset


@dataclass(slots=True)
class Stats:
    """Request counters keyed by ``"METHOD /route/template"``."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        """Zero every counter."""
        self.requests.clear()
        self.statuses.clear()
        self.faults.clear()

    def as_dict(self) -> dict[str, Any]:
        """Counters as a JSON-ready dict."""
        return {
            "requests": dict(self.requests),
            "statuses": {f"{k} {s}": v for (k, s), v in self.statuses.items()},
            "faults": dict(self.faults),
        }
