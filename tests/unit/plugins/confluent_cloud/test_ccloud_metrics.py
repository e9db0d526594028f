"""Usage sources: the Metrics API query (many resources, whole range) and Prometheus."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from chargeback.core.sources import Credentials, HttpClient, HttpSettings, PrometheusSettings
from chargeback.errors import SourceError
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin
from chargeback.plugins.confluent_cloud.handlers.base import METRIC_QUERIES
from chargeback.plugins.confluent_cloud.metrics import (
    MetricsApiSource,
    prom_label,
    prom_metric,
    prometheus_source,
)

D1 = dt.date(2026, 3, 1)
D3 = dt.date(2026, 3, 3)


def client(handler: Any) -> HttpClient:
    async def no_sleep(_: float) -> None:
        return None

    return HttpClient(
        Credentials("K", SecretStr("S")),
        HttpSettings(requests_per_second=None, max_retries=1),
        transport=httpx.MockTransport(handler),
        sleep=no_sleep,
    )


def filtered_ids(flt: dict[str, Any]) -> list[str]:
    """The resource ids of an EQ filter or an OR of EQ filters."""
    if flt["op"] == "OR":
        return [f["value"] for f in flt["filters"]]
    assert flt["op"] == "EQ"
    return [flt["value"]]


class FakeMetricsAPI:
    """Serves two pages per query (rows of every filtered resource) and records every
    (page_token, body)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str | None, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        token = request.url.params.get("page_token")
        self.calls.append((token, body))
        ids = filtered_ids(body["filter"])
        res, who = body["group_by"]
        if token is None:
            data = [
                row
                for rid in ids
                for row in (
                    {"timestamp": "2026-03-01T00:00:00Z", res: rid, who: "sa-1", "value": 10.0},
                    {"timestamp": "2026-03-02T00:00:00.000Z", res: rid, who: "sa-1",
                     "value": 2.5004},
                )
            ]  # fmt: skip
            meta = {"pagination": {"page_size": 2, "next_page_token": "p2-" + ",".join(ids)}}
        else:
            data = [{"timestamp": "2026-03-02T00:00:00Z", res: rid, who: "KEY", "value": 7}
                    for rid in ids]  # fmt: skip
            data.append({"timestamp": "2026-03-02T00:00:00Z", who: "sa-9", "value": 1})  # no id
            meta = {"pagination": {"page_size": 2}}
        return httpx.Response(200, json={"data": data, "meta": meta})


