"""The HTTP server's own read-only storage handle (for ``/api/v1/`` and the UI).

The daemon's backend belongs to the daemon's loop: an aiosqlite connection (and a
future PostgreSQL pool) answers only the loop that opened it, and a route answered
there would wait for a pipeline's CPU slice like a probe does. So the HTTP server's
routes read through a backend of their own, read-only, opened on the HTTP server's
loop by the first request that asks for it and closed when the server stops. The
daemon stays the single writer; SQLite's WAL gives these reads the last committed
state without ever waiting for a commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chargeback.core.storage.backend import StorageBackend
from chargeback.errors import StorageError

__all__ = ["LoopStorage"]


class LoopStorage:
    """A storage backend owned by one event loop, opened on first use.

    Args:
        factory: makes the unopened backend (the daemon passes
            ``make_backend(settings.storage, read_only=True)``); ``None``: the server
            has no storage, and :meth:`get` says so.
    """

    def __init__(self, factory: Callable[[], StorageBackend] | None) -> None:
        self._factory = factory
        self._backend: StorageBackend | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> StorageBackend:
        """Return the open backend, opening it on the running loop the first time.

        Raises:
            StorageError: there is no storage, or it could not be opened (the next
                call tries again).
            RuntimeError: called from a loop other than the one that opened it.
        """
        loop = asyncio.get_running_loop()
        if self._backend is not None:
            self._check_loop(loop)
            return self._backend
        if self._factory is None:
            raise StorageError("this HTTP server has no storage configured")
        if self._lock is None:
            self._lock, self._loop = asyncio.Lock(), loop
        self._check_loop(loop)
        async with self._lock:
            if self._backend is None:
                backend = self._factory()
                await backend.open()
                self._backend = backend
        return self._backend

    def _check_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            raise RuntimeError(
                "this storage handle belongs to the HTTP server's event loop; a route "
                "must use it there (await storage_of(request)), not on another loop"
            )

    async def close(self) -> None:
        """Close the backend if it was opened (on its own loop). Idempotent."""
        backend, self._backend = self._backend, None
        if backend is not None:
            await backend.close()
