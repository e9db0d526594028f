"""The web UI (DESIGN §15): server-rendered pages on the daemon's HTTP server, offline.

HTML from Jinja2 templates, charts as inline SVG, one stylesheet served from this
package (``/ui/static/``): no JavaScript framework and nothing fetched from elsewhere,
so the UI works on a closed network. Pages read through the query API's own functions
(:mod:`.pages`); ``/`` redirects to ``/ui/``. With API tokens configured the UI needs
the same bearer token (a reverse proxy in front can add it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from chargeback.service.api import context_factory
from chargeback.service.api._auth import ApiTokens, TokenAuthMiddleware
from chargeback.service.ui.pages import HERE, PAGES, page_handler

if TYPE_CHECKING:
    from chargeback.settings import AppSettings

__all__ = ["PREFIX", "routes"]

PREFIX = "/ui"


async def _home(request: Request) -> Response:
    query = request.url.query
    return RedirectResponse("/ui/" + (f"?{query}" if query else ""), status_code=307)


def routes(
    settings: AppSettings | None = None, *, tokens: ApiTokens | None = None
) -> list[BaseRoute]:
    """The UI's routes (``/ui/...``, and ``/`` redirecting there)."""
    tokens = ApiTokens.from_env() if tokens is None else tokens
    context = context_factory(settings)
    inner: list[BaseRoute] = [
        Route(path, page_handler(path, context), methods=["GET"]) for path in PAGES
    ]
    inner.append(Mount("/static", StaticFiles(directory=HERE / "static"), name="ui_static"))
    middleware = [Middleware(TokenAuthMiddleware, tokens=tokens)] if tokens.enabled else []
    return [Route("/", _home), Mount(PREFIX, routes=inner, middleware=middleware)]
