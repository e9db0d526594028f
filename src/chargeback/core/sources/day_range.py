"""Daily values from Prometheus over exact UTC days (``query_range``, one step per day).

A query is evaluated at ``T = midnight(D + 1) - 1 ms`` for every day ``D`` of the
range, so a range selector of :data:`DAY_WINDOW` (``[86399999ms]``, both ends
included) covers exactly ``[midnight(D), midnight(D + 1) - 1 ms]``: no window
straddles two days and every sample belongs to one day only. The evaluation's
timestamp is inside ``D``, so its UTC day is the day the value belongs to.

One request per query and range; a range longer than ``max_points`` days is sent in
consecutive chunks (Prometheus refuses more than 11,000 points per series).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from chargeback.core.models import SCRAPE_GAP
from chargeback.core.sources.http import Credentials, HttpClient, HttpSettings
from chargeback.core.sources.values import day_of, parse_decimal
from chargeback.errors import SourceError

__all__ = [
    "DAY_WINDOW",
    "MIN_PART",
    "PART_LABEL",
    "SCRAPE_GAP",
    "SUM_PART",
    "DayRangeQuery",
    "DayRangeServer",
    "DaySeries",
    "sum_and_smallest",
]

DAY_WINDOW = "86399999ms"
"""The range of one UTC day less its last millisecond (range selectors include both ends)."""

PART_LABEL = "chargeback_part"
"""The label telling the two parts of :func:`sum_and_smallest` apart."""
SUM_PART, MIN_PART = "sum", "min"

QUERY_RANGE = "/api/v1/query_range"
_DAY_S = 86400
_MAX_POINTS = 11_000


@dataclass(frozen=True, slots=True)
class DaySeries:
    """One series of a result: its labels and its value per UTC day (exact decimals)."""

    labels: dict[str, str]
    values: dict[dt.date, Decimal]


def sum_and_smallest(values: str, by: Sequence[str] = ()) -> str:
    """``values`` summed (per ``by`` labels) and, apart, the smallest of them, in ONE query.

    The sum's series carry ``chargeback_part="sum"``, the smallest's ``"min"``: a
    counter that went down in one series shows as a negative smallest value even where
    the other series' growth hides it in the sum.
    """
    group = f" by ({', '.join(by)})" if by else ""
    return (
        f'label_replace(sum{group} ({values}), "{PART_LABEL}", "{SUM_PART}", "", "")'
        f' or label_replace(min{group} ({values}), "{PART_LABEL}", "{MIN_PART}", "", "")'
    )


class DayRangeServer(BaseModel):
    """The settings of a Prometheus server queried per UTC day (a plugin's ``prometheus``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    username: str | None = None
    password: SecretStr | None = None
    max_points: int = Field(default=_MAX_POINTS, ge=1)
    """Days per ``query_range`` request at most; longer runs are chunked."""

    def connect(
        self, http: HttpSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> tuple[HttpClient, DayRangeQuery]:
        """The tenant's client for this server (its caller closes it) and the query on it."""
        client = HttpClient(
            Credentials(self.username or "", self.password or SecretStr("")),
            http,
            transport=transport,
            auth_hint="check the Prometheus username and password of this tenant",
        )
        query = DayRangeQuery(
            client, self.url, username=self.username, password=self.password,
            max_points=self.max_points,
        )  # fmt: skip
        return client, query


class DayRangeQuery:
    """Run PromQL per exact UTC day against one Prometheus server.

    Args:
        client: the tenant's retrying HTTP client.
        url: the server's base URL.
        username: basic-auth user (none: anonymous requests).
        password: basic-auth password.
        max_points: days per request at most (chunks beyond).
    """

    def __init__(
        self,
        client: HttpClient,
        url: str,
        *,
        username: str | None = None,
        password: SecretStr | None = None,
        max_points: int = _MAX_POINTS,
    ) -> None:
        if max_points < 1:
            raise ValueError(f"max_points must be at least 1, got {max_points}")
        self._client = client
        self._url = url.rstrip("/") + QUERY_RANGE
        self._max_points = max_points
        self._creds = Credentials(username, password or SecretStr("")) if username else None

    async def days(self, promql: str, start: dt.date, end: dt.date) -> list[DaySeries]:
        """Return every series of ``promql`` with its value for each day ``start <= D < end``.

        Days without a value (no samples) are absent from ``values``.

        Raises:
            SourceError: the server failed or answered something other than a matrix.
        """
        merged: dict[tuple[tuple[str, str], ...], DaySeries] = {}
        first = start
        while first < end:
            last = min(end, first + dt.timedelta(days=self._max_points))
            for series in await self._chunk(promql, first, last):
                key = tuple(sorted(series.labels.items()))
                into = merged.setdefault(key, DaySeries(series.labels, {}))
                into.values.update(series.values)
            first = last
        return list(merged.values())

    async def _chunk(self, promql: str, start: dt.date, end: dt.date) -> list[DaySeries]:
        first = _midnight(start + dt.timedelta(days=1)) - 0.001
        last = _midnight(end) - 0.001
        form = {
            "query": promql,
            "start": f"{first:.3f}",
            "end": f"{last:.3f}",
            "step": str(_DAY_S),
        }
        body = await self._client.request_json(
            "POST", self._url, endpoint=QUERY_RANGE, form=form,
            credentials=self._creds, anonymous=self._creds is None,
        )  # fmt: skip
        if not isinstance(body, dict) or body.get("status") != "success":
            raise SourceError(f"POST {self._url} did not succeed: {str(body)[:200]}", url=self._url)
        data = body.get("data", {})
        if data.get("resultType") != "matrix":
            raise SourceError(f"POST {self._url}: expected a matrix for {promql!r}", url=self._url)
        return [_series(raw, start, end) for raw in data.get("result", [])]


def _series(raw: Any, start: dt.date, end: dt.date) -> DaySeries:
    labels = {str(k): str(v) for k, v in raw.get("metric", {}).items()}
    values: dict[dt.date, Decimal] = {}
    for ts, text in raw.get("values", []):
        day = day_of(float(ts))
        value = parse_decimal(text)
        if day is not None and value is not None and start <= day < end:
            values[day] = value
    return DaySeries(labels, values)


def _midnight(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()
