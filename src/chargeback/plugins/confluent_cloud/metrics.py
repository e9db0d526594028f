"""Usage sources: the Confluent Metrics API, or a Prometheus that scrapes the export.

:class:`MetricsApiSource` sends, per :class:`~chargeback.core.models.MetricQuery` and
per resource, ONE ``POST /v2/metrics/cloud/query`` for the whole date range
(granularity ``P1D``, ``intervals ["<start>T00:00:00Z/<end>T00:00:00Z"]``, grouped by
the query's principal label, ``limit`` 1000) and follows
``meta.pagination.next_page_token`` with the identical body; never one request per
day (DESIGN §10). Values become integers: bytes are rounded to whole bytes; metrics
in :data:`SCALE` (Flink CFU-minutes, fractional) are multiplied first (CFU-minutes
x 1000 = milli-CFU-minutes) so the weights keep three decimals.

With ``metrics.source: prometheus`` usage comes instead from a Prometheus that
scrapes the Confluent export: the core's
:class:`~chargeback.core.sources.PrometheusSource` (:func:`prometheus_source`), with
Confluent names translated as the export does:
``io.confluent.kafka.server/request_bytes`` -> ``confluent_kafka_server_request_bytes``,
``resource.kafka.id`` -> ``kafka_id``, ``metric.principal_id`` -> ``principal_id``.
The export's per-minute delta gauges suit the default ``sum_over_time``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from chargeback.core.models import MetricQuery, UsageTable
from chargeback.core.sources import HttpClient, PrometheusSettings, PrometheusSource
from chargeback.core.sources.values import day_of, usage_value
from chargeback.errors import SourceError

__all__ = [
    "SCALE",
    "MetricsApiSource",
    "prom_label",
    "prom_metric",
    "prometheus_source",
]

_log = structlog.get_logger(__name__)

QUERY_ENDPOINT = "/v2/metrics/cloud/query"

_CURSOR_RESTARTS = 2
"""Restarts of a query whose page cursor expired (400 on a later page, reference §4.3)."""

SCALE: Mapping[str, int] = {
    "io.confluent.flink/statement_utilization/cfu_minutes_consumed": 1000,
}
"""Multipliers applied before rounding a metric's values to integers."""


class _CursorExpired(Exception):  # noqa: N818  (internal control flow, never escapes)
    """A later page of a Metrics API query answered 400: the cursor expired."""


class MetricsApiSource:
    """Usage from ``POST /v2/metrics/cloud/query`` (reference §4.1).

    Args:
        client: the tenant's HTTP client.
        telemetry_url: the Metrics API base URL.
        limit: groups per page (max 1000).
    """

    def __init__(self, client: HttpClient, telemetry_url: str, limit: int = 1000) -> None:
        self._client = client
        self._url = telemetry_url.rstrip("/") + QUERY_ENDPOINT
        self._limit = limit

    async def fetch(
        self, query: MetricQuery, resource_ids: Sequence[str], start: dt.date, end: dt.date
    ) -> UsageTable:
        """Return ``(day, resource) -> {principal: value}`` for ``start <= day < end``."""
        table: UsageTable = {}
        if start >= end:
            return table

        async def one(rid: str) -> None:
            # Folded in as each resource's query completes: the raw rows of every
            # resource are never all alive at once.
            for day, principal, value in await self._one(query, rid, start, end):
                if start <= day < end:
                    bucket = table.setdefault((day, rid), {})
                    bucket[principal] = bucket.get(principal, 0) + value

        await asyncio.gather(*(one(rid) for rid in sorted(set(resource_ids))))
        return table

    async def _one(
        self, query: MetricQuery, resource_id: str, start: dt.date, end: dt.date
    ) -> list[tuple[dt.date, str, int]]:
        body = {
            "aggregations": [{"metric": query.metric}],
            "filter": {"field": query.resource_label, "op": "EQ", "value": resource_id},
            "granularity": "P1D",
            "group_by": [query.group_by],
            "intervals": [f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T00:00:00Z"],
            "limit": self._limit,
            "format": "FLAT",
        }
        for _ in range(_CURSOR_RESTARTS):
            try:
                return await self._pages(query, body)
            except _CursorExpired:
                _log.warning("metrics cursor expired, query restarted", metric=query.metric)
        try:
            return await self._pages(query, body)
        except _CursorExpired as exc:
            raise SourceError(
                f"POST {self._url}: the page cursor kept expiring", url=self._url, status=400
            ) from exc

    async def _pages(
        self, query: MetricQuery, body: Mapping[str, Any]
    ) -> list[tuple[dt.date, str, int]]:
        """Read every page of one query; a 400 on a later page means the cursor expired."""
        scale = SCALE.get(query.metric, 1)
        out: list[tuple[dt.date, str, int]] = []
        token: str | None = None
        seen: set[str] = set()
        for _ in range(self._client.settings.max_pages):
            params = {"page_token": token} if token else None
            try:
                page = await self._client.request_json(
                    "POST", self._url, endpoint=QUERY_ENDPOINT, params=params, body=body
                )
            except SourceError as exc:
                if exc.status == 400 and token is not None:
                    raise _CursorExpired from exc
                raise
            data = page.get("data") if isinstance(page, dict) else None
            for row in data if isinstance(data, list) else ():
                if not isinstance(row, dict):
                    continue
                day = day_of(row.get("timestamp"))
                principal = row.get(query.group_by)
                value = usage_value(row.get("value"), scale)
                if day is None or not isinstance(principal, str) or value is None:
                    _log.warning("metrics row skipped", metric=query.metric, row=str(row)[:200])
                    continue
                out.append((day, principal, value))
            pagination = (
                page.get("meta", {}).get("pagination", {}) if isinstance(page, dict) else {}
            )
            token = pagination.get("next_page_token") if isinstance(pagination, dict) else None
            if not token:
                return out
            if token in seen:
                raise SourceError(f"POST {self._url} paginated in a loop", url=self._url)
            seen.add(token)
        raise SourceError(
            f"POST {self._url} returned more than {self._client.settings.max_pages} pages",
            url=self._url,
        )


def prom_metric(name: str) -> str:
    """Translate a Confluent metric name to its export name."""
    return "confluent_" + re.sub(r"[^a-zA-Z0-9_]", "_", name.removeprefix("io.confluent."))


def prom_label(label: str) -> str:
    """Translate a Confluent label (``resource.kafka.id``) to its export name (``kafka_id``)."""
    for prefix in ("metric.", "resource."):
        if label.startswith(prefix):
            label = label[len(prefix) :]
            break
    return label.replace(".", "_")


def prometheus_source(client: HttpClient, settings: PrometheusSettings) -> PrometheusSource:
    """Return the core's Prometheus source with the export's names and scales."""
    return PrometheusSource(
        client, settings, metric_name=prom_metric, label_name=prom_label, scale=SCALE
    )
