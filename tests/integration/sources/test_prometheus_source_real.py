"""The core Prometheus sources against a real Prometheus: ids with regex and string specials."""

from __future__ import annotations

import datetime as dt

from pydantic import SecretStr
from tests.support.plugin import PrometheusFactory
from tests.support.prometheus import MetricHistory, Point

from chargeback.core.models import MetricQuery
from chargeback.core.sources import (
    Credentials,
    HttpClient,
    HttpSettings,
    PrometheusSettings,
    PrometheusSource,
)

DAY = dt.date(2026, 3, 1)
IDS = ("lkc-abc12", "a.b", 'we"ird\\id', "x|y")


async def test_ids_with_dashes_dots_quotes_and_bars_match_only_themselves(
    prometheus_history: PrometheusFactory,
) -> None:
    """Every id is matched literally (``re.escape``'s ``\\-`` is refused by PromQL: HTTP 400)."""
    noon = dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.UTC)
    points = [
        Point({"cluster": c, "principal": "sa-1"}, noon, 10 * (i + 1)) for i, c in enumerate(IDS)
    ]
    points.append(Point({"cluster": "aXb", "principal": "sa-1"}, noon, 999))  # "a.b" must not match
    server = prometheus_history([MetricHistory("bytes_in", "gauge", "h", points)])
    client = HttpClient(Credentials("", SecretStr("")), HttpSettings(requests_per_second=None))
    try:
        source = PrometheusSource(client, PrometheusSettings(url=server.url))
        query = MetricQuery("bytes_in", "bytes_in", "cluster", "principal")
        table = await source.fetch(query, IDS, DAY, DAY + dt.timedelta(days=1))
    finally:
        await client.aclose()
    assert table == {(DAY, c): {"sa-1": 10 * (i + 1)} for i, c in enumerate(IDS)}
