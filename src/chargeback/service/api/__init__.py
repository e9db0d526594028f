"""The read-only JSON API under ``/api/v1/`` (DESIGN §15), served by the daemon's HTTP server.

::

    GET /api/v1/                 version and tenants with their newest calculated date
    GET /api/v1/allocation       amounts by dimensions over a window, in steps (JSON, CSV)
    GET /api/v1/identities       identities ever seen, with names and active periods
    GET /api/v1/resources        resources ever seen
    GET /api/v1/dates            per-date status: calculated, fingerprints, totals, open/closed
    GET /api/v1/runs             the newest runs
    GET /api/v1/explain          one billing line, its parts and why (JSON, CSV)
    GET /api/v1/budgets          each team budget of a month: spent, thresholds, forecast
    GET /api/v1/forecast         every team's month-end forecast with its interval
    GET /api/v1/openapi.json     the OpenAPI document, generated from the endpoints

Each route runs on the HTTP server's own loop and reads the database through that
loop's read-only backend (``await storage_of(request)``) and a query source of the same
file (:mod:`chargeback.core.query`). With ``$CHARGEBACK_API_TOKENS`` set every request
needs a bearer token (:mod:`._auth`); ``/metrics`` and the probes never do.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

import chargeback
from chargeback.core.budgets.config import BudgetSettings
from chargeback.service.api import allocation, budgets, explain, inventory, status
from chargeback.service.api._auth import ApiTokens, TokenAuthMiddleware, scope_of
from chargeback.service.api._endpoint import ApiContext, Endpoint, make_context
from chargeback.service.api._openapi import openapi_document
from chargeback.service.http import json_response, storage_of

if TYPE_CHECKING:
    from chargeback.settings import AppSettings

__all__ = ["ENDPOINTS", "PREFIX", "context_factory", "routes"]

PREFIX = "/api/v1"
DEFAULT_OPEN_DAYS = 3
"""Days a bill stays open when the tenant is not in the settings (Confluent: ~72 h)."""

ENDPOINTS: tuple[Endpoint[Any], ...] = (
    allocation.endpoint,
    inventory.identities_endpoint,
    inventory.resources_endpoint,
    status.dates_endpoint,
    status.runs_endpoint,
    explain.endpoint,
    budgets.budgets_endpoint,
    budgets.forecast_endpoint,
)


async def index(request: Request) -> Response:
    """``GET /api/v1/``: the API's version and every tenant's newest calculated date."""
    storage = await storage_of(request)
    scope = scope_of(request)
    tenants = []
    for tenant in await storage.tenants():
        if scope.tenant is not None and tenant != scope.tenant:
            continue
        latest = await storage.latest_calculated_date(tenant)
        day = None if latest is None else latest.isoformat()
        tenants.append({"tenant": tenant, "latest_date": day})
    return json_response(
        200, {"api": "v1", "chargeback": chargeback.__version__, "tenants": tenants}
    )


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _open_days(settings: AppSettings | None, tenant: str) -> int:
    if settings is None or tenant not in settings.tenants:
        return DEFAULT_OPEN_DAYS
    return settings.tenant_config(tenant).cutoff_days


def context_factory(
    settings: AppSettings | None,
) -> Callable[[Request], Awaitable[ApiContext]]:
    """Make each request's :class:`ApiContext` (the API's and the UI's routes share it)."""
    return functools.partial(
        make_context,
        today=_today,
        open_days=functools.partial(_open_days, settings),
        budgets=BudgetSettings() if settings is None else settings.budgets,
    )


def routes(
    settings: AppSettings | None = None, *, tokens: ApiTokens | None = None
) -> list[BaseRoute]:
    """The API's routes, mounted at :data:`PREFIX`.

    Args:
        settings: the tenants' settings (their ``cutoff_days`` say which dates are open).
        tokens: the accepted bearer tokens (default: from ``$CHARGEBACK_API_TOKENS``).

    Raises:
        ConfigError: the token variable is malformed.
    """
    tokens = ApiTokens.from_env() if tokens is None else tokens
    context = context_factory(settings)
    document = openapi_document(ENDPOINTS, chargeback.__version__, PREFIX)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    inner: list[BaseRoute] = [
        Route("/", index, name="api_index"),
        Route("/openapi.json", openapi, name="openapi"),
        *(ep.route(context) for ep in ENDPOINTS),
    ]
    middleware = [Middleware(TokenAuthMiddleware, tokens=tokens)] if tokens.enabled else []
    return [Mount(PREFIX, routes=inner, middleware=middleware)]
