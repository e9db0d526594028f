"""Usage sources: the Confluent Metrics API, or a Prometheus that scrapes the export.

:class:`MetricsApiSource` sends, per :class:`~chargeback.core.models.MetricQuery` and
per resource, ONE ``POST /v2/metrics/cloud/query`` for the whole date range
(granularity ``P1D``, ``intervals ["<start>T00:00:00Z/<end>T00:00:00Z"]``, grouped by
the query's principal label, ``limit`` 1000) and follows
``meta.pagination.next_page_token`` with the identical body; never one request per
day (DESIGN §10). Values become integers: bytes are rounded to whole bytes; metrics
in :data:`SCALE` (Flink CFU-minutes, fractional) are multiplied first (CFU-minutes
x 1000 = milli-CFU-minutes) so the weights keep three decimals.

:class:`PrometheusSource` asks a Prometheus server with ``query_range`` (``step`` 1d)
for ``sum by (<resource label>, <principal label>) (sum_over_time(<metric>{<resource
label>=~"id1|id2"}[1d]))``. The evaluation at ``T`` covers ``[T - 1d, T)``, so the
query runs from ``start + 1d`` to ``end`` and the value at ``T`` belongs to the day
``T - 1d``. ``sum_over_time`` (the default) matches the export's per-minute delta
gauges; ``increase`` can be configured for cumulative counters. Confluent names
translate as the export does: ``io.confluent.kafka.server/request_bytes`` ->
``confluent_kafka_server_request_bytes``, ``resource.kafka.id`` -> ``kafka_id``,
``metric.principal_id`` -> ``principal_id``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import re
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN
from typing import Any

import structlog
from pydantic import SecretStr

from chargeback.core.models import MetricQuery, UsageTable
from chargeback.errors import SourceError
from chargeback.plugins.confluent_cloud.client import CCloudClient, Credentials
from chargeback.plugins.confluent_cloud.config import PrometheusSettings
from chargeback.plugins.confluent_cloud.cost_input import parse_decimal

__all__ = ["SCALE", "MetricsApiSource", "PrometheusSource", "prom_label", "prom_metric"]

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


_EXACT_FLOAT = float(2**53)
"""Below this, an integral float's shortest repr is its exact integer (no exponent)."""


def _to_int(value: object, scale: int) -> int | None:
    if type(value) is int:  # byte counts sent as integers: exact as they are
        return value * scale
    if type(value) is float and -_EXACT_FLOAT < value < _EXACT_FLOAT and value.is_integer():
        return int(value) * scale  # byte counts as the API sends them, 1.2E9 as 1200000000.0
    dec = parse_decimal(value)
    if dec is None:
        return None
    return int((dec * scale).to_integral_value(rounding=ROUND_HALF_EVEN))


def _day_of(timestamp: object) -> dt.date | None:
    if isinstance(timestamp, str):
        return _day_of_text(timestamp)
    if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).date()
    return None


@functools.lru_cache(maxsize=4096)
def _day_of_text(timestamp: str) -> dt.date | None:
    """The UTC day of an ISO timestamp; cached, since every group of a query repeats
    the same few timestamps (one per day)."""
    try:
        return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).astimezone(dt.UTC).date()
    except ValueError:
        return None


class MetricsApiSource:
    """Usage from ``POST /v2/metrics/cloud/query`` (reference §4.1).

    Args:
        client: the tenant's HTTP client.
        telemetry_url: the Metrics API base URL.
        limit: groups per page (max 1000).
    """

    def __init__(self, client: CCloudClient, telemetry_url: str, limit: int = 1000) -> None:
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
                day = _day_of(row.get("timestamp"))
                principal = row.get(query.group_by)
                value = _to_int(row.get("value"), scale)
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


class PrometheusSource:
    """Usage from a Prometheus HTTP API (``/api/v1/query_range``, step one day).

    Args:
        client: the tenant's HTTP client (retries, limits, telemetry).
        settings: the Prometheus URL, optional basic auth and the range function.
    """

    def __init__(self, client: CCloudClient, settings: PrometheusSettings) -> None:
        self._client = client
        self._url = settings.url.rstrip("/") + "/api/v1/query_range"
        self._function = settings.function
        self._creds = (
            Credentials(settings.username, settings.password or SecretStr(""))
            if settings.username
            else None
        )

    def promql(self, query: MetricQuery, resource_ids: Sequence[str]) -> str:
        """Return the PromQL of ``query`` for ``resource_ids``."""
        res_label = prom_label(query.resource_label)
        group = prom_label(query.group_by)
        ids = "|".join(re.escape(r) for r in sorted(set(resource_ids)))
        selector = f'{prom_metric(query.metric)}{{{res_label}=~"{ids}"}}'
        return f"sum by ({res_label}, {group}) ({self._function}({selector}[1d]))"

    async def fetch(
        self, query: MetricQuery, resource_ids: Sequence[str], start: dt.date, end: dt.date
    ) -> UsageTable:
        """Return ``(day, resource) -> {principal: value}`` for ``start <= day < end``."""
        table: UsageTable = {}
        if start >= end or not resource_ids:
            return table
        first = dt.datetime.combine(start + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        last = dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC)
        form = {
            "query": self.promql(query, resource_ids),
            "start": str(int(first.timestamp())),
            "end": str(int(last.timestamp())),
            "step": "86400",
        }
        body = await self._post(form)
        if not isinstance(body, dict) or body.get("status") != "success":
            raise SourceError(f"POST {self._url} did not succeed: {str(body)[:200]}", url=self._url)
        res_label, group = prom_label(query.resource_label), prom_label(query.group_by)
        scale = SCALE.get(query.metric, 1)
        for series in body.get("data", {}).get("result", []):
            labels = series.get("metric", {})
            rid, principal = labels.get(res_label), labels.get(group)
            if not isinstance(rid, str) or not isinstance(principal, str):
                continue
            for ts, raw in series.get("values", []):
                day = _day_of(float(ts) - 86400)
                value = _to_int(raw, scale)
                if day is None or value is None or not start <= day < end:
                    continue
                bucket = table.setdefault((day, rid), {})
                bucket[principal] = bucket.get(principal, 0) + value
        return table

    async def _post(self, form: Mapping[str, str]) -> Any:
        """POST the form through the client's retry loop (form-encoded body)."""
        return await self._client.request_json(
            "POST", self._url, endpoint="/api/v1/query_range", form=form,
            credentials=self._creds, anonymous=self._creds is None,
        )  # fmt: skip
