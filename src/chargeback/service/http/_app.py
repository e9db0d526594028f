"""The daemon's ASGI app: Starlette routes answered on the HTTP server's own loop.

Where each route runs:

- ``/metrics`` on the HTTP server's loop, from the in-memory exposition (no I/O, no
  wait for the daemon's loop), so a pipeline's CPU slice never delays a scrape.
- ``/healthz`` and ``/readyz`` ask the daemon's loop (:meth:`DaemonApp.on_daemon_loop`):
  a wedged daemon loop must fail its liveness probe, as before.
- Every other route (``/api/v1/`` now; the query API and the UI later) on the HTTP
  server's loop, reading the database through the server's own read-only backend
  (:func:`storage_of`). Request bodies, streaming responses and static files work as
  in any Starlette app.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from chargeback.core.storage.backend import StorageBackend
from chargeback.errors import StorageError
from chargeback.service.http._gzip import accepts_gzip
from chargeback.service.http._storage import LoopStorage

__all__ = [
    "DaemonApp",
    "Exposition",
    "HealthSource",
    "daemon_app",
    "json_response",
    "make_app",
    "storage_of",
]

_T = TypeVar("_T")


class HealthSource(Protocol):
    """Protocol: what the probes ask the daemon."""

    def health(self) -> dict[str, Any]:
        """Return liveness details (state, heartbeat age, counters)."""
        ...

    def readiness(self) -> list[str]:
        """Return why the daemon is not ready (empty: ready)."""
        ...


class Exposition(Protocol):
    """Protocol: what ``/metrics`` serves.

    Both methods must be fast (no rendering) and thread-safe: they are called on the
    HTTP server's thread, while the daemon's loop may be running a pipeline.
    """

    def exposition(self) -> bytes:
        """Return the Prometheus text."""
        ...

    def exposition_gzip(self) -> bytes:
        """Return the same text as one gzip member."""
        ...


def json_response(status: int, body: dict[str, Any]) -> Response:
    """A JSON response as the probes have always written it (indented by nothing, ``\\n``)."""
    return Response(json.dumps(body).encode() + b"\n", status, media_type="application/json")


class DaemonApp:
    """The ASGI app of the daemon's HTTP server (see the module docstring).

    :class:`~chargeback.service.http.HttpServer` serves it on a thread of its own with
    its own event loop and tells it the daemon's loop (:meth:`attach`).

    Args:
        source: the ``/metrics`` body, plain or gzip (Prometheus asks for gzip).
        health: answers the probes, on the daemon's loop.
        storage: makes the server's read-only backend (opened on first use, on the
            server's loop); ``None``: routes that need storage answer 503.
        routes: more Starlette routes (the daemon mounts ``/api/v1/`` here).
    """

    def __init__(
        self,
        source: Exposition,
        health: HealthSource,
        *,
        storage: Callable[[], StorageBackend] | None = None,
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.source = source
        self.health = health
        self.storage = LoopStorage(storage)
        self.home: asyncio.AbstractEventLoop | None = None
        self.starlette = Starlette(
            routes=[
                Route("/metrics", self._metrics),
                Route("/healthz", self._healthz),
                Route("/readyz", self._readyz),
                *routes,
            ],
            exception_handlers={
                404: _not_found,
                405: _not_allowed,
                StorageError: _storage_unavailable,
            },
        )
        self.starlette.state.daemon_app = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request (lifespan is not served)."""
        await self.starlette(scope, receive, send)

    def attach(self, home: asyncio.AbstractEventLoop) -> None:
        """Name the daemon's loop, where the probes are answered."""
        self.home = home

    async def on_daemon_loop(self, fn: Callable[[], _T]) -> _T:
        """Call ``fn`` on the daemon's loop and return its result here.

        Waits while the daemon's loop is busy: that wait is what a probe measures.
        """
        home = self.home
        if home is None or home is asyncio.get_running_loop():
            return fn()

        async def call() -> _T:
            return fn()

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), home))

    async def aclose(self) -> None:
        """Close what the routes opened (on the server's loop). Idempotent."""
        await self.storage.close()

    # -- the three endpoints of DESIGN §9 --------------------------------------------------
    async def _metrics(self, request: Request) -> Response:
        if accepts_gzip(request.scope):
            return Response(
                self.source.exposition_gzip(),
                media_type=CONTENT_TYPE_LATEST,
                headers={"content-encoding": "gzip", "vary": "accept-encoding"},
            )
        return Response(self.source.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def _healthz(self, request: Request) -> Response:
        details = await self.on_daemon_loop(self.health.health)
        return json_response(200, {"status": "ok", **details})

    async def _readyz(self, request: Request) -> Response:
        reasons = await self.on_daemon_loop(self.health.readiness)
        if reasons:
            return json_response(503, {"status": "not ready", "reasons": reasons})
        return json_response(200, {"status": "ready"})


def make_app(
    source: Exposition,
    health: HealthSource,
    *,
    storage: Callable[[], StorageBackend] | None = None,
    routes: Sequence[BaseRoute] = (),
) -> DaemonApp:
    """Build the daemon's ASGI app (see :class:`DaemonApp`)."""
    return DaemonApp(source, health, storage=storage, routes=routes)


def daemon_app(request: Request) -> DaemonApp:
    """The :class:`DaemonApp` serving ``request`` (for routes mounted on it)."""
    app = request.app.state.daemon_app
    if not isinstance(app, DaemonApp):
        raise TypeError("this route is not served by the daemon's app")
    return app


async def storage_of(request: Request) -> StorageBackend:
    """The HTTP server's read-only storage backend, open, on the server's loop.

    Raises:
        StorageError: no storage, or it cannot be opened (answered 503 as JSON).
    """
    return await daemon_app(request).storage.get()


async def _not_found(request: Request, exc: Exception) -> Response:
    return Response(b"not found\n", 404, media_type="text/plain")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    headers = exc.headers if isinstance(exc, HTTPException) else None
    return Response(b"method not allowed\n", 405, headers=headers, media_type="text/plain")


async def _storage_unavailable(request: Request, exc: Exception) -> Response:
    return json_response(503, {"status": "storage unavailable", "error": str(exc)})
