"""The daemon's HTTP server: ``/metrics``, ``/healthz``, ``/readyz`` and read-only routes.

Starlette routes served by uvicorn (DESIGN §9, §15). The handlers of the three
endpoints only read in-memory state, so a probe or scrape never waits for a pipeline:

- ``/metrics``: the daemon's exposition (service metrics rendered per scrape, the
  ``prometheus`` emitter's chargeback series pre-rendered and pre-compressed at its
  last refresh). It is answered on the HTTP server's own thread and event loop: a
  pipeline's CPU-bound slice holds the daemon's loop for up to a few hundred ms on a
  big organization, and a scrape must not wait for it.
- ``/healthz``: 200 when the daemon's loop answers, with the heartbeat's age (asked on
  that loop, so a wedged loop still fails the probe).
- ``/readyz``: 200 when storage is open, settings are loaded and the scheduler runs;
  503 with a JSON reason otherwise (also asked on the daemon's loop).

A new route (the query API of ``/api/v1/``, the UI's static files) is a Starlette
route passed to :func:`make_app`; it runs on the HTTP server's loop and reads the
database with ``await storage_of(request)``: a read-only backend of that loop's own
(:mod:`~chargeback.service.http._storage`), so it neither waits for nor disturbs the
daemon's loop. A :class:`~chargeback.errors.StorageError` it raises is answered 503.
"""

from __future__ import annotations

from starlette.types import Scope

from chargeback.service.http._app import (
    DaemonApp,
    Exposition,
    HealthSource,
    daemon_app,
    json_response,
    make_app,
    storage_of,
)
from chargeback.service.http._gzip import accepts_gzip, gzip_stream
from chargeback.service.http._server import HttpServer
from chargeback.service.http._storage import LoopStorage

__all__ = [
    "DaemonApp",
    "Exposition",
    "HealthSource",
    "HttpServer",
    "LoopStorage",
    "Scope",
    "accepts_gzip",
    "daemon_app",
    "gzip_stream",
    "json_response",
    "make_app",
    "storage_of",
]
