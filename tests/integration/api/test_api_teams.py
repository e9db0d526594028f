"""``aggregate=team`` and ``filter=team:…``: rows under their day's ownership attribution."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import defaultdict
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.integration.api.conftest import FIRST_DAY, LAST_DAY, TENANT, Api

from chargeback.core.ownership.matcher import Key
from chargeback.core.query import GroupRow
from chargeback.core.query.spec import Filter
from chargeback.core.query.teams import NOT_ATTRIBUTED, source_dimensions, team_groups
from chargeback.core.storage.query_rollup import refresh_rollup

WINDOW = f"{FIRST_DAY},{LAST_DAY}"


def money(text: str) -> int:
    return int(Decimal(text).scaleb(9))


def team_totals(db: Path) -> dict[tuple[str, str], int]:
    """The ownership step's own per-day team totals (what it stored at attribution)."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT date, team, SUM(amount) FROM ownership_team_totals GROUP BY 1, 2"
        ).fetchall()
    return {(str(d), str(t)): int(a) for d, t, a in rows}


async def get(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.client.get("/api/v1/allocation", params={"tenant": TENANT, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestTeams:
    async def test_team_per_day_equals_the_attributions_team_totals(self, make_api: Any) -> None:
        """Each day's team amounts equal the stored team totals; the set sums to billed."""
        api: Api = await make_api()
        want = team_totals(api.path)
        body = await get(api, window=WINDOW, aggregate="team", step="1d", limit=10_000)
        got = {
            (s["window"]["start"], e["key"]["team"]): money(e["cost"])
            for s in body["sets"]
            for e in s["entries"]
        }
        assert got == want
        for s in body["sets"]:
            assert sum(money(e["cost"]) for e in s["entries"]) == money(s["billed"])
        assert {"UNASSIGNED", "payments"} <= {team for _, team in got}

    async def test_team_with_other_dimensions_and_filters(self, make_api: Any) -> None:
        """team,cost_type splits each team exactly; filter=team:X keeps only its rows."""
        api: Api = await make_api()
        whole = await get(api, window=WINDOW, aggregate="team", limit=10_000)
        per_team = {e["key"]["team"]: money(e["cost"]) for e in whole["sets"][0]["entries"]}
        split = await get(api, window=WINDOW, aggregate="team,cost_type", limit=10_000)
        sums: dict[str, int] = defaultdict(int)
        for e in split["sets"][0]["entries"]:
            sums[e["key"]["team"]] += money(e["cost"])
            assert money(e["cost"]) == money(e[e["key"]["cost_type"]])
        assert dict(sums) == per_team
        only = await get(api, window=WINDOW, aggregate="product_type", filter="team:payments")
        assert money(only["sets"][0]["selected"]["cost"]) == per_team["payments"]
        assert money(only["billed"]) == sum(per_team.values())

    async def test_a_day_without_current_attribution_says_so(self, make_api: Any) -> None:
        """A day whose attribution is gone is '(not attributed)', never a guessed team."""
        api: Api = await make_api()
        with closing(sqlite3.connect(api.path)) as conn:
            conn.execute("DELETE FROM ownership_dates WHERE date = ?", (LAST_DAY.isoformat(),))
            conn.commit()
        body = await get(api, window=f"{LAST_DAY},{LAST_DAY}", aggregate="team")
        (entry,) = body["sets"][0]["entries"]
        assert entry["key"]["team"] == NOT_ATTRIBUTED
        assert money(entry["cost"]) == money(body["billed"])

    async def test_an_unreadable_attribution_is_not_attributed(self, make_api: Any) -> None:
        """An attribution this version cannot decode: its day is '(not attributed)'; the
        rollup emitter skips its team rollup instead of failing."""
        api: Api = await make_api()
        with closing(sqlite3.connect(api.path)) as conn:
            conn.execute("UPDATE ownership_dates SET shares = '{}' WHERE date = ?",
                         (LAST_DAY.isoformat(),))  # fmt: skip
            conn.commit()
        await refresh_rollup(api.path, TENANT, LAST_DAY)
        body = await get(api, window=f"{LAST_DAY},{LAST_DAY}", aggregate="team")
        assert [e["key"]["team"] for e in body["sets"][0]["entries"]] == [NOT_ATTRIBUTED]


class TestTeamGroups:
    def test_regrouping_conserves_every_amount(self) -> None:
        """Every group lands under one team; a day without decisions is NOT_ATTRIBUTED."""
        day1, day2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
        dims = ("team", "product_type")
        asked = source_dimensions(dims)
        assert asked == ("product_type", "identity", "resource", "environment")
        groups = [
            GroupRow(day1, ("KAFKA_BASE", "sa-1", "lkc-1", "env-a"), "usage", 7),
            GroupRow(day1, ("KAFKA_BASE", "sa-2", "", ""), "shared", -2),
            GroupRow(day2, ("KAFKA_BASE", "sa-1", "lkc-1", "env-a"), "usage", 5),
        ]
        teams = {day1: {Key("sa-1", "lkc-1", "env-a"): "orders", Key("sa-2", "", ""): "ops"}}
        out = team_groups(groups, asked, dims, teams, [])
        assert [(g.day, g.key, g.amount) for g in out] == [
            (day1, ("orders", "KAFKA_BASE"), 7),
            (day1, ("ops", "KAFKA_BASE"), -2),
            (day2, (NOT_ATTRIBUTED, "KAFKA_BASE"), 5),
        ]
        kept = team_groups(groups, asked, dims, teams, [Filter("team", ("ops",))])
        assert [g.amount for g in kept] == [-2]
