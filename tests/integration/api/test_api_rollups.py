"""The daily rollups: the query_rollup emitter writes them, the API reads them while current."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

import pytest
from tests.integration.api.conftest import FIRST_DAY, LAST_DAY, TENANT, Api

from chargeback.core.emitters import registry
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.errors import ConfigError

WINDOW = f"{FIRST_DAY},{LAST_DAY}"
QUERIES = [
    {"aggregate": "product_type,environment", "step": "1d"},
    {"aggregate": "identity", "limit": "10000"},
    {"aggregate": "cost_type", "filter": "product_type:KAFKA_NETWORK_READ,KAFKA_BASE"},
    {"aggregate": "identity", "step": "1w", "filter": "cost_type!:shared", "limit": "10000"},
    {"aggregate": "team", "step": "1d", "limit": "10000"},
    {"aggregate": "team,cost_type", "filter": "team!:UNASSIGNED", "limit": "10000"},
    {"aggregate": "team,product_type", "filter": "product_type:KAFKA_BASE,SUPPORT"},
]
TEAM_QUERY = 4


async def answers(api: Api) -> list[Any]:
    out = []
    for q in QUERIES:
        response = await api.client.get(
            "/api/v1/allocation", params={"tenant": TENANT, "window": WINDOW, **q}
        )
        assert response.status_code == 200, response.text
        out.append(response.json())
    return out


async def roll_up_everything(api: Api) -> None:
    emitter = registry.create("query_rollup", {}, storage_backend=SQLiteBackend(api.path))
    states = await api.storage.get_date_states(TENANT, FIRST_DAY, LAST_DAY.replace(day=28))
    for day in states:
        await emitter(TENANT, day, [])


class TestRollups:
    async def test_answers_are_the_same_with_rollups(self, make_api: Any) -> None:
        """Rolled up or not, every answer is identical to the last character."""
        api: Api = await make_api()
        before = await answers(api)
        await roll_up_everything(api)
        with closing(sqlite3.connect(api.path)) as conn:
            (n,) = conn.execute("SELECT COUNT(*) FROM query_rollup_state").fetchone()
        assert n == 8
        assert await answers(api) == before

    async def test_current_rollups_are_read_and_stale_ones_ignored(self, make_api: Any) -> None:
        """A (tampered) rollup is what the API reads; once the date moves on, the rows are."""
        api: Api = await make_api()
        before = await answers(api)
        await roll_up_everything(api)
        day = LAST_DAY.isoformat()
        with closing(sqlite3.connect(api.path)) as conn:
            conn.execute(
                "UPDATE query_rollup_product SET amount = amount + 1 WHERE date = ? AND "
                "(product_type, product_category, env_id, cost_type) = (SELECT product_type, "
                "product_category, env_id, cost_type FROM query_rollup_product WHERE date = ? "
                "LIMIT 1)",
                (day, day),
            )
            conn.commit()
        tampered = await answers(api)
        assert tampered[0] != before[0]  # read from the rollup
        assert tampered[1] == before[1]  # the identity rollup is untouched
        with closing(sqlite3.connect(api.path)) as conn:  # as a recalculation would
            conn.execute("UPDATE date_state SET calc_seq = calc_seq + 1 WHERE date = ?", (day,))
            conn.commit()
        # (the team queries now find the day's attribution outdated too: not compared)
        assert (await answers(api))[:TEAM_QUERY] == before[:TEAM_QUERY]

    async def test_team_rollups_follow_the_attribution(self, make_api: Any) -> None:
        """A tampered team rollup is read; once the attribution's rule version moves, not."""
        api: Api = await make_api()
        before = await answers(api)
        await roll_up_everything(api)
        day = LAST_DAY.isoformat()
        with closing(sqlite3.connect(api.path)) as conn:
            (versions,) = conn.execute(
                "SELECT COUNT(*) FROM query_rollup_state WHERE team_rule_version IS NOT NULL"
            ).fetchone()
            assert versions == 8
            conn.execute(
                "UPDATE query_rollup_team SET amount = amount + 1 WHERE date = :day AND "
                "team = 'payments' AND product_type = (SELECT MIN(product_type) FROM "
                "query_rollup_team WHERE date = :day AND team = 'payments')",
                {"day": day},
            )
            conn.commit()
        tampered = await answers(api)
        assert tampered[TEAM_QUERY] != before[TEAM_QUERY]
        with closing(sqlite3.connect(api.path)) as conn:  # as a rule change would
            conn.execute(
                "UPDATE ownership_dates SET rule_version = rule_version + 1 WHERE date = ?", (day,)
            )
            conn.commit()
        assert await answers(api) == before

    def test_the_emitter_needs_a_sqlite_file(self) -> None:
        """An in-memory database is refused with a clear configuration error."""
        with pytest.raises(ConfigError, match="SQLite file only"):
            registry.create("query_rollup", {}, storage_backend=SQLiteBackend(":memory:"))
