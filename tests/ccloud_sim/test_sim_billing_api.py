# mypy: allow-untyped-defs
"""``GET /billing/v1/costs``: envelope, fields, validation, both pagination styles, late data."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from ccloud_sim import LINE_TYPES

PRODUCTS = {
    "KAFKA", "CONNECT", "KSQL", "AUDIT_LOG", "STREAM_GOVERNANCE", "CLUSTER_LINK",
    "CUSTOM_CONNECT", "FLINK", "TABLEFLOW", "SUPPORT_CLOUD_BASIC", "SUPPORT_CLOUD_DEVELOPER",
    "SUPPORT_CLOUD_BUSINESS", "SUPPORT_CLOUD_PREMIER", "USM", None,
}  # fmt: skip
NETWORK = {"INTERNET", "TRANSIT_GATEWAY", "PRIVATE_LINK", "PEERED_VPC", "PNI", "MULTI"}
PATH = "/billing/v1/costs"


class TestShape:
    async def test_envelope_and_required_fields(self, client):
        """The list envelope and every row carry the reference's required fields and enums."""
        r = await client.get(PATH, params={"start_date": "2026-02-20", "end_date": "2026-03-06"})
        assert r.status_code == 200
        body = r.json()
        assert body["api_version"] == "billing/v1"
        assert body["kind"] == "CostList"
        assert set(body) == {"api_version", "kind", "metadata", "data"}
        assert body["metadata"]["next"] is None
        for row in body["data"]:
            assert row["api_version"] == "billing/v1"
            assert row["kind"] == "Cost"
            for field in ("id", "start_date", "end_date", "unit", "original_amount"):
                assert field in row
            assert row["granularity"] == "DAILY"
            assert row["line_type"] in LINE_TYPES
            assert row["product"] in PRODUCTS
            assert row.get("network_access_type", "INTERNET") in NETWORK
            assert "2026-02-20" <= row["start_date"] < "2026-03-06"
            amount = Decimal(str(row["amount"]))
            assert amount == Decimal(str(row["original_amount"])) - Decimal(
                str(row["discount_amount"])
            )
            res = row.get("resource")
            if res is not None:
                assert set(res) == {"id", "display_name", "environment"}
                assert res["environment"]["id"].startswith("env-")

    async def test_rows_reference_inventory_or_deleted(self, client, org):
        """Every billed resource id exists in the generated inventory."""
        r = await client.get(PATH, params={"start_date": "2026-02-01", "end_date": "2026-03-01"})
        known = set(org.clusters) | set(org.connectors) | set(org.ksql)
        known |= set(org.schema_registries) | set(org.flink_pools)
        ids = {row["resource"]["id"] for row in r.json()["data"] if row.get("resource")}
        assert ids <= known


class TestValidation:
    @pytest.mark.parametrize(
        ("params", "parameter"),
        [
            ({"end_date": "2026-03-01"}, "start_date"),
            ({"start_date": "2026-03-01"}, "end_date"),
            ({"start_date": "2026-03-01", "end_date": "2026-03-01"}, "end_date"),
            ({"start_date": "2026-01-01", "end_date": "2026-02-02"}, "end_date"),
            ({"start_date": "2025-03-01", "end_date": "2025-03-10"}, "start_date"),
            ({"start_date": "03/01/2026", "end_date": "2026-03-10"}, "start_date"),
            (
                {"start_date": "2026-03-01", "end_date": "2026-03-10", "page_size": 10001},
                "page_size",
            ),
            (
                {"start_date": "2026-03-01", "end_date": "2026-03-10", "page_token": "@@"},
                "page_token",
            ),
        ],
    )
    async def test_bad_requests_get_400_envelope(self, client, params, parameter):
        """Bad dates, ranges, page sizes and tokens give 400 with the errors[] envelope."""
        r = await client.get(PATH, params=params)
        assert r.status_code == 400
        err = r.json()["errors"][0]
        assert err["status"] == "400"
        assert {"id", "code", "title", "detail"} <= set(err)
        assert err["source"]["parameter"] == parameter

    async def test_31_days_accepted(self, client):
        """A 31-day window (the default maximum) is accepted."""
        r = await client.get(PATH, params={"start_date": "2026-01-01", "end_date": "2026-02-01"})
        assert r.status_code == 200


class TestPagination:
    PARAMS = {"start_date": "2026-02-01", "end_date": "2026-03-03", "page_size": 37}

    async def test_follow_next_equals_single_page(self, client, get_all):
        """Following next verbatim yields exactly the rows of one big page."""
        whole = await client.get(PATH, params={**self.PARAMS, "page_size": 10000})
        paged = await get_all(client, PATH, **self.PARAMS)
        assert paged == whole.json()["data"]
        assert len({r["id"] for r in paged}) == len(paged)

    async def test_resend_params_with_token(self, client, get_all, get_all_resend):
        """Re-sending the original params plus page_token gives the same rows."""
        a = await get_all(client, PATH, **self.PARAMS)
        b = await get_all_resend(client, PATH, **self.PARAMS)
        assert a == b

    async def test_next_is_absolute(self, client):
        """metadata.next is an absolute URL carrying an opaque page_token."""
        r = await client.get(PATH, params=self.PARAMS)
        nxt = r.json()["metadata"]["next"]
        assert nxt.startswith("http://sim/billing/v1/costs?page_token=")

    async def test_token_mismatch_rejected(self, client):
        """A token re-sent with other dates is refused."""
        r = await client.get(PATH, params=self.PARAMS)
        token = r.json()["metadata"]["next"].split("page_token=")[1]
        bad = await client.get(
            PATH, params={"start_date": "2026-02-02", "end_date": "2026-03-03", "page_token": token}
        )
        assert bad.status_code == 400

    async def test_default_page_size_5000(self, client):
        """Without page_size a 31-day tiny window fits one page (default 5000)."""
        r = await client.get(PATH, params={"start_date": "2026-02-01", "end_date": "2026-03-03"})
        assert r.json()["metadata"]["next"] is None
        assert 100 < len(r.json()["data"]) <= 5000


class TestLateData:
    async def test_recent_days_change_then_settle(self, client, clock, now):
        """The last three days grow while the clock moves, then stop changing."""
        params = {
            "start_date": (now.date() - timedelta(days=4)).isoformat(),
            "end_date": (now.date() + timedelta(days=2)).isoformat(),
        }
        first = (await client.get(PATH, params=params)).json()["data"]
        assert all(r["start_date"] < now.date().isoformat() for r in first)
        clock.advance(timedelta(hours=20))
        second = (await client.get(PATH, params=params)).json()["data"]
        assert first != second
        assert len(second) >= len(first)
        clock.advance(timedelta(days=4))
        third = (await client.get(PATH, params=params)).json()["data"]
        clock.advance(timedelta(days=2))
        fourth = (await client.get(PATH, params=params)).json()["data"]
        old = [r for r in third if r["start_date"] < (now.date() + timedelta(days=1)).isoformat()]
        assert old == [r for r in fourth if r["start_date"] < old[-1]["end_date"]]

    async def test_settled_days_stable(self, client, clock, now):
        """Days older than 72 h do not change when the clock moves."""
        params = {"start_date": "2026-03-01", "end_date": "2026-03-10"}
        a = (await client.get(PATH, params=params)).text
        clock.advance(timedelta(days=2))
        assert (await client.get(PATH, params=params)).text == a