class TestMetricsApi:
    async def test_one_query_for_many_resources_for_the_whole_range(self) -> None:
        """The resources share one query (an OR of their ids, grouped by resource and
        principal, P1D over the whole interval), followed page by page with the
        identical body; rows without a resource id are skipped."""
        api = FakeMetricsAPI()
        source = MetricsApiSource(client(api), "http://tel")
        table = await source.fetch(METRIC_QUERIES["request_bytes"], ["lkc-b", "lkc-a"], D1, D3)
        assert [t for t, _ in api.calls] == [None, "p2-lkc-a,lkc-b"]
        body = api.calls[0][1]
        assert api.calls[1][1] == body
        assert body["filter"] == {
            "op": "OR",
            "filters": [
                {"field": "resource.kafka.id", "op": "EQ", "value": "lkc-a"},
                {"field": "resource.kafka.id", "op": "EQ", "value": "lkc-b"},
            ],
        }
        assert body["granularity"] == "P1D"
        assert body["intervals"] == ["2026-03-01T00:00:00Z/2026-03-03T00:00:00Z"]
        assert body["group_by"] == ["resource.kafka.id", "metric.principal_id"]
        assert body["limit"] == 1000
        for rid in ("lkc-a", "lkc-b"):
            assert table[(D1, rid)] == {"sa-1": 10}
            assert table[(dt.date(2026, 3, 2), rid)] == {"sa-1": 3, "KEY": 7}
        assert len(table) == 4

    async def test_resources_per_query_bounds_a_filter(self) -> None:
        """More resources than ``resources_per_query`` are asked for in several queries,
        each resource in exactly one; a batch of one is a plain EQ filter."""
        api = FakeMetricsAPI()
        source = MetricsApiSource(client(api), "http://tel", resources_per_query=2)
        ids = ["lkc-e", "lkc-d", "lkc-c", "lkc-b", "lkc-a", "lkc-a"]
        table = await source.fetch(METRIC_QUERIES["response_bytes"], ids, D1, D3)
        firsts = [b["filter"] for t, b in api.calls if t is None]
        assert sorted(map(filtered_ids, firsts)) == [["lkc-a", "lkc-b"], ["lkc-c", "lkc-d"],
                                                     ["lkc-e"]]  # fmt: skip
        assert {"field": "resource.kafka.id", "op": "EQ", "value": "lkc-e"} in firsts
        assert {rid for _, rid in table} == {"lkc-a", "lkc-b", "lkc-c", "lkc-d", "lkc-e"}

    async def test_nothing_to_ask_sends_nothing(self) -> None:
        """No resources or an empty range is an empty table without a request."""
        api = FakeMetricsAPI()
        source = MetricsApiSource(client(api), "http://tel")
        assert await source.fetch(METRIC_QUERIES["request_bytes"], [], D1, D3) == {}
        assert await source.fetch(METRIC_QUERIES["request_bytes"], ["lkc-a"], D3, D1) == {}
        assert api.calls == []

    async def test_cfu_minutes_are_scaled_before_rounding(self) -> None:
        """Flink CFU-minutes are kept to three decimals (x1000) as integers."""
        api = FakeMetricsAPI()
        source = MetricsApiSource(client(api), "http://tel")
        table = await source.fetch(METRIC_QUERIES["cfu"], ["lfcp-1"], D1, D3)
        assert table[(dt.date(2026, 3, 2), "lfcp-1")]["sa-1"] == 2500
        assert api.calls[0][1]["filter"]["field"] == "resource.compute_pool.id"

    async def test_a_repeating_page_token_is_an_error(self) -> None:
        """A cursor that never ends fails instead of looping."""

        def loop(request: httpx.Request) -> httpx.Response:
            return httpx.Response(
                200, json={"data": [], "meta": {"pagination": {"next_page_token": "x"}}}
            )

        with pytest.raises(SourceError, match="loop"):
            await MetricsApiSource(client(loop), "http://tel").fetch(
                METRIC_QUERIES["request_bytes"], ["lkc-a"], D1, D3
            )


