"""``/identities``, ``/resources``, ``/dates``, ``/runs`` and ``/explain`` over a real database."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.integration.api.conftest import FIRST_DAY, LAST_DAY, TENANT, Api

from chargeback.core.models import UNALLOCATED
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.service.api.explain import USAGE_NOTE


def money(text: str) -> int:
    return int(Decimal(text).scaleb(9))


async def get(api: Api, path: str, **params: Any) -> Any:
    response = await api.client.get(f"/api/v1{path}", params={"tenant": TENANT, **params})
    assert response.status_code == 200, response.text
    return response.json()


class TestInventory:
    async def test_identities_are_the_stored_inventory(self, make_api: Any) -> None:
        """Every stored identity is listed once, sorted by id, with its name and type."""
        api: Api = await make_api()
        _, identities = await api.storage.load_inventory(TENANT)
        body = await get(api, "/identities", limit=10_000)
        assert body["total"] == len(identities)
        ids = [i["identity_id"] for i in body["identities"]]
        assert ids == sorted(i.identity_id for i in identities)
        first = next(i for i in identities if i.identity_id == ids[0])
        assert body["identities"][0]["name"] == first.display_name

    async def test_resources_filter_by_type_and_page(self, make_api: Any) -> None:
        """type= keeps one kind; limit/offset page it."""
        api: Api = await make_api()
        resources, _ = await api.storage.load_inventory(TENANT)
        clusters = sorted(r.resource_id for r in resources if r.resource_type == "kafka_cluster")
        body = await get(api, "/resources", type="kafka_cluster", limit=2, offset=1)
        assert body["total"] == len(clusters)
        assert [r["resource_id"] for r in body["resources"]] == clusters[1:3]


class TestDatesAndRuns:
    async def test_dates_show_calculated_and_missing_days(self, make_api: Any) -> None:
        """Every day of the window is listed: calculated ones with fingerprints and totals."""
        api: Api = await make_api()
        window = f"{FIRST_DAY - dt.timedelta(days=2)},{LAST_DAY}"
        body = await get(api, "/dates", window=window)
        days = {d["date"]: d for d in body["dates"]}
        assert len(days) == 10
        assert [d["date"] for d in body["dates"]] == sorted(days, reverse=True)
        assert not days[(FIRST_DAY - dt.timedelta(days=1)).isoformat()]["calculated"]
        last = days[LAST_DAY.isoformat()]
        states = await api.storage.get_date_states(TENANT, LAST_DAY, LAST_DAY + dt.timedelta(1))
        state = states[LAST_DAY]
        assert last["calculated"]
        assert last["reconciled"]
        assert last["billing_fingerprint"] == state.billing_fingerprint
        assert money(last["billed"]) == state.billed_total
        assert last["status"] == "closed"  # March 2026 is long settled
        assert body["last_run"]["status"] == "success"

    async def test_runs_list_the_newest_first(self, make_api: Any) -> None:
        """The run that computed the database is listed with its counts."""
        api: Api = await make_api()
        body = await get(api, "/runs")
        (run,) = body["runs"]
        assert run["status"] == "success"
        assert run["counts"]["dates_calculated"] == 8


class TestExplain:
    async def _a_split_line(self, api: Api) -> tuple[str, dt.date]:
        rows = await api.storage.read_rows(TENANT, LAST_DAY)
        parts: dict[str, int] = {}
        for r in rows:
            parts[r.line_id] = parts.get(r.line_id, 0) + 1
        line_id = max(parts, key=lambda k: (parts[k], k))
        return line_id, LAST_DAY

    async def test_explain_lists_every_part_and_reconciles(self, make_api: Any) -> None:
        """The line, and its parts with identity, rule, reason and share; they sum exactly."""
        api: Api = await make_api()
        line_id, day = await self._a_split_line(api)
        rows = [r for r in await api.storage.read_rows(TENANT, day) if r.line_id == line_id]
        body = await get(api, "/explain", line_id=line_id, date=day.isoformat())
        assert body["line"]["line_id"] == line_id
        assert body["reconciled"] is True
        assert [(p["identity_id"], money(p["amount"]), p["rule"]) for p in body["parts"]] == [
            (r.identity_id, r.amount, r.rule) for r in rows
        ]
        assert money(body["allocated"]) == money(body["line"]["amount"])
        shares = sum((Decimal(p["share"]) for p in body["parts"]), Decimal(0))
        assert abs(shares - 1) < Decimal("1e-6")
        assert body["usage"] == USAGE_NOTE
        resources, _ = await api.storage.load_inventory(TENANT)
        names = {r.resource_id: r.display_name for r in resources}
        assert body["line"]["resource_name"] == names.get(body["line"]["resource_id"])
        assert body["line"]["environment_name"] == names.get(body["line"]["env_id"])

    async def test_explain_finds_the_day_when_the_id_is_unique(self, make_api: Any) -> None:
        """Without date=, a line id found on one day only is explained."""
        api: Api = await make_api()
        line_id, day = await self._a_split_line(api)
        body = await get(api, "/explain", line_id=line_id)
        assert body["line"]["date"] == day.isoformat()

    async def test_unallocated_lines_say_why(self, make_api: Any) -> None:
        """A line nobody could be charged for shows UNALLOCATED with the reason."""
        api: Api = await make_api()
        rows = await api.storage.read_rows(TENANT, LAST_DAY)
        line = next(r for r in rows if r.identity_id == UNALLOCATED)
        body = await get(api, "/explain", line_id=line.line_id, date=LAST_DAY.isoformat())
        assert body["parts"][0]["identity_id"] == UNALLOCATED
        assert body["parts"][0]["reason"]

    async def test_explain_as_csv(self, make_api: Any) -> None:
        """format=csv gives one row per part."""
        api: Api = await make_api()
        line_id, day = await self._a_split_line(api)
        response = await api.client.get(
            "/api/v1/explain",
            params={"tenant": TENANT, "line_id": line_id, "date": day.isoformat()},
            headers={"accept": "text/csv"},
        )
        table = list(csv.DictReader(io.StringIO(response.text)))
        assert response.headers["x-chargeback-reconciled"] == "true"
        assert len(table) > 1
        assert {r["line_id"] for r in table} == {line_id}

    async def test_unknown_line_is_a_404_and_a_missing_id_a_400(self, make_api: Any) -> None:
        """An id never billed is named in a 404; no line_id at all is a 400."""
        api: Api = await make_api()
        missing = await api.client.get("/api/v1/explain", params={"line_id": "nope"})
        assert missing.status_code == 404
        assert "'nope'" in missing.json()["error"]
        none = await api.client.get("/api/v1/explain")
        assert none.status_code == 400
        assert none.json()["parameter"] == "line_id"


class TestRestatedDateStatus:
    async def test_a_restated_closed_day_is_open_in_the_date_status(
        self, make_api: Any, sim_db: Path, tmp_path: Path
    ) -> None:
        """The stored period state wins over the cutoff rule: a restated day reads open."""
        import shutil  # noqa: PLC0415

        db = tmp_path / "restated.sqlite"
        shutil.copyfile(sim_db, db)
        now = dt.datetime.now(dt.UTC)
        async with SQLiteBackend(db) as storage:
            await storage.sync_periods(TENANT, now.date(), now)  # today: every day closes
            lines = await storage.read_lines(TENANT, LAST_DAY)
            rows = await storage.read_rows(TENANT, LAST_DAY)
            bumped = [lines[0]._replace(amount=lines[0].amount + 1), *lines[1:]]
            extra = rows[0]._replace(line_id=lines[0].line_id, amount=1)
            await storage.commit_date(
                TENANT, LAST_DAY, lines=bumped, rows=[*rows, extra], plugin_rows=(),
                billing_fingerprint="restated", settings_fingerprint="s",
                inventory_fingerprint="i", calculated_at=dt.datetime.now(dt.UTC),
            )  # fmt: skip
            sync = await storage.sync_periods(TENANT, now.date(), now)
            assert [r.day for r in sync.reopened] == [LAST_DAY]
        api: Api = await make_api(path=db)
        body = await get(api, "/dates", window=f"{LAST_DAY - dt.timedelta(days=1)},{LAST_DAY}")
        status = {d["date"]: d["status"] for d in body["dates"]}
        assert status[LAST_DAY.isoformat()] == "open"
        assert status[(LAST_DAY - dt.timedelta(days=1)).isoformat()] == "closed"
