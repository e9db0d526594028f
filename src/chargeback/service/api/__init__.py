"""The read-only JSON API under ``/api/v1/`` (DESIGN §15), served by the daemon's HTTP server.

Each route is a Starlette route in :func:`routes`; it runs on the HTTP server's own
loop and reads the database through that loop's read-only backend::

    async def allocation(request: Request) -> Response:
        storage = await storage_of(request)
        ...

So far the index only: the API's version and the tenants with stored state, each with
its newest calculated date (read from the database, not from the daemon's memory).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

import chargeback
from chargeback.service.http import json_response, storage_of

__all__ = ["PREFIX", "routes"]

PREFIX = "/api/v1"


async def index(request: Request) -> Response:
    """``GET /api/v1/``: the API's version and every tenant's newest calculated date."""
    storage = await storage_of(request)
    tenants = []
    for tenant in await storage.tenants():
        latest = await storage.latest_calculated_date(tenant)
        day = None if latest is None else latest.isoformat()
        tenants.append({"tenant": tenant, "latest_date": day})
    return json_response(
        200, {"api": "v1", "chargeback": chargeback.__version__, "tenants": tenants}
    )


def routes() -> list[BaseRoute]:
    """The API's routes, mounted at :data:`PREFIX`."""
    return [Mount(PREFIX, routes=[Route("/", index, name="api_index")])]
