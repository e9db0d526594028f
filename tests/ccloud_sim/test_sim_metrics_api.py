# mypy: allow-untyped-defs
"""``POST /v2/metrics/cloud/query``: request validation, shapes, paging, consistency."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ccloud_sim import FLINK_CFU_METRIC

PATH = "/v2/metrics/cloud/query"
REQ = "io.confluent.kafka.server/request_bytes"
RESP = "io.confluent.kafka.server/response_bytes"
INTERVAL = "2026-03-01T00:00:00Z/2026-03-08T00:00:00Z"


def _body(metric: str, cluster: str | list[str], **extra: Any) -> dict[str, Any]:
    if isinstance(cluster, list):
        flt: dict[str, Any] = {
            "op": "OR",
            "filters": [{"field": "resource.kafka.id", "op": "EQ", "value": c} for c in cluster],
        }
    else:
        flt = {"field": "resource.kafka.id", "op": "EQ", "value": cluster}
    body = {
        "aggregations": [{"metric": metric}],
        "filter": flt,
        "granularity": "P1D",
        "group_by": ["metric.principal_id"],
        "intervals": [INTERVAL],
        "limit": 1000,
    }
    body.update(extra)
    return body


async def _all_rows(client: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    token = None
    while True:
        r = await client.post(PATH, json=body, params={"page_token": token} if token else {})
        assert r.status_code == 200, r.text
        rows += r.json()["data"]
        token = r.json()["meta"]["pagination"].get("next_page_token")
        if not token:
            return rows


class TestShape:
    async def test_flat_rows(self, client, org):
        """FLAT rows carry timestamp, the group_by label and a numeric value."""
        c = org.inventory.clusters[0].id
        r = await client.post(PATH, json=_body(REQ, c))
        assert r.status_code == 200
        body = r.json()
        assert body["meta"]["pagination"]["page_size"] == 1000
        assert body["data"]
        for row in body["data"]:
            assert set(row) == {"timestamp", "metric.principal_id", "value"}
            assert row["timestamp"].endswith("Z")
            assert isinstance(row["value"], float)

    async def test_grouped_points_descending(self, client, org):
        """GROUPED puts points per group, newest first, groups ordered by label."""
        c = org.inventory.clusters[0].id
        r = await client.post(PATH, json=_body(REQ, c, format="GROUPED", granularity="PT1H"))
        data = r.json()["data"]
        labels = [g["metric.principal_id"] for g in data]
        assert labels == sorted(labels)
        for g in data:
            stamps = [p["timestamp"] for p in g["points"]]
            assert stamps == sorted(stamps, reverse=True)

    async def test_hourly_sums_to_daily(self, client, org):
        """PT1H values summed per principal equal the P1D values."""
        c = org.inventory.clusters[0].id
        daily = await _all_rows(client, _body(RESP, c))
        hourly = await _all_rows(client, _body(RESP, c, granularity="PT1H"))
        per_day: dict[tuple[str, str], float] = defaultdict(float)
        for row in hourly:
            per_day[(row["metric.principal_id"], row["timestamp"][:10])] += row["value"]
        assert {(r["metric.principal_id"], r["timestamp"][:10]): r["value"] for r in daily} == dict(
            per_day
        )

    async def test_all_granularity_single_point(self, client, org):
        """ALL granularity gives one point per group at the interval start."""
        c = org.inventory.clusters[0].id
        r = await client.post(PATH, json=_body(REQ, c, granularity="ALL"))
        rows = r.json()["data"]
        assert len({x["metric.principal_id"] for x in rows}) == len(rows)
        assert {x["timestamp"] for x in rows} == {"2026-03-01T00:00:00.000Z"}


class TestValidation:
    @pytest.mark.parametrize(
        "change",
        [
            {"aggregations": []},
            {"aggregations": [{"metric": REQ}, {"metric": RESP}]},
            {"aggregations": [{"metric": "io.confluent.kafka.server/nope"}]},
            {"granularity": "P2D"},
            {"intervals": ["yesterday"]},
            {"limit": 1001},
            {"group_by": ["metric.topic_x"]},
            {"format": "GROUPED", "group_by": []},
        ],
    )
    async def test_bad_body_400(self, client, org, change):
        """Malformed queries get 400 with the metrics errors[] envelope."""
        body = {**_body(REQ, org.inventory.clusters[0].id), **change}
        r = await client.post(PATH, json=body)
        assert r.status_code == 400
        assert r.json()["errors"][0]["status"] == "400"

    async def test_no_resource_filter_403(self, client):
        """A query without a resource filter is refused with 403."""
        body = _body(REQ, "x")
        del body["filter"]
        r = await client.post(PATH, json=body)
        assert r.status_code == 403
        detail = r.json()["errors"][0]["detail"]
        assert detail == "Query must filter by at least one of your authorized resources"

    async def test_unknown_cluster_403(self, client):
        """Filtering only on clusters of another org is refused with 403."""
        assert (await client.post(PATH, json=_body(REQ, "lkc-other"))).status_code == 403


class TestPagination:
    async def test_limit_pages_groups(self, client, org):
        """A small limit pages over groups; the pages together equal one big page."""
        c = org.inventory.clusters[0].id
        whole = (await client.post(PATH, json=_body(REQ, c))).json()["data"]
        paged = await _all_rows(client, _body(REQ, c, limit=2))
        assert paged == whole

    async def test_token_needs_identical_body(self, client, org):
        """A page_token presented with a different body is refused."""
        c = org.inventory.clusters[0].id
        r = await client.post(PATH, json=_body(REQ, c, limit=1))
        token = r.json()["meta"]["pagination"]["next_page_token"]
        bad = await client.post(PATH, json=_body(RESP, c, limit=1), params={"page_token": token})
        assert bad.status_code == 400


class TestConsistency:
    async def test_network_quantity_equals_metric_bytes(self, client, org):
        """For settled days, network GB == metric bytes / 1e9 summed over principals."""
        cids = [c.id for c in org.inventory.clusters]
        body = _body(REQ, cids, group_by=["resource.kafka.id", "metric.principal_id"])
        write = await _all_rows(client, body)
        read = await _all_rows(client, {**body, "aggregations": [{"metric": RESP}]})
        sums: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        for lt, rows in (("KAFKA_NETWORK_WRITE", write), ("KAFKA_NETWORK_READ", read)):
            for row in rows:
                key = (lt, row["resource.kafka.id"], row["timestamp"][:10])
                sums[key] += Decimal(str(row["value"]))
        r = await client.get(
            "/billing/v1/costs", params={"start_date": "2026-03-01", "end_date": "2026-03-08"}
        )
        billed: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        for line in r.json()["data"]:
            if line["line_type"] in ("KAFKA_NETWORK_WRITE", "KAFKA_NETWORK_READ"):
                key = (line["line_type"], line["resource"]["id"], line["start_date"])
                billed[key] += Decimal(str(line["quantity"]))
        assert billed
        assert {k: v * 10**9 for k, v in billed.items()} == dict(sums)

    async def test_truth_matches_metrics(self, client, org):
        """The truth of a network line lists exactly the metric principals and bytes."""
        c = org.inventory.clusters[0].id
        rows = await _all_rows(client, _body(REQ, c))
        day = "2026-03-05"
        from_metrics = {
            r["metric.principal_id"]: int(r["value"])
            for r in rows
            if r["timestamp"].startswith(day)
        }
        lines = [
            x
            for x in org.billing_lines(date(2026, 3, 5))
            if x.line_type == "KAFKA_NETWORK_WRITE" and x.resource_id == c
        ]
        if not from_metrics:
            assert not lines
            return
        truth = org.truth(lines[0].day, lines[0].id)
        assert truth["principals"] == from_metrics

    async def test_flink_cfu_matches_billing(self, client, org):
        """Flink CFU-minutes per statement sum to the pool's FLINK_NUM_CFUS quantity * 60."""
        pool = org.inventory.flink_pools[0]
        body = {
            "aggregations": [{"metric": FLINK_CFU_METRIC}],
            "filter": {"field": "resource.compute_pool.id", "op": "EQ", "value": pool.id},
            "granularity": "P1D",
            "group_by": ["resource.flink_statement.name"],
            "intervals": [INTERVAL],
        }
        rows = await _all_rows(client, body)
        assert rows
        per_day: dict[str, Decimal] = defaultdict(Decimal)
        for row in rows:
            per_day[row["timestamp"][:10]] += Decimal(str(row["value"]))
        r = await client.get(
            "/billing/v1/costs", params={"start_date": "2026-03-01", "end_date": "2026-03-08"}
        )
        billed = {
            line["start_date"]: Decimal(str(line["quantity"])) * 60
            for line in r.json()["data"]
            if line["line_type"] == "FLINK_NUM_CFUS" and line["resource"]["id"] == pool.id
        }
        assert billed == dict(per_day)

    async def test_zero_usage_days_have_no_metrics(self, client, org):
        """A zero-usage cluster-day has no metric points and no network rows."""
        c = org.inventory.clusters[0]
        zero = [
            date(2026, 3, 10) - timedelta(days=i)
            for i in range(200)
            if not org.kafka_usage(c.id, date(2026, 3, 10) - timedelta(days=i))
        ]
        assert zero
        d = zero[0]
        body = _body(REQ, c.id, intervals=[f"{d}T00:00:00Z/{d + timedelta(days=1)}T00:00:00Z"])
        assert (await client.post(PATH, json=body)).json()["data"] == []
        assert not [
            x
            for x in org.billing_lines(d)
            if x.resource_id == c.id and x.line_type.startswith("KAFKA_NETWORK")
        ]
