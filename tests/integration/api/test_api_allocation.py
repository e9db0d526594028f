"""``GET /api/v1/allocation`` over a real database computed from ccloud_sim."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from tests.integration.api.conftest import FIRST_DAY, LAST_DAY, TENANT, Api

from chargeback.core.models import ChargebackRow
from chargeback.core.money import format_amount
from chargeback.core.storage.sqlite import SQLiteBackend

WINDOW = f"{FIRST_DAY},{LAST_DAY}"
ONE_DAY = dt.timedelta(days=1)


async def all_rows(storage: SQLiteBackend) -> list[ChargebackRow]:
    rows: list[ChargebackRow] = []
    day = FIRST_DAY
    while day <= LAST_DAY:
        rows.extend(await storage.read_rows(TENANT, day))
        day += ONE_DAY
    return rows


def by(rows: list[ChargebackRow], key: Callable[[ChargebackRow], Any]) -> dict[Any, int]:
    sums: dict[Any, int] = defaultdict(int)
    for r in rows:
        sums[key(r)] += r.amount
    return dict(sums)


def money(text: str) -> int:
    return int(Decimal(text).scaleb(9))


async def get(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.client.get("/api/v1/allocation", params={"tenant": TENANT, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestAllocationAnswers:
    async def test_by_identity_reconciles_to_the_rows_and_the_bill(self, make_api: Any) -> None:
        """Each identity's cost is the sum of its rows; the entries sum to billed exactly."""
        api: Api = await make_api()
        rows = await all_rows(api.storage)
        body = await get(api, window=WINDOW, aggregate="identity", limit=10_000)
        (only,) = body["sets"]
        got = {e["key"]["identity"]: money(e["cost"]) for e in only["entries"]}
        assert got == by(rows, lambda r: r.identity_id)
        assert sum(got.values()) == money(only["allocated"]) == money(only["billed"])
        assert body["billed"] == only["billed"]
        assert body["reconciled"] is True
        assert body["currency"] == "USD"
        assert body["missing_days"] == []
        costs = [money(e["cost"]) for e in only["entries"]]
        assert costs == sorted(costs, reverse=True)
        assert all(len(e["cost"].split(".")[1]) == 9 for e in only["entries"])

    async def test_each_entry_splits_into_usage_shared_unallocated(self, make_api: Any) -> None:
        """cost == usage + shared + unallocated + other, per entry, exactly as the rows say."""
        api: Api = await make_api()
        rows = await all_rows(api.storage)
        body = await get(api, window=WINDOW, aggregate="product_type", limit=10_000)
        want = by(rows, lambda r: (r.product_type, r.cost_type))
        for e in body["sets"][0]["entries"]:
            pt = e["key"]["product_type"]
            parts = [money(e[k]) for k in ("usage", "shared", "unallocated", "other")]
            assert sum(parts) == money(e["cost"])
            assert money(e["usage"]) == want.get((pt, "usage"), 0)
            assert money(e["shared"]) == want.get((pt, "shared"), 0)
            assert money(e["unallocated"]) == want.get((pt, "unallocated"), 0)

    async def test_step_1d_gives_one_set_per_day_with_its_own_totals(self, make_api: Any) -> None:
        """Day over day: one set a day, each reconciling to that day's bill."""
        api: Api = await make_api()
        states = await api.storage.get_date_states(TENANT, FIRST_DAY, LAST_DAY + ONE_DAY)
        body = await get(api, window=WINDOW, aggregate="cost_type", step="1d")
        assert [s["window"]["start"] for s in body["sets"]] == [d.isoformat() for d in states]
        for s in body["sets"]:
            state = states[dt.date.fromisoformat(s["window"]["start"])]
            assert money(s["billed"]) == state.billed_total
            assert sum(money(e["cost"]) for e in s["entries"]) == state.allocated_total

    async def test_week_and_month_steps_are_clipped_to_the_window(self, make_api: Any) -> None:
        """1w sets start on Mondays (the first clipped), 1mo sets at the 1st or the window."""
        api: Api = await make_api()
        weeks = await get(api, window=WINDOW, step="1w")
        starts = [dt.date.fromisoformat(s["window"]["start"]) for s in weeks["sets"]]
        assert starts[0] == FIRST_DAY
        assert all(d.weekday() == 0 for d in starts[1:])
        total = sum(money(s["allocated"]) for s in weeks["sets"])
        month = await get(api, window="2026-03", step="1mo")
        assert len(month["sets"]) == 1
        assert money(month["allocated"]) == total
        assert month["sets"][0]["calculated_days"] == 8
        assert len(month["missing_days"]) == 31 - 8

    async def test_accumulate_folds_the_steps_into_one_set(self, make_api: Any) -> None:
        """accumulate=true answers one set for the window whatever the step."""
        api: Api = await make_api()
        body = await get(api, window=WINDOW, step="1d", accumulate="true")
        assert len(body["sets"]) == 1
        assert body["step"] is None

    async def test_filter_keeps_only_matching_rows(self, make_api: Any) -> None:
        """A filtered answer sums only the matching rows; billed stays the whole bill."""
        api: Api = await make_api()
        rows = await all_rows(api.storage)
        top = (await get(api, window=WINDOW, limit=1))["sets"][0]["entries"][0]["key"]["identity"]
        body = await get(api, window=WINDOW, aggregate="product_type", filter=f"identity:{top}")
        mine = [r for r in rows if r.identity_id == top]
        got = {e["key"]["product_type"]: money(e["cost"]) for e in body["sets"][0]["entries"]}
        assert got == by(mine, lambda r: r.product_type)
        assert money(body["sets"][0]["selected"]["cost"]) == sum(r.amount for r in mine)
        assert money(body["billed"]) == sum(r.amount for r in rows)
        negated = await get(
            api, window=WINDOW, aggregate="identity", filter=f"identity!:{top}", limit=10_000
        )
        assert top not in {e["key"]["identity"] for e in negated["sets"][0]["entries"]}

    async def test_several_dimensions_and_names(self, make_api: Any) -> None:
        """environment,identity keys carry both values and their display names."""
        api: Api = await make_api()
        _, identities = await api.storage.load_inventory(TENANT)
        names = {i.identity_id: i.display_name for i in identities}
        body = await get(api, window=WINDOW, aggregate="environment,identity", limit=50)
        entries = body["sets"][0]["entries"]
        assert all(set(e["key"]) == {"environment", "identity"} for e in entries)
        named = [e for e in entries if e["key"]["identity"] in names]
        assert named
        assert all(e["names"]["identity"] == names[e["key"]["identity"]] for e in named)
        assert any(e["names"]["environment"] for e in entries)

    async def test_pages_are_deterministic_and_complete(self, make_api: Any) -> None:
        """limit/offset pages, concatenated, are the whole sorted list."""
        api: Api = await make_api()
        full = await get(api, window=WINDOW, aggregate="resource,identity", limit=10_000)
        want = full["sets"][0]["entries"]
        pages = []
        for offset in range(0, len(want), 37):
            page = await get(
                api, window=WINDOW, aggregate="resource,identity", limit=37, offset=offset
            )
            assert page["sets"][0]["total_entries"] == len(want)
            pages.extend(page["sets"][0]["entries"])
        assert pages == want
        by_key = await get(api, window=WINDOW, aggregate="resource,identity", sort="key",
                           limit=10_000)  # fmt: skip
        keys = [tuple(e["key"].values()) for e in by_key["sets"][0]["entries"]]
        assert keys == sorted(keys)


