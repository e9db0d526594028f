"""Usage from a Prometheus server (``/api/v1/query_range``, one step per day).

For one :class:`~chargeback.core.models.MetricQuery` and a set of resources, ONE
request asks ``sum by (<resource label>, <principal label>) (<function>(<metric>{<resource
label>=~"id1|id2"}[1d]))`` over the whole date range. The evaluation at ``T`` covers
``[T - 1d, T)``, so the query runs from ``start + 1d`` to ``end`` and the value at ``T``
belongs to the day ``T - 1d``. ``sum_over_time`` (the default) suits per-interval delta
gauges; ``increase`` cumulative counters.

The query's names are the ecosystem's; a plugin passes how they translate to the
series names its exporter writes (``metric_name``, ``label_name``), and which
metrics carry fractional values that need a ``scale`` before they become integers
(see :func:`~chargeback.core.sources.values.usage_value`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from chargeback.core.models import MetricQuery, UsageTable
from chargeback.core.sources.http import Credentials, HttpClient
from chargeback.core.sources.values import day_of, usage_value
from chargeback.errors import SourceError

__all__ = ["PrometheusSettings", "PrometheusSource", "promql_regex_literal"]

QUERY_RANGE = "/api/v1/query_range"
_DAY_S = 86400


class PrometheusSettings(BaseModel):
    """A Prometheus server that holds the ecosystem's usage series."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    username: str | None = None
    password: SecretStr | None = None
    function: Literal["sum_over_time", "increase"] = "sum_over_time"
    """``sum_over_time`` for per-interval delta gauges (the default); ``increase`` for a
    setup that exposes cumulative counters."""


_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def promql_regex_literal(value: str) -> str:
    """``value`` as a literal of a regex matcher inside a PromQL double-quoted string.

    Not :func:`re.escape`: it escapes ``-`` (``lkc\\-abc``), an escape PromQL's
    string parser refuses (HTTP 400), so every Confluent id would break the query.
    """
    regex = _RE2_SPECIAL.sub(r"\\\1", value)
    return regex.replace("\\", "\\\\").replace('"', '\\"')


def _same(name: str) -> str:
    return name


class PrometheusSource:
    """A :class:`~chargeback.core.plugin.protocols.MetricsSource` reading Prometheus.

    Args:
        client: the tenant's HTTP client (retries, limits, telemetry).
        settings: the Prometheus URL, optional basic auth and the range function.
        metric_name: the series name of a query's metric (default: unchanged).
        label_name: the label name of a query's resource or principal label.
        scale: multipliers per metric applied before values become integers.
    """

    def __init__(
        self,
        client: HttpClient,
        settings: PrometheusSettings,
        *,
        metric_name: Callable[[str], str] = _same,
        label_name: Callable[[str], str] = _same,
        scale: Mapping[str, int] | None = None,
    ) -> None:
        self._client = client
        self._url = settings.url.rstrip("/") + QUERY_RANGE
        self._function = settings.function
        self._metric_name = metric_name
        self._label_name = label_name
        self._scale = scale or {}
        self._creds = (
            Credentials(settings.username, settings.password or SecretStr(""))
            if settings.username
            else None
        )

    def promql(self, query: MetricQuery, resource_ids: Sequence[str]) -> str:
        """Return the PromQL of ``query`` for ``resource_ids``."""
        res_label = self._label_name(query.resource_label)
        group = self._label_name(query.group_by)
        ids = "|".join(promql_regex_literal(r) for r in sorted(set(resource_ids)))
        selector = f'{self._metric_name(query.metric)}{{{res_label}=~"{ids}"}}'
        return f"sum by ({res_label}, {group}) ({self._function}({selector}[1d]))"

    async def fetch(
        self, query: MetricQuery, resource_ids: Sequence[str], start: dt.date, end: dt.date
    ) -> UsageTable:
        """Return ``(day, resource) -> {principal: value}`` for ``start <= day < end``."""
        if start >= end or not resource_ids:
            return {}
        first = dt.datetime.combine(start + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        last = dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC)
        form = {
            "query": self.promql(query, resource_ids),
            "start": str(int(first.timestamp())),
            "end": str(int(last.timestamp())),
            "step": str(_DAY_S),
        }
        body = await self._post(form)
        if not isinstance(body, dict) or body.get("status") != "success":
            raise SourceError(f"POST {self._url} did not succeed: {str(body)[:200]}", url=self._url)
        return self._table(query, body.get("data", {}).get("result", []), start, end)

    def _table(
        self, query: MetricQuery, result: Sequence[Any], start: dt.date, end: dt.date
    ) -> UsageTable:
        """Fold the series of a ``matrix`` result into a usage table."""
        table: UsageTable = {}
        res_label = self._label_name(query.resource_label)
        group = self._label_name(query.group_by)
        scale = self._scale.get(query.metric, 1)
        for series in result:
            labels = series.get("metric", {})
            rid, principal = labels.get(res_label), labels.get(group)
            if not isinstance(rid, str) or not isinstance(principal, str):
                continue
            for ts, raw in series.get("values", []):
                day = day_of(float(ts) - _DAY_S)
                value = usage_value(raw, scale)
                if day is None or value is None or not start <= day < end:
                    continue
                bucket = table.setdefault((day, rid), {})
                bucket[principal] = bucket.get(principal, 0) + value
        return table

    async def _post(self, form: Mapping[str, str]) -> Any:
        """POST the form through the client's retry loop (form-encoded body)."""
        return await self._client.request_json(
            "POST", self._url, endpoint=QUERY_RANGE, form=form,
            credentials=self._creds, anonymous=self._creds is None,
        )  # fmt: skip
