"""The ASGI application: routes, HTTP Basic auth, rate limits, faults and stats.

``create_app()`` returns a Starlette app usable in-process through
``httpx.ASGITransport`` or served by uvicorn (``ccloud-sim serve``). Its
``app.state`` holds ``org``, ``clock``, ``faults``, ``rate_limits`` and ``stats``;
tests may change them between requests. Control endpoints (no auth, no faults):
``GET/POST /_sim/faults``, ``GET /_sim/stats``, ``POST /_sim/stats/reset``,
``GET/POST /_sim/clock``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from datetime import date, datetime

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccloud_sim import api_billing, api_inventory, api_metrics
from ccloud_sim._http import SimState, error, json_response, sim
from ccloud_sim.api_inventory import _Render
from ccloud_sim.clock import SimClock
from ccloud_sim.faults import Faults, RateLimits, Stats
from ccloud_sim.org import Organization
from ccloud_sim.scales import Scale

__all__ = ["DEFAULT_API_KEY", "DEFAULT_API_SECRET", "SimulatedDisconnect", "create_app"]

DEFAULT_API_KEY = "SIMKEY"
DEFAULT_API_SECRET = "SIMSECRET"  # noqa: S105 - a documented test credential


class SimulatedDisconnect(httpx.RemoteProtocolError):
    """Raised by the app to drop a connection mid-response (a ``rate_drop`` fault)."""


def _style(path: str) -> tuple[str, str]:
    """(error style, rate-limit group) of a request path."""
    if path.startswith("/v2/metrics"):
        return "metrics", "telemetry"
    if path.startswith("/connect/"):
        return "connect", "management"
    return "management", "management"


class _SimMiddleware:
    """Stats, outage, auth, rate limits and faults in front of the routes."""

    def __init__(self, app: ASGIApp, state: SimState, routes: list[BaseRoute]) -> None:
        self.app = app
        self.sim = state
        self.routes = routes

    def _route_name(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL and isinstance(route, Route):
                return f"{scope['method']} {route.path}"
        return f"{scope['method']} {scope['path']}"

    def _authorized(self, scope: Scope) -> bool:
        headers = dict(scope["headers"])
        value = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            key, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return key in self.sim.credentials and self.sim.credentials[key] == secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        state = self.sim
        path = scope["path"]
        name = self._route_name(scope)
        style, group = _style(path)
        state.stats.requests[name] += 1
        status_box = [0]

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, counting_send, style=style, group=group)
        finally:
            state.stats.statuses[(name, status_box[0])] += 1

    async def _reply(self, scope: Scope, receive: Receive, send: Send, resp: Response) -> None:
        await resp(scope, receive, send)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, *, style: str, group: str
    ) -> None:
        state = self.sim
        faults = state.faults
        if faults.outage:
            state.stats.faults["outage"] += 1
            await self._reply(
                scope,
                receive,
                send,
                error(503, "Service unavailable (simulated outage)", style=style),
            )
            return
        if not self._authorized(scope):
            detail = (
                "Invalid credentials"
                if style == "metrics"
                else "Valid authentication credentials must be provided"
            )
            www = 'Basic error="invalid_key", error_description="The API Key is invalid"'
            await self._reply(
                scope,
                receive,
                send,
                error(401, detail, style=style, headers={"WWW-Authenticate": www}),
            )
            return
        client = scope.get("client")
        allowed, limit, remaining, reset = state.rate_limits.hit(group, client and client[0])
        rl_headers: dict[str, str] = {}
        if limit:
            prefix = "X-RateLimit-" if group == "management" else "rateLimit-"
            rl_headers = {
                f"{prefix}Limit": str(limit),
                f"{prefix}Remaining": str(remaining),
                f"{prefix}Reset": str(reset),
            }
        if not allowed:
            state.stats.faults["rate_limited"] += 1
            headers = {**rl_headers, "Retry-After": str(reset)}
            await self._reply(
                scope,
                receive,
                send,
                error(
                    429, "Retry after the indicated number of seconds", style=style, headers=headers
                ),
            )
            return
        cut = False
        if faults.applies(scope["path"]):
            state.request_no += 1
            n = state.request_no
            kind = faults.pick(n)
            if kind is not None:
                state.stats.faults[kind] += 1
            if kind == "429":
                headers = {"Retry-After": str(faults.retry_after)}
                prefix = "X-RateLimit-" if group == "management" else "rateLimit-"
                headers.update(
                    {
                        f"{prefix}Limit": "100",
                        f"{prefix}Remaining": "0",
                        f"{prefix}Reset": str(faults.retry_after),
                    }
                )
                await self._reply(
                    scope,
                    receive,
                    send,
                    error(
                        429,
                        "Retry after the indicated number of seconds",
                        style=style,
                        headers=headers,
                    ),
                )
                return
            if kind in ("500", "503"):
                await self._reply(
                    scope, receive, send, error(int(kind), "Simulated server error", style=style)
                )
                return
            if kind == "drop":
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", b"4096"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"data":[', "more_body": True})
                raise SimulatedDisconnect(
                    "peer closed connection without sending complete message body"
                )
            if faults.draw(n, "slow") < faults.rate_slow:
                state.stats.faults["slow"] += 1
                await asyncio.sleep(faults.slow_seconds)
            if faults.draw(n, "truncate") < faults.rate_truncate:
                state.stats.faults["truncate"] += 1
                scope.setdefault("state", {})["sim_truncate"] = True
            cut = faults.draw(n, "cut") < faults.rate_cut_body
        await self._call_app(scope, receive, send, rl_headers, cut=cut)

    async def _call_app(
        self, scope: Scope, receive: Receive, send: Send, extra: dict[str, str], *, cut: bool
    ) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def wrapped(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.encode(), v.encode()) for k, v in extra.items()),
                ]
                if not cut:
                    await send(message)
                else:
                    start = message
                return
            if not cut:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False) and start is not None:
                body = b"".join(chunks)
                if start["status"] == 200 and len(body) > 2:
                    self.sim.stats.faults["cut_body"] += 1
                    body = body[: len(body) // 2]
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, wrapped)


async def _faults_endpoint(request: Request) -> Response:
    state = sim(request)
    if request.method == "POST":
        try:
            state.faults.update(await request.json())
        except (ValueError, TypeError, AttributeError) as exc:
            return error(400, str(exc))
    return json_response(state.faults.as_dict())


async def _stats_endpoint(request: Request) -> Response:
    return json_response(sim(request).stats.as_dict())


async def _stats_reset(request: Request) -> Response:
    sim(request).stats.reset()
    return json_response({})


async def _clock_endpoint(request: Request) -> Response:
    clock = sim(request).clock
    if request.method == "POST":
        try:
            clock.set(
                datetime.fromisoformat(str((await request.json())["now"]).replace("Z", "+00:00"))
            )
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, f'expected {{"now": ISO-8601}}: {exc}')
    return json_response({"now": clock.now().isoformat(), "frozen": clock.frozen})


def create_app(
    org: Organization | None = None,
    *,
    seed: int = 0,
    scale: str | Scale = "tiny",
    clock: SimClock | None = None,
    anchor: date | None = None,
    credentials: Mapping[str, str] | None = None,
    faults: Faults | None = None,
    rate_limits: RateLimits | None = None,
    max_billing_days: int = 31,
    metrics_retention_days: int | None = 7,
) -> Starlette:
    """Build the simulator app.

    Args:
        org: a ready organization (else one is generated from *seed*, *scale*, *anchor*).
        seed: organization seed when *org* is not given.
        scale: preset name or :class:`Scale` when *org* is not given.
        clock: the sim clock (default: wall clock).
        anchor: end of the generated history (default: the clock's date).
        credentials: API key → secret (default ``{"SIMKEY": "SIMSECRET"}``).
        faults: fault switches (default: all off).
        rate_limits: per host-group limits (default: off).
        max_billing_days: longest ``[start_date, end_date)`` window accepted.
        metrics_retention_days: how long the Metrics API keeps data (the real one
            keeps about 7 days); ``None`` keeps everything. Points older than
            ``now - metrics_retention_days`` are absent from answers.

    Raises:
        ValueError: if *metrics_retention_days* is not ``None`` or a positive integer.
    """
    if metrics_retention_days is not None and metrics_retention_days < 1:
        raise ValueError(
            f"metrics_retention_days must be None (unlimited) or at least 1, "
            f"got {metrics_retention_days}"
        )
    clock = clock or SimClock()
    org = org or Organization(seed, scale, anchor or clock.today())
    state = SimState(
        org=org,
        clock=clock,
        credentials=dict(credentials or {DEFAULT_API_KEY: DEFAULT_API_SECRET}),
        faults=faults or Faults(),
        rate_limits=rate_limits or RateLimits(),
        stats=Stats(),
        max_billing_days=max_billing_days,
        metrics_retention_days=metrics_retention_days,
    )
    routes: list[BaseRoute] = [
        *api_billing.routes,
        *api_inventory.routes,
        *api_metrics.routes,
        Route("/_sim/faults", _faults_endpoint, methods=["GET", "POST"]),
        Route("/_sim/stats", _stats_endpoint),
        Route("/_sim/stats/reset", _stats_reset, methods=["POST"]),
        Route("/_sim/clock", _clock_endpoint, methods=["GET", "POST"]),
    ]
    app = Starlette(
        routes=routes, middleware=[Middleware(_SimMiddleware, state=state, routes=routes)]
    )
    app.state.sim = state
    app.state.org = org
    app.state.clock = clock
    app.state.faults = state.faults
    app.state.rate_limits = state.rate_limits
    app.state.stats = state.stats
    app.state.render = _Render(org.org_id)
    return app
