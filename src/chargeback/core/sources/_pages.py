"""Pagination over the ``{"metadata": {"next": ...}, "data": [...]}`` envelope.

The pieces :meth:`~chargeback.core.sources.HttpClient.paginate` is made of: the
items of one page, the request of the next, and URLs without credentials for
messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

import structlog

from chargeback.errors import SourceError

__all__ = ["Params", "next_request", "page_items", "plain_url"]

_log = structlog.get_logger(__name__)

Params = Mapping[str, str | int]


def page_items(url: str, endpoint: str, body: object) -> list[dict[str, Any]]:
    """Return the object items of one listing page; items that are not objects are
    skipped with a warning, a body that is not an envelope is an error."""
    if not isinstance(body, dict):
        raise SourceError(f"GET {plain_url(url)} returned a non-object body", url=plain_url(url))
    data = body.get("data") or []
    if not isinstance(data, list):
        raise SourceError(f"GET {plain_url(url)} returned a non-list 'data'", url=plain_url(url))
    items = [item for item in data if isinstance(item, dict)]
    if len(items) != len(data):
        _log.warning(
            "listing items that are not objects skipped", endpoint=endpoint,
            skipped=len(data) - len(items), kinds=sorted(
                {type(i).__name__ for i in data if not isinstance(i, dict)}
            ),
        )  # fmt: skip
    return items


def next_request(
    url: str, params: Params | None, base: SplitResult, body: Mapping[str, Any], seen: set[str]
) -> tuple[str, Params | None] | None:
    """Return the URL and parameters of the page after ``body``, or ``None`` at the end.

    ``metadata.next`` is followed as-is on the first page's host; elsewhere (behind a
    proxy) its ``page_token`` is re-sent to ``url`` with the original parameters.
    ``seen`` collects the links followed, so a repeated one is an error, not a loop.
    """
    meta = body.get("metadata") or {}
    nxt = meta.get("next") if isinstance(meta, dict) else None
    if not nxt or not isinstance(nxt, str):
        return None
    if nxt in seen:
        raise SourceError(
            f"GET {plain_url(url)} paginated in a loop (metadata.next repeated)", url=plain_url(url)
        )
    seen.add(nxt)
    split = urlsplit(nxt)
    if split.netloc == base.netloc and split.scheme == base.scheme:
        return nxt, None
    token = parse_qs(split.query).get("page_token", [None])[0]
    if not token:
        return None
    return url, {**(params or {}), "page_token": token}


def plain_url(url: str) -> str:
    """Return ``url`` without any userinfo (credentials never reach a message)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=netloc).geturl()
