"""Fixtures of the query API tests: one real database computed from ccloud_sim, and a client.

``sim_db`` runs the Confluent Cloud plugin in a real TenantRuntime against the sim (over
ASGI) into a SQLite file, once per session, and gives every test a copy of it.
``api_client`` serves the daemon's ASGI app with the API routes over that copy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.support.sim_db import compute_sim_db, copy_db

from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.service import api
from chargeback.service.api._auth import ApiTokens
from chargeback.service.http import make_app

NOW = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)
TENANT = "acme"
LOOKBACK_DAYS = 10
CUTOFF_DAYS = 3
FIRST_DAY = NOW.date() - dt.timedelta(days=LOOKBACK_DAYS)
LAST_DAY = NOW.date() - dt.timedelta(days=CUTOFF_DAYS)
"""The calculated days: FIRST_DAY..LAST_DAY, both included."""


OWNERSHIP = {
    "rules": [
        {"name": "by-name", "team": "{team}",
         "match": {"identity_name": "^(?:svc-)?(?P<team>[a-z]+)-"}},
    ]
}  # fmt: skip
"""Teams from identity names (``svc-payments-x`` -> payments); the rest is UNASSIGNED."""


@pytest.fixture(scope="session")
def sim_db_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's database, computed once."""
    return compute_sim_db(
        tmp_path_factory.mktemp("api-db") / "chargeback.db", now=NOW, tenant=TENANT,
        lookback_days=LOOKBACK_DAYS, cutoff_days=CUTOFF_DAYS, ownership=OWNERSHIP,
    )  # fmt: skip


@pytest.fixture
def sim_db(sim_db_master: Path, tmp_path: Path) -> Path:
    """A private copy of the session's database."""
    return copy_db(sim_db_master, tmp_path / "chargeback.db")


class _Source:
    def exposition(self) -> bytes:
        return b"# no metrics here\n"

    def exposition_gzip(self) -> bytes:
        return gzip.compress(self.exposition())


class _Health:
    def health(self) -> dict[str, object]:
        return {}

    def readiness(self) -> list[str]:
        return []


@dataclass
class Api:
    """A client of the API over one database, and that database opened by the test."""

    client: httpx.AsyncClient
    storage: SQLiteBackend
    path: Path


MakeApi = Callable[..., "asyncio.Future[Api]"]


@pytest.fixture
async def make_api(sim_db: Path) -> AsyncIterator[Callable[..., object]]:
    """Build API clients over ``sim_db`` (optionally with tokens); close them afterwards."""
    made: list[tuple[httpx.AsyncClient, SQLiteBackend, object]] = []

    async def make(tokens: str = "", path: Path | None = None) -> Api:
        db = path or sim_db
        app = make_app(
            _Source(), _Health(),
            storage=lambda: SQLiteBackend(db, read_only=True),
            routes=api.routes(tokens=ApiTokens.from_text(tokens)),
        )  # fmt: skip
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        storage = SQLiteBackend(db, read_only=True)
        await storage.open()
        made.append((client, storage, app))
        return Api(client, storage, db)

    yield make
    for client, storage, app in made:
        await client.aclose()
        await storage.close()
        await app.aclose()  # type: ignore[attr-defined]
