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
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from typing import Any, Protocol

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST

__all__ = ["Exposition", "HealthSource", "HttpServer", "gzip_stream", "make_app"]

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


class Exposition(Protocol):
    """Protocol: what ``/metrics`` serves; both methods must be fast (no rendering)."""

    def exposition(self) -> bytes:
        """Return the Prometheus text."""
        ...

    def exposition_gzip(self) -> bytes:
        """Return the same text as one gzip member."""
        ...


_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime


def gzip_stream(precompressed: Sequence[tuple[bytes, bytes, int]], tail: bytes) -> bytes:
    """Return one gzip member of the texts of ``precompressed`` followed by ``tail``.

    Each item is ``(text, deflate, crc)``: ``deflate`` holds ``text`` as raw DEFLATE
    blocks, sync-flushed and not final, and ``crc`` is its CRC-32. Only ``tail`` (the
    small service registry) is compressed here, so a scrape of a big organization's
    series costs no compression. The CRC of a later part is continued over its text.
    """
    crc = 0
    size = 0
    body = [_GZIP_HEADER]
    for text, deflate, part_crc in precompressed:
        crc = part_crc if size == 0 else zlib.crc32(text, crc)
        size += len(text)
        body.append(deflate)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body.append(compressor.compress(tail) + compressor.flush(zlib.Z_FINISH))
    crc = zlib.crc32(tail, crc) if size else zlib.crc32(tail)
    size += len(tail)
    body.append(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
    return b"".join(body)


def _accepts_gzip(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"accept-encoding":
            return b"gzip" in value.lower()
    return False


def make_app(
    source: Exposition, health: HealthSource
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Build the ASGI app serving the three endpoints.

    Args:
        source: the ``/metrics`` body, plain or gzip (Prometheus asks for gzip).
        health: answers the probes.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not served
        path = scope.get("path", "")
        if scope.get("method") not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", "text/plain")
        elif path == "/metrics":
            if _accepts_gzip(scope):
                body = source.exposition_gzip()
                await _respond(send, 200, body, CONTENT_TYPE_LATEST, encoding=b"gzip")
            else:
                await _respond(send, 200, source.exposition(), CONTENT_TYPE_LATEST)
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


async def _respond(
    send: Send, status: int, body: bytes, content_type: str, *, encoding: bytes | None = None
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if encoding is not None:
        headers += [(b"content-encoding", encoding), (b"vary", b"accept-encoding")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
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
