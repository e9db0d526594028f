# mypy: allow-untyped-defs
"""Several clusters in one Metrics query: compound filters, multi-label groups, paging."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ccloud_sim import METRICS_API_REQUESTS_PER_MINUTE, RateLimits, SimClock, create_app

PATH = "/v2/metrics/cloud/query"
REQ = "io.confluent.kafka.server/request_bytes"
RESP = "io.confluent.kafka.server/response_bytes"
FORBIDDEN = "Query must filter by at least one of your authorized resources"
INTERVAL = "2026-02-20T00:00:00Z/2026-03-12T00:00:00Z"


def _eq(cluster: str) -> dict[str, Any]:
    return {"field": "resource.kafka.id", "op": "EQ", "value": cluster}


def _body(metric: str, flt: dict[str, Any], group_by: list[str], **extra: Any) -> dict[str, Any]:
    body = {
        "aggregations": [{"metric": metric}],
        "filter": flt,
        "granularity": "P1D",
        "group_by": group_by,
        "intervals": [INTERVAL],
        "limit": 1000,
        "format": "FLAT",
    }
    body.update(extra)
    return body


async def _pages(client: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page's body, following next_page_token."""
    pages: list[dict[str, Any]] = []
    token = None
    while True:
        r = await client.post(PATH, json=body, params={"page_token": token} if token else {})
        assert r.status_code == 200, r.text
        pages.append(r.json())
        token = r.json()["meta"]["pagination"].get("next_page_token")
        if not token:
            return pages


def _clusters(org) -> list[str]:
    return sorted(c.id for c in org.inventory.clusters)


class TestCompoundAnswers:
    @pytest.mark.parametrize("metric", [REQ, RESP])
    async def test_flat_equals_the_single_cluster_answers_row_for_row(self, client, org, metric):
        """An OR over every cluster, grouped by cluster and principal, paged by 5 groups,
        is the per-cluster answers one after the other with the cluster label added."""
        ids = _clusters(org)
        expected: list[dict[str, Any]] = []
        for cid in ids:
            body = _body(metric, _eq(cid), ["metric.principal_id"])
            for page in await _pages(client, body):
                expected += [{"resource.kafka.id": cid, **row} for row in page["data"]]
        flt = {"op": "OR", "filters": [_eq(c) for c in ids]}
        body = _body(metric, flt, ["resource.kafka.id", "metric.principal_id"], limit=5)
        pages = await _pages(client, body)
        got = [row for page in pages for row in page["data"]]
        assert len(pages) > 2
        assert got == expected
        assert {c for c in ids if any(r["resource.kafka.id"] == c for r in got)} == set(ids)

    async def test_grouped_equals_the_single_cluster_groups(self, client, org):
        """GROUPED: the compound answer's groups are the per-cluster groups, in label order."""
        ids = _clusters(org)
        expected: list[dict[str, Any]] = []
        for cid in ids:
            body = _body(REQ, _eq(cid), ["metric.principal_id"], format="GROUPED")
            for page in await _pages(client, body):
                expected += [{"resource.kafka.id": cid, **g} for g in page["data"]]
        flt = {"op": "OR", "filters": [_eq(c) for c in ids]}
        body = _body(
            REQ, flt, ["resource.kafka.id", "metric.principal_id"], format="GROUPED", limit=4
        )
        pages = await _pages(client, body)
        got = [g for page in pages for g in page["data"]]
        assert got == expected
        assert all(len(page["data"]) <= 4 for page in pages)
        keys = [(g["resource.kafka.id"], g["metric.principal_id"]) for g in got]
        assert keys == sorted(keys)
        assert pages[0]["meta"]["pagination"]["total_size"] == len(got)

    async def test_sum_over_clusters_equals_the_compound_total(self, client, org):
        """Grouped by principal only, the compound answer sums the clusters' values."""
        ids = _clusters(org)
        per: dict[tuple[str, str], float] = {}
        for cid in ids:
            for page in await _pages(client, _body(REQ, _eq(cid), ["metric.principal_id"])):
                for row in page["data"]:
                    key = (row["timestamp"], row["metric.principal_id"])
                    per[key] = per.get(key, 0) + row["value"]
        flt = {"op": "OR", "filters": [_eq(c) for c in ids]}
        pages = await _pages(client, _body(REQ, flt, ["metric.principal_id"], limit=3))
        got = {
            (r["timestamp"], r["metric.principal_id"]): r["value"] for p in pages for r in p["data"]
        }
        assert got == per

    async def test_and_with_a_principal_narrows(self, client, org):
        """AND of the cluster OR and a principal EQ keeps only that principal's rows."""
        ids = _clusters(org)
        whole = await _pages(client, _body(REQ, _eq(ids[0]), ["metric.principal_id"]))
        principal = whole[0]["data"][0]["metric.principal_id"]
        flt = {
            "op": "AND",
            "filters": [
                {"op": "OR", "filters": [_eq(c) for c in ids]},
                {"field": "metric.principal_id", "op": "EQ", "value": principal},
            ],
        }
        rows = (await _pages(client, _body(REQ, flt, ["resource.kafka.id"])))[0]["data"]
        assert rows
        assert {r["resource.kafka.id"] for r in rows} <= set(ids)
        own = [r for r in whole[0]["data"] if r["metric.principal_id"] == principal]
        mine = [r for r in rows if r["resource.kafka.id"] == ids[0]]
        assert [(r["timestamp"], r["value"]) for r in mine] == [
            (r["timestamp"], r["value"]) for r in own
        ]

    async def test_replayed_token_gives_the_same_page(self, client, org):
        """A page token can be presented again and answers the same page."""
        flt = {"op": "OR", "filters": [_eq(c) for c in _clusters(org)]}
        body = _body(REQ, flt, ["resource.kafka.id", "metric.principal_id"], limit=3)
        first = await client.post(PATH, json=body)
        token = first.json()["meta"]["pagination"]["next_page_token"]
        a = await client.post(PATH, json=body, params={"page_token": token})
        b = await client.post(PATH, json=body, params={"page_token": token})
        assert a.status_code == b.status_code == 200
        assert a.json() == b.json()
        assert a.json()["data"] != first.json()["data"]


