"""Fixtures for the ccloud_sim tests: a pinned clock, the tiny org, in-process clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from ccloud_sim import Organization, SimClock, create_app

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
AUTH = ("SIMKEY", "SIMSECRET")

_ORGS: dict[tuple[int, str], Organization] = {}


def _org_for(seed: int = 7, scale: str = "tiny") -> Organization:
    """A cached organization anchored at NOW's date (generation is deterministic)."""
    key = (seed, scale)
    if key not in _ORGS:
        _ORGS[key] = Organization(seed, scale, NOW.date())
    return _ORGS[key]


@pytest.fixture
def org() -> Organization:
    """The tiny organization every API test talks to."""
    return _org_for()


@pytest.fixture
def org_for() -> Callable[..., Organization]:
    """Factory of cached organizations anchored at NOW's date."""
    return _org_for


@pytest.fixture
def now() -> datetime:
    """The instant the test clock is frozen at."""
    return NOW


@pytest.fixture
def clock() -> SimClock:
    """A clock frozen at NOW."""
    return SimClock(NOW)


@pytest.fixture
def app(org: Organization, clock: SimClock) -> Starlette:
    """The simulator app over the tiny org, keeping metrics for ever (the API tests look
    weeks back; the retention tests build their own apps)."""
    return create_app(org, clock=clock, metrics_retention_days=None)


def _client_for(app: Starlette, auth: Any = AUTH) -> httpx.AsyncClient:
    """An in-process client of *app*."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sim", auth=auth, timeout=10
    )


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An authenticated in-process client of the app."""
    async with _client_for(app) as c:
        yield c


@pytest.fixture
def make_client() -> Callable[..., httpx.AsyncClient]:
    """Factory for clients of other apps or credentials."""
    return _client_for


async def _get_all(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Follow ``metadata.next`` verbatim until the last page; return every item."""
    items: list[dict[str, Any]] = []
    r = await client.get(path, params=params)
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["data"])
        nxt = body["metadata"].get("next")
        if not nxt:
            return items
        r = await client.get(nxt)


async def _get_all_resend(
    client: httpx.AsyncClient, path: str, **params: Any
) -> list[dict[str, Any]]:
    """Re-send the original params plus the ``page_token`` taken out of ``next``."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        extra = {"page_token": token} if token else {}
        r = await client.get(path, params={**params, **extra})
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["data"])
        nxt = body["metadata"].get("next")
        if not nxt:
            return items
        token = httpx.URL(nxt).params["page_token"]


@pytest.fixture
def get_all() -> Callable[..., Any]:
    """Pager that follows ``metadata.next`` verbatim."""
    return _get_all


@pytest.fixture
def get_all_resend() -> Callable[..., Any]:
    """Pager that re-sends the original params plus ``page_token``."""
    return _get_all_resend
