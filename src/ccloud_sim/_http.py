"""Shared HTTP helpers: error envelopes, JSON responses, opaque tokens, list pages."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from ccloud_sim._det import digest_hex
from ccloud_sim._lru import LRU

if TYPE_CHECKING:
    from ccloud_sim.clock import SimClock
    from ccloud_sim.faults import Faults, RateLimits, Stats
    from ccloud_sim.org import Organization

__all__ = ["SimState", "TokenError", "error", "json_response", "list_page"]

T = TypeVar("T")

_TITLES = {
    400: ("bad_request", "Bad Request"),
    401: ("user_unauthenticated", "Authentication Required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not Found"),
    429: ("too_many_requests", "Rate Limit Exceeded"),
    500: ("internal_server_error", "Internal Server Error"),
    503: ("service_unavailable", "Service Unavailable"),
}


@dataclass(slots=True)
class SimState:
    """Everything the handlers share; lives on ``app.state.sim``."""

    org: Organization
    clock: SimClock
    credentials: dict[str, str]
    faults: Faults
    rate_limits: RateLimits
    stats: Stats
    max_billing_days: int = 31
    billing_text: LRU[tuple[str, int], list[str]] = field(default_factory=lambda: LRU(8))
    """Encoded billing rows of the last few days served (a page spans a few days)."""
    billing_count: dict[tuple[str, int], int] = field(default_factory=dict)
    """Row counts per day (and late hour): paging skips whole days by count alone."""
    metrics_retention_days: int | None = 7
    """Metrics older than this many days (before the clock's now) are gone; None: kept."""
    metrics_pages: LRU[tuple[str, int, int], list[str]] = field(default_factory=lambda: LRU(4))
    """Rendered pages of multi-page Metrics answers being paged through (see api_metrics)."""
    request_no: int = 0


def sim(request: Request) -> SimState:
    """The :class:`SimState` of the app serving *request*."""
    state: SimState = request.app.state.sim
    return state


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response (*body* may already be encoded text)."""
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    return Response(text, status, headers=headers, media_type="application/json")


def error(
    status: int,
    detail: str,
    *,
    style: str = "management",
    parameter: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An error response in the envelope of the API *style* (management, connect, metrics)."""
    if style == "connect":
        message = {401: "Unauthorized", 404: "resource not found"}.get(status, detail)
        return json_response({"error": {"code": status, "message": message}}, status, headers)
    code, title = _TITLES.get(status, ("error", "Error"))
    err: dict[str, Any] = {"id": digest_hex("err", status, detail, size=16), "status": str(status)}
    err["code"] = code
    if style == "management":
        err["title"] = title
    err["detail"] = detail
    if parameter is not None:
        err["source"] = {"parameter": parameter}
    return json_response({"errors": [err]}, status, headers)


class TokenError(ValueError):
    """A page token that this server did not issue (or for another query)."""


def encode_token(data: dict[str, Any]) -> str:
    """An opaque, URL-safe page token carrying *data*."""
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    """Inverse of :func:`encode_token`.

    Raises:
        TokenError: if *token* is malformed.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise TokenError(f"invalid page_token {token!r}") from exc
    if not isinstance(data, dict):
        raise TokenError(f"invalid page_token {token!r}")
    return data


def absolute(request: Request, params: dict[str, str]) -> str:
    """Absolute URL of the request path with *params* as the query."""
    base = str(request.base_url).rstrip("/") + request.url.path
    return f"{base}?{urlencode(params)}" if params else base


def list_page(
    request: Request,
    items: Sequence[T],
    render: Callable[[T], dict[str, Any]],
    *,
    api_version: str,
    kind: str,
    filters: dict[str, str],
    default_size: int = 10,
    max_size: int = 100,
) -> Response:
    """One page of a §1.3 list envelope with ``page_size``/``page_token`` pagination.

    The token carries offset, page size and filters; following ``metadata.next`` as-is
    and re-sending the original params plus ``page_token`` both work.
    """
    q = request.query_params
    token = q.get("page_token")
    if token:
        try:
            data = decode_token(token)
            offset, size, tfilters = int(data["o"]), int(data["n"]), dict(data["f"])
        except (TokenError, KeyError, TypeError, ValueError):
            return error(400, "Invalid page token", parameter="page_token")
        if any(filters.get(k) not in (None, v) for k, v in tfilters.items()):
            return error(400, "page_token does not match the query", parameter="page_token")
    else:
        try:
            size = int(q.get("page_size", default_size))
        except ValueError:
            return error(400, "page_size must be an integer", parameter="page_size")
        if not 1 <= size <= max_size:
            detail = f"page_size must be between 1 and {max_size}, got {size}"
            return error(400, detail, parameter="page_size")
        offset, tfilters = 0, dict(filters)
    take = size
    if getattr(request.state, "sim_truncate", False) and size > 1:
        take = max(1, size // 2)
    page = items[offset : offset + take]
    meta: dict[str, Any] = {"first": absolute(request, tfilters), "total_size": len(items)}
    if offset + take < len(items):
        nxt = encode_token({"o": offset + take, "n": size, "f": tfilters})
        meta["next"] = absolute(request, {**tfilters, "page_token": nxt})
    body = {
        "api_version": api_version,
        "kind": kind,
        "metadata": meta,
        "data": [render(x) for x in page],
    }
    return json_response(body)
