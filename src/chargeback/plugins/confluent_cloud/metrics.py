"""Usage sources: the Confluent Metrics API, or a Prometheus that scrapes the export.

:class:`MetricsApiSource` sends, per :class:`~chargeback.core.models.MetricQuery` and
batch of up to ``metrics.resources_per_query`` resources, ONE ``POST
/v2/metrics/cloud/query`` for the whole date range: granularity ``P1D``, ``intervals
["<start>T00:00:00Z/<end>T00:00:00Z"]``, a filter on the resources (``EQ`` for one,
an ``OR`` of ``EQ`` filters for several: a CompoundFilter, reference §4.1), grouped
by the resource label and the query's principal label, ``limit`` groups per page,
following ``meta.pagination.next_page_token`` with the identical body. So the
queries of a run grow with the groups (resources x principals / ``limit``), not with
the resources, and never with the days (DESIGN §10). Every request goes through the
client's ``metrics_api`` rate pool (``metrics.requests_per_minute``). Values become
integers: bytes are rounded to whole bytes; metrics in :data:`SCALE` (Flink
CFU-minutes, fractional) are multiplied first (CFU-minutes x 1000 =
milli-CFU-minutes) so the weights keep three decimals.

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
RATE_POOL = "metrics_api"
"""The client's rate pool of every Metrics API request."""

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
        client: the tenant's HTTP client, with the :data:`RATE_POOL` rate pool.
        telemetry_url: the Metrics API base URL.
        limit: groups per page (max 1000).
        resources_per_query: resources in one query's filter.
    """

    def __init__(
        self,
        client: HttpClient,
        telemetry_url: str,
        limit: int = 1000,
        *,
        resources_per_query: int = 100,
    ) -> None:
        self._client = client
        self._url = telemetry_url.rstrip("/") + QUERY_ENDPOINT
        self._limit = limit
        self._batch = resources_per_query

    async def fetch(
        self, query: MetricQuery, resource_ids: Sequence[str], start: dt.date, end: dt.date
    ) -> UsageTable:
        """Return ``(day, resource) -> {principal: value}`` for ``start <= day < end``."""
        table: UsageTable = {}
        if start >= end or not resource_ids:
            return table
        ids = sorted(set(resource_ids))
        batches = [ids[i : i + self._batch] for i in range(0, len(ids), self._batch)]

        async def one(batch: list[str]) -> None:
            # Batches hold distinct resources, so their tables never share a key.
            table.update(await self._query(query, batch, start, end))

        await asyncio.gather(*(one(batch) for batch in batches))
        return table

    def _body(
        self, query: MetricQuery, resource_ids: Sequence[str], start: dt.date, end: dt.date
    ) -> dict[str, Any]:
        """The query body; identical for every page of the query."""
        filters = [
            {"field": query.resource_label, "op": "EQ", "value": rid} for rid in resource_ids
        ]
        return {
            "aggregations": [{"metric": query.metric}],
            "filter": filters[0] if len(filters) == 1 else {"op": "OR", "filters": filters},
            "granularity": "P1D",
            "group_by": [query.resource_label, query.group_by],
            "intervals": [f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T00:00:00Z"],
            "limit": self._limit,
            "format": "FLAT",
        }

    async def _query(
        self, query: MetricQuery, resource_ids: Sequence[str], start: dt.date, end: dt.date
    ) -> UsageTable:
        """Read one query to its last page, restarting it when its cursor expires."""
        body = self._body(query, resource_ids, start, end)
        for _ in range(_CURSOR_RESTARTS):
            try:
                return await self._pages(query, body, start, end)
            except _CursorExpired:
                _log.warning("metrics cursor expired, query restarted", metric=query.metric)
        try:
            return await self._pages(query, body, start, end)
        except _CursorExpired as exc:
            raise SourceError(
                f"POST {self._url}: the page cursor kept expiring", url=self._url, status=400
            ) from exc

    async def _pages(
        self, query: MetricQuery, body: Mapping[str, Any], start: dt.date, end: dt.date
    ) -> UsageTable:
        """Fold every page of one query into a table, page by page; a 400 on a later
        page means the cursor expired (the partial table is then dropped)."""
        table: UsageTable = {}
        token: str | None = None
        seen: set[str] = set()
        for _ in range(self._client.settings.max_pages):
            page = await self._page(body, token)
            _fold(table, query, page.get("data"), start, end)
            meta = page.get("meta")
            pagination = meta.get("pagination") if isinstance(meta, dict) else None
            token = pagination.get("next_page_token") if isinstance(pagination, dict) else None
            if not token:
                return table
            if token in seen:
                raise SourceError(f"POST {self._url} paginated in a loop", url=self._url)
            seen.add(token)
        raise SourceError(
            f"POST {self._url} returned more than {self._client.settings.max_pages} pages",
            url=self._url,
        )

    async def _page(self, body: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        """One page of a query (an empty one if the body is not an object)."""
        params = {"page_token": token} if token else None
        try:
            page = await self._client.request_json(
                "POST", self._url, endpoint=QUERY_ENDPOINT, params=params, body=body,
                pool=RATE_POOL,
            )  # fmt: skip
        except SourceError as exc:
            if exc.status == 400 and token is not None:
                raise _CursorExpired from exc
            raise
        return page if isinstance(page, dict) else {}


def _fold(
    table: UsageTable, query: MetricQuery, data: object, start: dt.date, end: dt.date
) -> None:
    """Add a page's FLAT rows to ``table``; malformed rows are skipped with a warning."""
    scale = SCALE.get(query.metric, 1)
    resource_label, group_by = query.resource_label, query.group_by
    for row in data if isinstance(data, list) else ():
        if not isinstance(row, dict):
            continue
        day = day_of(row.get("timestamp"))
        rid = row.get(resource_label)
        principal = row.get(group_by)
        value = usage_value(row.get("value"), scale)
        if (
            day is None
            or not isinstance(principal, str)
            or value is None
            or not isinstance(rid, str)
        ):
            _log.warning("metrics row skipped", metric=query.metric, row=str(row)[:200])
            continue
        if start <= day < end:
            bucket = table.setdefault((day, rid), {})
            bucket[principal] = bucket.get(principal, 0) + value


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