class TestAuthorization:
    @pytest.mark.parametrize(
        "flt",
        [
            None,
            {"field": "metric.principal_id", "op": "EQ", "value": "sa-x"},
            {"op": "NOT", "filter": {"field": "resource.kafka.id", "op": "EQ", "value": "lkc-a"}},
        ],
    )
    async def test_no_resource_filter_403(self, client, flt):
        """A query naming no resource of the org is refused with the real API's 403."""
        body = _body(REQ, flt or {}, ["metric.principal_id"])
        if flt is None:
            del body["filter"]
        r = await client.post(PATH, json=body)
        assert r.status_code == 403
        assert r.json()["errors"][0]["detail"] == FORBIDDEN

    async def test_one_foreign_cluster_spoils_the_query(self, client, org):
        """Every filtered cluster must be the org's: one from elsewhere gives 403."""
        flt = {"op": "OR", "filters": [_eq(_clusters(org)[0]), _eq("lkc-elsewhere")]}
        r = await client.post(PATH, json=_body(REQ, flt, ["metric.principal_id"]))
        assert r.status_code == 403
        assert r.json()["errors"][0]["detail"] == FORBIDDEN

    async def test_deleted_cluster_still_queryable(self, client, org):
        """A cluster deleted mid-history is still the org's: its old metrics are served."""
        gone = next(c for c in org.inventory.clusters if c.life.deleted_at is not None)
        day = gone.life.deleted_at.date()
        interval = f"{day.replace(day=1)}T00:00:00Z/{day}T00:00:00Z"
        body = _body(REQ, _eq(gone.id), ["metric.principal_id"], intervals=[interval])
        r = await client.post(PATH, json=body)
        assert r.status_code == 200
        assert r.json()["data"]


class TestTelemetryRateLimit:
    def test_documented_limit(self):
        """The Metrics API's documented limit is 300 requests per minute."""
        assert METRICS_API_REQUESTS_PER_MINUTE == 300

    async def test_limit_is_per_client_ip(self, org, now):
        """Past the telemetry limit one IP gets 429 + rateLimit-*; another IP still gets 200."""
        app = create_app(
            org,
            clock=SimClock(now),
            rate_limits=RateLimits(telemetry=2),
            metrics_retention_days=None,
        )
        body = _body(REQ, _eq(_clusters(org)[0]), ["metric.principal_id"])

        def client(ip: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(ip, 1234))
            return httpx.AsyncClient(
                transport=transport, base_url="http://sim", auth=("SIMKEY", "SIMSECRET")
            )

        async with client("10.0.0.1") as a, client("10.0.0.2") as b:
            first = [(await a.post(PATH, json=body)).status_code for _ in range(2)]
            limited = await a.post(PATH, json=body)
            other = await b.post(PATH, json=body)
            management = await a.get("/org/v2/environments")
        assert first == [200, 200]
        assert limited.status_code == 429
        assert limited.headers["rateLimit-limit"] == "2"
        assert limited.headers["rateLimit-remaining"] == "0"
        assert int(limited.headers["Retry-After"]) >= 1
        assert other.status_code == 200
        assert management.status_code == 200
