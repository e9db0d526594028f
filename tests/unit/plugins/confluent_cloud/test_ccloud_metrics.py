"""Usage sources: the Metrics API query (one per resource, whole range) and Prometheus."""

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


class FakeMetricsAPI:
    """Serves two pages per resource and records every (page_token, body)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str | None, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        token = request.url.params.get("page_token")
        self.calls.append((token, body))
        rid = body["filter"]["value"]
        label = body["group_by"][0]
        if token is None:
            data = [
                {"timestamp": "2026-03-01T00:00:00Z", label: "sa-1", "value": 10.0},
                {"timestamp": "2026-03-02T00:00:00.000Z", label: "sa-1", "value": 2.5004},
            ]
            meta = {"pagination": {"page_size": 2, "next_page_token": f"p2-{rid}"}}
        else:
            data = [{"timestamp": "2026-03-02T00:00:00Z", label: "KEY", "value": 7}]
            meta = {"pagination": {"page_size": 2}}
        return httpx.Response(200, json={"data": data, "meta": meta})


class TestMetricsApi:
    async def test_one_query_per_resource_for_the_whole_range(self) -> None:
        """Each resource gets one query (P1D, whole interval) and its pages, same body."""
        api = FakeMetricsAPI()
        source = MetricsApiSource(client(api), "http://tel")
        table = await source.fetch(METRIC_QUERIES["request_bytes"], ["lkc-b", "lkc-a"], D1, D3)
        assert len(api.calls) == 4
        first_pages = [b for t, b in api.calls if t is None]
        assert sorted(b["filter"]["value"] for b in first_pages) == ["lkc-a", "lkc-b"]
        for body in first_pages:
            assert body["granularity"] == "P1D"
            assert body["intervals"] == ["2026-03-01T00:00:00Z/2026-03-03T00:00:00Z"]
            assert body["group_by"] == ["metric.principal_id"]
            assert body["limit"] == 1000
        by_token = dict(api.calls)
        first_a = next(b for t, b in api.calls if t is None and b["filter"]["value"] == "lkc-a")
        assert by_token["p2-lkc-a"] == first_a
        assert table[(D1, "lkc-a")] == {"sa-1": 10}
        assert table[(dt.date(2026, 3, 2), "lkc-a")] == {"sa-1": 3, "KEY": 7}

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
            'confluent_kafka_server_request_bytes{kafka_id=~"lkc\\-a|lkc\\-b"}[1d]))'
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
        assert table[(dt.date(2026, 3, 2), "lkc-a")] == {"sa-1": 3, "KEY": 7}

    async def test_a_first_page_400_is_not_retried(self) -> None:
        """A 400 on the first page is a real error: SourceError at once."""

        def bad(request: httpx.Request) -> httpx.Response:
            return httpx.Response(400, json={"errors": [{"detail": "bad filter"}]})

        with pytest.raises(SourceError, match="bad filter"):
            await MetricsApiSource(client(bad), "http://tel").fetch(
                METRIC_QUERIES["request_bytes"], ["lkc-a"], D1, D3
            )
