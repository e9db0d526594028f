"""uvicorn serving an ASGI app: the daemon's on a thread of its own, any other on this loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from chargeback.service.http._app import DaemonApp

__all__ = ["HttpServer"]


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling (the daemon owns the signals)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """uvicorn serving an ASGI app.

    The daemon's app (:class:`~chargeback.service.http.DaemonApp`) is served by uvicorn
    on a thread of its own with its own event loop, so ``/metrics`` and the read-only
    routes never wait for the daemon's loop; the app is told the loop that called
    :meth:`start` (the daemon's), where it answers the probes. Any other app (the
    demo's simulator) is served as a task of the current loop.

    Args:
        app: the ASGI app.
        host: listen address.
        port: listen port (0: any free port; see :attr:`port` after :meth:`start`).
    """

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self._daemon_app = app if isinstance(app, DaemonApp) else None
        config = uvicorn.Config(
            app,
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
        self._failure: BaseException | None = None
        self.host = host
        self.port = port

    async def start(self) -> None:
        """Start serving; return once the socket listens.

        Raises:
            OSError: the address could not be bound.
        """
        if self._daemon_app is not None:
            self._daemon_app.attach(asyncio.get_running_loop())
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
            asyncio.run(self._serve_then_close())
        except (SystemExit, Exception) as exc:  # uvicorn exits when it cannot bind
            self._failure = exc

    async def _serve_then_close(self) -> None:
        """The server thread's loop: serve, then close what the routes opened on it."""
        try:
            await self._server.serve()
        finally:
            if self._daemon_app is not None:
                await self._daemon_app.aclose()

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
