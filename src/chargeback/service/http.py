"""``/metrics``, ``/healthz`` and ``/readyz`` on the daemon's own event loop (DESIGN §9).

A tiny ASGI app served by uvicorn as a task of the daemon's loop (no thread). The
handlers only read in-memory state, so a probe or scrape never waits for a pipeline:

- ``/metrics``: the daemon's exposition (service metrics rendered per scrape, the
  ``prometheus`` emitter's chargeback series pre-rendered at its last refresh).
- ``/healthz``: 200 when the loop answers, with the heartbeat's age.
- ``/readyz``: 200 when storage is open, settings are loaded and the scheduler runs;
  503 with a JSON reason otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any, Protocol

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST

__all__ = ["HealthSource", "HttpServer", "make_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class HealthSource(Protocol):
    """Protocol: what the probes ask the daemon."""

    def health(self) -> dict[str, Any]:
        """Return liveness details (state, heartbeat age, counters)."""
        ...

    def readiness(self) -> list[str]:
        """Return why the daemon is not ready (empty: ready)."""
        ...


def make_app(
    exposition: Callable[[], bytes], health: HealthSource
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Build the ASGI app serving the three endpoints.

    Args:
        exposition: returns the ``/metrics`` body (Prometheus text format); must be fast.
        health: answers the probes.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not served
        path = scope.get("path", "")
        if scope.get("method") not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", "text/plain")
        elif path == "/metrics":
            await _respond(send, 200, exposition(), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            await _respond_json(send, 200, {"status": "ok", **health.health()})
        elif path == "/readyz":
            reasons = health.readiness()
            if reasons:
                await _respond_json(send, 503, {"status": "not ready", "reasons": reasons})
            else:
                await _respond_json(send, 200, {"status": "ready"})
        else:
            await _respond(send, 404, b"not found\n", "text/plain")

    return app


async def _respond_json(send: Send, status: int, body: dict[str, Any]) -> None:
    await _respond(send, status, json.dumps(body).encode() + b"\n", "application/json")


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling (the daemon owns the signals)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """uvicorn serving :func:`make_app` as a task of the current loop.

    Args:
        app: the ASGI app.
        host: listen address.
        port: listen port (0: any free port; see :attr:`port` after :meth:`start`).
    """

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], host: str, port: int
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self.host = host
        self.port = port

    async def start(self) -> None:
        """Start serving; return once the socket listens.

        Raises:
            OSError: the address could not be bound.
        """
        self._task = asyncio.create_task(self._serve(), name="http-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raise why it stopped
                raise OSError(f"HTTP server on {self.host}:{self.port} did not start")
            await asyncio.sleep(0.01)
        servers = getattr(self._server, "servers", [])
        if servers and servers[0].sockets:
            self.port = int(servers[0].sockets[0].getsockname()[1])

    async def _serve(self) -> None:
        try:
            await self._server.serve()
        except SystemExit as exc:  # uvicorn exits the process when it cannot bind
            raise OSError(f"cannot listen on {self.host}:{self.port}") from exc

    async def aclose(self) -> None:
        """Stop serving (open connections get a moment to finish). Idempotent."""
        if self._task is None:
            return
        task, self._task = self._task, None
        self._server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=2)
        except TimeoutError:
            self._server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
