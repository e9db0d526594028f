"""``/metrics``, ``/healthz`` and ``/readyz`` of the daemon (DESIGN §9).

A tiny ASGI app served by uvicorn. The handlers only read in-memory state, so a probe
or scrape never waits for a pipeline:

- ``/metrics``: the daemon's exposition (service metrics rendered per scrape, the
  ``prometheus`` emitter's chargeback series pre-rendered and pre-compressed at its
  last refresh). It is answered on the HTTP server's own thread and event loop: a
  pipeline's CPU-bound slice holds the daemon's loop for up to a few hundred ms on a
  big organization, and a scrape must not wait for it.
- ``/healthz``: 200 when the daemon's loop answers, with the heartbeat's age (handed
  to that loop, so a wedged loop still fails the probe).
- ``/readyz``: 200 when storage is open, settings are loaded and the scheduler runs;
  503 with a JSON reason otherwise (also answered on the daemon's loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from typing import Any, Protocol

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST

__all__ = ["Exposition", "HealthSource", "HttpServer", "MetricsApp", "gzip_stream", "make_app"]

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
    """Whether the request's ``Accept-Encoding`` allows gzip (``gzip;q=0`` refuses it)."""
    for name, value in scope.get("headers", ()):
        if name.lower() != b"accept-encoding":
            continue
        for item in value.lower().split(b","):
            coding, _, params = item.partition(b";")
            if coding.strip() not in (b"gzip", b"*"):
                continue
            q = params.strip()
            if q.startswith(b"q="):
                try:
                    return float(q[2:]) > 0
                except ValueError:
                    return False
            return True
    return False


class MetricsApp:
    """The ASGI app serving the three endpoints.

    Args:
        source: the ``/metrics`` body, plain or gzip (Prometheus asks for gzip).
        health: answers the probes.

    Attributes:
        thread_paths: the paths :class:`HttpServer` may answer on its own thread;
            every other path runs on the loop that started the server.
    """

    thread_paths = frozenset({"/metrics"})

    def __init__(self, source: Exposition, health: HealthSource) -> None:
        self.source = source
        self.health = health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request (lifespan and websockets are not served)."""
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        if scope.get("method") not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", "text/plain")
        elif path == "/metrics":
            if _accepts_gzip(scope):
                body = self.source.exposition_gzip()
                await _respond(send, 200, body, CONTENT_TYPE_LATEST, encoding=b"gzip")
            else:
                await _respond(send, 200, self.source.exposition(), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            await _respond_json(send, 200, {"status": "ok", **self.health.health()})
        elif path == "/readyz":
            reasons = self.health.readiness()
            if reasons:
                await _respond_json(send, 503, {"status": "not ready", "reasons": reasons})
            else:
                await _respond_json(send, 200, {"status": "ready"})
        else:
            await _respond(send, 404, b"not found\n", "text/plain")


def make_app(source: Exposition, health: HealthSource) -> MetricsApp:
    """Build the ASGI app serving the three endpoints (see :class:`MetricsApp`)."""
    return MetricsApp(source, health)


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


App = Callable[[Scope, Receive, Send], Awaitable[None]]


class HttpServer:
    """uvicorn serving an ASGI app.

    An app with ``thread_paths`` (:class:`MetricsApp`) is served by uvicorn on a thread
    of its own with its own event loop: those paths are answered there, and every
    other request is handed whole to the loop that called :meth:`start` (the daemon's),
    so the probes keep meaning "the daemon's loop answers". Any other app (the demo's
    simulator) is served as a task of the current loop.

    Args:
        app: the ASGI app.
        host: listen address.
        port: listen port (0: any free port; see :attr:`port` after :meth:`start`).
    """

    def __init__(self, app: App, host: str, port: int) -> None:
        self._app = app
        self._thread_paths: frozenset[str] = frozenset(getattr(app, "thread_paths", ()))
        config = uvicorn.Config(
            self._route if self._thread_paths else app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            interface="asgi3",
            server_header=False,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._home: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self.host = host
        self.port = port

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """On the server's thread: answer ``thread_paths`` here, hand the rest home."""
        home = self._home
        if home is None or scope["type"] != "http" or scope.get("path") in self._thread_paths:
            await self._app(scope, receive, send)
            return
        sent: list[Message] = []

        async def keep(message: Message) -> None:
            sent.append(message)

        async def no_body() -> Message:
            # The app serves GET and HEAD only and never reads a request body.
            return {"type": "http.request", "body": b"", "more_body": False}

        async def answer() -> None:
            await self._app(scope, no_body, keep)

        future = asyncio.run_coroutine_threadsafe(answer(), home)
        await asyncio.wrap_future(future)
        for message in sent:
            await send(message)

    async def start(self) -> None:
        """Start serving; return once the socket listens.

        Raises:
            OSError: the address could not be bound.
        """
        if self._thread_paths:
            self._home = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._serve_thread, name="http-server")
            self._thread.daemon = True
            self._thread.start()
            while not self._server.started:
                if not self._thread.is_alive():
                    raise OSError(f"cannot listen on {self.host}:{self.port}") from self._failure
                await asyncio.sleep(0.01)
        else:
            self._task = asyncio.create_task(self._serve(), name="http-server")
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # re-raise why it stopped
                    raise OSError(f"HTTP server on {self.host}:{self.port} did not start")
                await asyncio.sleep(0.01)
        servers = getattr(self._server, "servers", [])
        if servers and servers[0].sockets:
            self.port = int(servers[0].sockets[0].getsockname()[1])

    def _serve_thread(self) -> None:
        try:
            asyncio.run(self._server.serve())
        except (SystemExit, Exception) as exc:  # uvicorn exits when it cannot bind
            self._failure = exc

    async def _serve(self) -> None:
        try:
            await self._server.serve()
        except SystemExit as exc:  # uvicorn exits the process when it cannot bind
            raise OSError(f"cannot listen on {self.host}:{self.port}") from exc

    async def aclose(self) -> None:
        """Stop serving (open connections get a moment to finish). Idempotent."""
        if self._thread is not None:
            thread, self._thread = self._thread, None
            self._server.should_exit = True
            await asyncio.to_thread(thread.join, 2)
            if thread.is_alive():
                self._server.force_exit = True
                await asyncio.to_thread(thread.join, 5)
            return
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
