"""The core's Prometheus usage source, used as a second ecosystem would use it."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qs

import httpx
from pydantic import SecretStr

from chargeback.core.models import MetricQuery
from chargeback.core.sources import (
    Credentials,
    HttpClient,
    HttpSettings,
    PrometheusSettings,
    PrometheusSource,
)

D1 = dt.date(2026, 3, 1)
D3 = dt.date(2026, 3, 3)
QUERY = MetricQuery("bytes_in", "broker_bytes_in", "cluster", "tenant")


def client(handler: Any) -> HttpClient:
    async def no_sleep(_: float) -> None:
        return None

    return HttpClient(
        Credentials("K", SecretStr("S")),
        HttpSettings(requests_per_second=None, max_retries=1),
        transport=httpx.MockTransport(handler),
        sleep=no_sleep,
    )


class FakePrometheus:
    """A tiny Prometheus HTTP API: answers query_range from a fixed series set."""

    def __init__(self, labels: tuple[str, str] = ("cluster", "tenant")) -> None:
        self.forms: list[dict[str, str]] = []
        self.auth: list[str | None] = []
        self._labels = labels

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query_range"
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.forms.append(form)
        self.auth.append(request.headers.get("authorization"))
        day2 = int(dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp())
        day3 = day2 + 86400
        res, who = self._labels
        result = [
            {"metric": {res: "c-1", who: "team-a"}, "values": [[day2, "100"], [day3, "50.4"]]},
            {"metric": {res: "c-1", who: "team-b"}, "values": [[day3, "1e3"]]},
            {"metric": {res: "c-1"}, "values": [[day3, "7"]]},  # no principal: skipped
            {"metric": {res: "c-1", who: "team-c"}, "values": [[day3 + 86400, "9"]]},  # too late
        ]
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "matrix", "result": result}}
        )


class TestPrometheusSource:
    async def test_one_query_range_by_day_with_names_as_given(self) -> None:
        """Without translation the query's own names are used; the point at T is the
        day before T; values become integers; series outside the range are dropped."""
        prom = FakePrometheus()
        source = PrometheusSource(client(prom), PrometheusSettings(url="http://prom:9090/"))
        table = await source.fetch(QUERY, ["c-1", "c.2"], D1, D3)
        (form,) = prom.forms
        assert form["step"] == "86400"
        assert form["query"] == (
            'sum by (cluster, tenant) (sum_over_time(broker_bytes_in{cluster=~"c-1|c\\\\.2"}[1d]))'
        )
        assert table == {
            (D1, "c-1"): {"team-a": 100},
            (dt.date(2026, 3, 2), "c-1"): {"team-a": 50, "team-b": 1000},
        }
        assert prom.auth == [None]  # anonymous: the tenant's key never goes to Prometheus

    async def test_translation_scale_and_function(self) -> None:
        """A plugin's name translation, scale per metric and the configured function apply."""
        prom = FakePrometheus(labels=("x_cluster", "x_tenant"))
        source = PrometheusSource(
            client(prom),
            PrometheusSettings(url="http://prom", function="increase"),
            metric_name=lambda m: f"x_{m}_total",
            label_name=lambda label: f"x_{label}",
            scale={"broker_bytes_in": 1000},
        )
        table = await source.fetch(QUERY, ["c-1"], D1, D3)
        assert prom.forms[0]["query"] == (
            'sum by (x_cluster, x_tenant) (increase(x_broker_bytes_in_total{x_cluster=~"c-1"}[1d]))'
        )
        assert table[(dt.date(2026, 3, 2), "c-1")] == {"team-a": 50400, "team-b": 1_000_000}

    async def test_basic_auth_when_configured(self) -> None:
        """Configured Prometheus basic auth is sent."""
        prom = FakePrometheus()
        settings = PrometheusSettings(url="http://prom", username="u", password=SecretStr("p"))
        await PrometheusSource(client(prom), settings).fetch(QUERY, ["c-1"], D1, D3)
        assert prom.auth == [httpx.BasicAuth("u", "p")._auth_header]

    async def test_nothing_to_ask_sends_nothing(self) -> None:
        """An empty range or no resources is an empty table without a request."""
        prom = FakePrometheus()
        source = PrometheusSource(client(prom), PrometheusSettings(url="http://prom"))
        assert await source.fetch(QUERY, [], D1, D3) == {}
        assert await source.fetch(QUERY, ["c-1"], D3, D1) == {}
        assert prom.forms == []