class FakePrometheus:
    """A tiny Prometheus HTTP API: answers query_range from a fixed series set."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self.auth: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query_range"
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.forms.append(form)
        self.auth.append(request.headers.get("authorization"))
        day2 = int(dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp())
        day3 = day2 + 86400
        result = [
            {"metric": {"kafka_id": "lkc-a", "principal_id": "sa-1"},
             "values": [[day2, "100"], [day3, "50.4"]]},
            {"metric": {"kafka_id": "lkc-a", "principal_id": "sa-2"}, "values": [[day3, "1e3"]]},
        ]  # fmt: skip
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "matrix", "result": result}}
        )


class TestPrometheus:
    def test_names_translate_like_the_export(self) -> None:
        """Confluent metric and label names map to their export names."""
        assert prom_metric("io.confluent.kafka.server/request_bytes") == (
            "confluent_kafka_server_request_bytes"
        )
        assert prom_label("resource.kafka.id") == "kafka_id"
        assert prom_label("metric.principal_id") == "principal_id"

    async def test_query_range_by_day(self) -> None:
        """One query_range with step 1d; the point at T is the day before T."""
        prom = FakePrometheus()
        source = prometheus_source(client(prom), PrometheusSettings(url="http://prom:9090"))
        table = await source.fetch(METRIC_QUERIES["request_bytes"], ["lkc-a", "lkc-b"], D1, D3)
        (form,) = prom.forms
        assert form["step"] == "86400"
        assert form["query"] == (
            "sum by (kafka_id, principal_id) (sum_over_time("
            'confluent_kafka_server_request_bytes{kafka_id=~"lkc-a|lkc-b"}[1d]))'
        )
        assert table == {(D1, "lkc-a"): {"sa-1": 100}, (dt.date(2026, 3, 2), "lkc-a"):
                         {"sa-1": 50, "sa-2": 1000}}  # fmt: skip
        assert prom.auth == [None]  # never the Confluent key


class TestCursorExpiry:
    async def test_an_expired_cursor_restarts_the_query(self) -> None:
        """A 400 on a later page restarts the query from its first page, once more."""
        api = FakeMetricsAPI()
        failed: list[str] = []

        def flaky(request: httpx.Request) -> httpx.Response:
            token = request.url.params.get("page_token")
            if token and not failed:
                failed.append(token)
                return httpx.Response(400, json={"errors": [{"detail": "cursor expired"}]})
            return api(request)

        source = MetricsApiSource(client(flaky), "http://tel")
        table = await source.fetch(METRIC_QUERIES["request_bytes"], ["lkc-a"], D1, D3)
        assert failed == ["p2-lkc-a"]
        assert [t for t, _ in api.calls] == [None, None, "p2-lkc-a"]
        assert len(table) == 2
        assert table[(dt.date(2026, 3, 2), "lkc-a")] == {"sa-1": 3, "KEY": 7}

    async def test_a_first_page_400_is_not_retried(self) -> None:
        """A 400 on the first page is a real error: SourceError at once."""

        def bad(request: httpx.Request) -> httpx.Response:
            return httpx.Response(400, json={"errors": [{"detail": "bad filter"}]})

        with pytest.raises(SourceError, match="bad filter"):
            await MetricsApiSource(client(bad), "http://tel").fetch(
                METRIC_QUERIES["request_bytes"], ["lkc-a"], D1, D3
            )


class TestMetricsRateLimit:
    async def test_metrics_requests_keep_to_requests_per_minute(self) -> None:
        """The plugin keeps Metrics API requests to ``metrics.requests_per_minute`` in any
        minute (its own pool, though the host is shared and ``http.requests_per_second``
        is off); by default 280, under the documented 300 per IP, so a run's few
        queries go at once."""
        sleeps: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            sleeps.append(seconds)

        def plugin(**metrics: Any) -> ConfluentCloudPlugin:
            p = ConfluentCloudPlugin(
                transport=httpx.MockTransport(FakeMetricsAPI()), sleep=fake_sleep
            )
            p.initialize(
                {"api_key": "K", "api_secret": "S", "base_url": "http://sim",
                 "telemetry_url": "http://sim", "http": {"requests_per_second": None},
                 "metrics": {"resources_per_query": 1, **metrics}}
            )  # fmt: skip
            return p

        ids = ["lkc-a", "lkc-b", "lkc-c"]
        source = plugin(requests_per_minute=2).get_metrics_source()
        await source.fetch(METRIC_QUERIES["request_bytes"], ids, D1, D3)
        # 6 requests (3 queries x 2 pages); the fake sleep lets no time pass: two a minute
        assert sorted(sleeps) == pytest.approx([60, 60, 120, 120], abs=0.5)
        sleeps.clear()
        await plugin().get_metrics_source().fetch(METRIC_QUERIES["cfu"], ids, D1, D3)
        assert sleeps == []
        await (
            plugin(requests_per_minute=None)
            .get_metrics_source()
            .fetch(METRIC_QUERIES["cfu"], ids, D1, D3)
        )
        assert sleeps == []  # the host's limit, off here

    async def test_the_tenants_of_a_process_share_the_metrics_limit(self) -> None:
        """The limit is per IP, so two tenants with the same ``requests_per_minute`` take
        their Metrics API turns from one pool: 2 a minute between them."""
        sleeps: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            sleeps.append(seconds)

        sources = []
        for key in ("TENANT1", "TENANT2"):
            p = ConfluentCloudPlugin(
                transport=httpx.MockTransport(FakeMetricsAPI()), sleep=fake_sleep
            )
            p.initialize(
                {"api_key": key, "api_secret": "S", "base_url": "http://sim",
                 "telemetry_url": "http://sim", "http": {"requests_per_second": None},
                 "metrics": {"requests_per_minute": 2}}
            )  # fmt: skip
            sources.append(p.get_metrics_source())
        for source in sources:  # 2 requests (pages) each
            await source.fetch(METRIC_QUERIES["cfu"], ["lfcp-1"], D1, D3)
        assert sleeps == pytest.approx([60, 60], abs=0.5)