class TestAllocationCsv:
    @pytest.mark.parametrize("how", ["format", "accept"])
    async def test_csv_streams_every_entry(self, make_api: Any, how: str) -> None:
        """format=csv or Accept: text/csv give every entry as CSV, with the totals in headers."""
        api: Api = await make_api()
        params = {"tenant": TENANT, "window": WINDOW, "aggregate": "identity", "step": "1d"}
        headers = {}
        if how == "format":
            params["format"] = "csv"
        else:
            headers["accept"] = "text/csv"
        response = await api.client.get("/api/v1/allocation", params=params, headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(response.text)))
        assert set(table[0]) >= {"window_start", "identity", "identity_name", "cost", "usage"}
        rows = await all_rows(api.storage)
        assert sum(money(r["cost"]) for r in table) == sum(r.amount for r in rows)
        assert response.headers["x-chargeback-billed"] == format_amount(sum(r.amount for r in rows))
        days = {r["window_start"] for r in table}
        assert len(days) == 8


class TestAllocationRefusals:
    @pytest.mark.parametrize(
        ("params", "parameter", "words"),
        [
            ({"window": "2026-13-01,2026-13-05"}, "window", "YYYY-MM-DD"),
            ({"window": "2026-03-10,2026-03-01"}, "window", "before the start"),
            ({"window": "fortnight"}, "window", "lastmonth"),
            ({"window": "1900-01-01,2026-01-01"}, "window", "longer than"),
            ({"aggregate": "planet"}, "aggregate", "unknown dimension"),
            ({"aggregate": "identity,identity"}, "aggregate", "repeated"),
            ({"step": "2h"}, "step", "1d, 1w, 1mo"),
            ({"filter": "identity"}, "filter", "DIMENSION:VALUE"),
            ({"filter": "colour:red"}, "filter", "unknown dimension"),
            ({"sort": "random"}, "sort", "-cost"),
            ({"limit": "-1"}, "limit", "greater than or equal"),
            ({"limit": "ten"}, "limit", "integer"),
            ({"offset": "-5"}, "offset", "greater than or equal"),
            ({"accumulate": "maybe"}, "accumulate", "boolean"),
            ({"format": "xml"}, "format", "json"),
            ({"colour": "red"}, "colour", "Extra inputs"),
        ],
    )
    async def test_bad_input_is_a_400_naming_the_parameter(
        self, make_api: Any, params: dict[str, str], parameter: str, words: str
    ) -> None:
        """Every malformed parameter is refused with a message that says what is expected."""
        api: Api = await make_api()
        response = await api.client.get("/api/v1/allocation", params={"tenant": TENANT, **params})
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["status"] == "bad request"
        assert body["parameter"] == parameter
        assert words in body["error"]

    async def test_unknown_tenant_is_a_404(self, make_api: Any) -> None:
        """A tenant with no stored state is named in a 404."""
        api: Api = await make_api()
        response = await api.client.get("/api/v1/allocation", params={"tenant": "nobody"})
        assert response.status_code == 404
        assert "'nobody'" in response.json()["error"]

    async def test_the_only_tenant_is_the_default(self, make_api: Any) -> None:
        """With one tenant in the database, tenant may be left out."""
        api: Api = await make_api()
        response = await api.client.get("/api/v1/allocation", params={"window": WINDOW})
        assert response.status_code == 200
        assert response.json()["tenant"] == TENANT
