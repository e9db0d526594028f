"""``POST /v2/metrics/cloud/query``: Kafka bytes per principal and per topic, Flink CFU.

Supported: exactly one aggregation (``agg`` omitted or ``SUM``) of a metric in
:data:`ccloud_sim.metrics_series.METRICS`; ``filter`` made of FieldFilter
(EQ/GT/GTE), CompoundFilter (AND/OR) and UnaryFilter (NOT) that names at least one
resource (``resource.kafka.id`` for Kafka metrics, ``resource.compute_pool.id`` for
Flink), every one of them the organization's, or the answer is 403; ``group_by``
over the metric's labels; granularity ``PT1H``, ``PT4H``, ``PT6H``, ``PT12H``,
``P1D`` or ``ALL``; ``intervals`` as ``start/end``, ``start/duration`` or
``duration/end``; ``limit`` (groups per page, ≤ 1000); ``format`` FLAT or GROUPED;
``?page_token=`` pagination that requires the identical body.

Only hours that ended at least three minutes before the sim clock's "now" have
data, and only hours that end after ``now - metrics_retention_days`` (default 7
days; ``None`` keeps everything): older points are simply absent from a 200 answer,
like expired data in a time-series store.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ccloud_sim._http import (
    SimState,
    TokenError,
    decode_token,
    encode_token,
    error,
    json_response,
    sim,
)
from ccloud_sim.metrics_series import (
    FLINK_CFU_METRIC,
    KAFKA_METRICS,
    METRICS,
    DayQuery,
    Groups,
    Metric,
    collect,
    day_series,
    group_key,
    series_labels,
)

__all__ = ["FLINK_CFU_METRIC", "KAFKA_METRICS", "routes"]

_GRANULARITY = {"PT1H": 3600, "PT4H": 14400, "PT6H": 21600, "PT12H": 43200, "P1D": 86400, "ALL": 0}
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_LAG = timedelta(minutes=3)
_HOUR = timedelta(hours=1)
_FORBIDDEN = "Query must filter by at least one of your authorized resources"


class _BadQueryError(ValueError):
    """The query body is invalid (answered with 400)."""


def _ts(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _duration(text: str) -> timedelta:
    m = _DURATION.match(text)
    if not m or text in ("P", "PT"):
        raise _BadQueryError(f"invalid ISO-8601 duration {text!r}")
    d, h, mi, s = (int(x) if x else 0 for x in m.groups())
    return timedelta(days=d, hours=h, minutes=mi, seconds=s)


def _interval(text: str) -> tuple[datetime, datetime]:
    try:
        a, b = text.split("/")
        if a.startswith("P"):
            end = _ts(b)
            return end - _duration(a), end
        start = _ts(a)
        return start, (start + _duration(b)) if b.startswith("P") else _ts(b)
    except ValueError as exc:
        raise _BadQueryError(
            f"invalid interval {text!r}: expected start/end, start/duration "
            "or duration/end in ISO-8601 (relative 'now' is not supported)"
        ) from exc


def _check_filter(f: Any) -> None:
    if not isinstance(f, dict):
        raise _BadQueryError("filter must be an object")
    op = f.get("op")
    if op in ("AND", "OR"):
        subs = f.get("filters")
        if not isinstance(subs, list) or not subs:
            raise _BadQueryError(f"{op} filter needs a non-empty 'filters' list")
        for sub in subs:
            _check_filter(sub)
    elif op == "NOT":
        _check_filter(f.get("filter"))
    elif op in ("EQ", "GT", "GTE"):
        if not isinstance(f.get("field"), str) or "value" not in f:
            raise _BadQueryError("field filter needs 'field' and 'value'")
    else:
        raise _BadQueryError(f"unknown filter op {op!r}")


def _resources(f: dict[str, Any], field: str, negated: bool = False) -> set[str]:
    op = f["op"]
    if op in ("AND", "OR"):
        return set().union(*(_resources(s, field, negated) for s in f["filters"]))
    if op == "NOT":
        return _resources(f["filter"], field, not negated)
    return {str(f["value"])} if f["field"] == field and op == "EQ" and not negated else set()


def _only_resources(f: dict[str, Any], field: str) -> bool:
    """True if *f* is EQ on *field* or an OR of such (fully captured by the id set)."""
    if f["op"] == "OR":
        return all(_only_resources(s, field) for s in f["filters"])
    return f["op"] == "EQ" and f.get("field") == field


@dataclass(slots=True)
class _Query:
    """A validated query body."""

    metric: Metric
    gran: str
    spans: list[tuple[datetime, datetime]]
    group_by: list[str]
    limit: int
    format: str
    filter: dict[str, Any] | None


def _parse(body: Any) -> _Query:
    if not isinstance(body, dict):
        raise _BadQueryError("the request body must be a JSON object")
    aggs = body.get("aggregations")
    if not isinstance(aggs, list) or len(aggs) != 1 or not isinstance(aggs[0], dict):
        raise _BadQueryError("'aggregations' must hold exactly one aggregation")
    metric = METRICS.get(aggs[0].get("metric"))  # type: ignore[arg-type]
    if metric is None:
        raise _BadQueryError(f"unknown metric {aggs[0].get('metric')!r}; known: {sorted(METRICS)}")
    if aggs[0].get("agg", "SUM") != "SUM":
        raise _BadQueryError("the simulator supports only agg SUM (or omitting agg)")
    gran = body.get("granularity")
    if gran not in _GRANULARITY:
        raise _BadQueryError(
            f"granularity {gran!r} is not supported; use one of {sorted(_GRANULARITY)}"
        )
    intervals = body.get("intervals")
    if not isinstance(intervals, list) or not intervals:
        raise _BadQueryError("'intervals' must be a non-empty list")
    spans = [_interval(str(i)) for i in intervals]
    if any(b <= a for a, b in spans):
        raise _BadQueryError("every interval must end after it starts")
    group_by = body.get("group_by", [])
    if not isinstance(group_by, list) or any(g not in metric.labels for g in group_by):
        raise _BadQueryError(f"group_by must be a list of labels from {list(metric.labels)}")
    limit = body.get("limit", 1000 if gran == "ALL" else 100)
    if not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise _BadQueryError("limit must be an integer between 1 and 1000")
    fmt = body.get("format", "FLAT")
    if fmt not in ("FLAT", "GROUPED") or (fmt == "GROUPED" and not group_by):
        raise _BadQueryError("format must be FLAT, or GROUPED with a non-empty group_by")
    flt = body.get("filter")
    if flt is not None:
        _check_filter(flt)
    return _Query(metric, gran, spans, group_by, limit, fmt, flt)


def _window(state: SimState) -> tuple[datetime, datetime | None]:
    """(end of the last available hour, start of the first retained hour or None)."""
    now = state.clock.now()
    available = (now - _LAG).replace(minute=0, second=0, microsecond=0)
    days = state.metrics_retention_days
    if days is None:
        return available, None
    return available, (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)


def _series(state: SimState, q: _Query, ids: list[str], labels: tuple[str, ...]) -> Any:
    """Every matching series-day of the query's intervals inside the data window."""
    available, retained_from = _window(state)
    gran = q.gran
    for span_start, span_end in q.spans:
        start = span_start if retained_from is None else max(span_start, retained_from)
        end = min(span_end, available)
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < end:
            first = max(0, -(-int((start - day).total_seconds()) // 3600))
            last = min(24, int((end - day).total_seconds()) // 3600)
            if first < last:
                whole = first == 0 and last == 24 and gran in ("P1D", "ALL")
                dq = DayQuery(q.metric.name, labels, ids, q.filter, first, last, whole)
                yield from day_series(state.org, dq, day.date(), int(day.timestamp()))
            day += timedelta(days=1)


@lru_cache(maxsize=65536)
def _fmt(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@lru_cache(maxsize=65536)
def _quote(value: str) -> str:
    return json.dumps(value)


def _authorized_ids(state: SimState, q: _Query) -> list[str] | None:
    """The filtered resources, sorted; None unless there is one and all are the org's."""
    field = q.metric.resource_field
    if q.filter is None:
        return None
    wanted = _resources(q.filter, field)
    known = state.org.flink_pools if field == "resource.compute_pool.id" else state.org.clusters
    if not wanted or any(i not in known for i in wanted):
        return None
    if _only_resources(q.filter, field):
        q.filter = None  # the id set says everything the filter says
    return sorted(wanted)


async def query(request: Request) -> Response:
    """Answer one Metrics API query (see module docstring)."""
    state = sim(request)
    raw = await request.body()
    try:
        q = _parse(json.loads(raw or b"null"))
    except (_BadQueryError, ValueError) as exc:
        return error(400, str(exc), style="metrics")
    ids = _authorized_ids(state, q)
    if ids is None:
        return error(403, _FORBIDDEN, style="metrics")
    body_hash = hashlib.blake2b(raw, digest_size=8).hexdigest()
    offset = 0
    token = request.query_params.get("page_token")
    if token:
        try:
            data = decode_token(token)
            offset = int(data["o"])
            if data["h"] != body_hash:
                return error(
                    400, "page_token was issued for a different query body", style="metrics"
                )
        except (TokenError, KeyError, TypeError, ValueError):
            return error(400, "Invalid page token", style="metrics")
    return json_response(_page(state, q, ids, offset, body_hash))


def _page(state: SimState, q: _Query, ids: list[str], offset: int, body_hash: str) -> str:
    """The text of the page at *offset*; a multi-page answer is rendered once, then served
    page by page from ``state.metrics_pages`` until its last page has gone out."""
    available, retained_from = _window(state)
    cache_key = (
        body_hash,
        int(available.timestamp()),
        0 if retained_from is None else int(retained_from.timestamp()),
    )
    page_no = offset // q.limit
    pages: list[str] = state.metrics_pages.get_or_make(cache_key, list)
    if not pages:
        pages.extend(_render(state, q, ids, body_hash))
    if page_no + 1 >= len(pages):
        state.metrics_pages.discard(cache_key)
    return pages[min(page_no, len(pages) - 1)]


def _render(state: SimState, q: _Query, ids: list[str], body_hash: str) -> list[str]:
    """Every page of the answer."""
    metric, group_by = q.metric, q.group_by
    labels = series_labels(metric, group_by, q.filter)
    groups = collect(
        _series(state, q, ids, labels),
        group_key(labels, group_by),
        bucket_seconds=_GRANULARITY[q.gran],
        all_start=int(min(a for a, _ in q.spans).timestamp()),
        gauge=metric.gauge,
    )
    keys = sorted(k for k, pts in groups.items() if any(pts.values()))
    limit = q.limit
    pageable = bool(group_by) and q.gran != "ALL"
    offsets = range(0, len(keys), limit) if pageable and keys else [0]
    token = body_hash if pageable else None
    return [_page_text(groups, keys, q, o, token) for o in offsets]


def _page_text(
    groups: Groups, keys: list[tuple[str, ...]], q: _Query, offset: int, token: str | None
) -> str:
    """The JSON text of one page of groups (FLAT or GROUPED); *token* (the body hash)
    is None when the answer cannot be paged."""
    group_by = q.group_by
    limit = q.limit
    grouped = q.format == "GROUPED"
    parts: list[str] = []
    for key in keys[offset : offset + limit]:
        labels_text = "".join(f'"{g}":{_quote(v)},' for g, v in zip(group_by, key, strict=True))
        # timestamps are unique keys; a rendered group is dropped (peak memory)
        pts = sorted(groups.pop(key).items(), reverse=True)
        if q.metric.gauge:  # a mean: any float
            parts += _gauge_rows(pts, labels_text, grouped=grouped)
        elif grouped:  # counters are ints, written "<int>.0"
            pts_text = ",".join([f'{{"timestamp":"{_fmt(t)}","value":{v}.0}}' for t, v in pts if v])
            parts.append(f'{{{labels_text}"points":[{pts_text}]}}')
        else:
            parts += [
                f'{{"timestamp":"{_fmt(t)}",{labels_text}"value":{v}.0}}' for t, v in pts if v
            ]
    pagination: dict[str, Any] = {"page_size": limit, "total_size": len(keys)}
    if offset + limit < len(keys) and token is not None:
        pagination["next_page_token"] = encode_token({"o": offset + limit, "h": token})
    meta = json.dumps({"pagination": pagination}, separators=(",", ":"))
    return '{"data":[' + ",".join(parts) + '],"meta":' + meta + "}"


def _gauge_rows(
    pts: list[tuple[int, int | float]], labels_text: str, *, grouped: bool
) -> list[str]:
    """The rows (FLAT) or the one group (GROUPED) of a gauge's points."""
    texts = [(t, f"{v}.0" if isinstance(v, int) else repr(v)) for t, v in pts if v]
    if grouped:
        pts_text = ",".join([f'{{"timestamp":"{_fmt(t)}","value":{v}}}' for t, v in texts])
        return [f'{{{labels_text}"points":[{pts_text}]}}']
    return [f'{{"timestamp":"{_fmt(t)}",{labels_text}"value":{v}}}' for t, v in texts]


routes = [Route("/v2/metrics/cloud/query", query, methods=["POST"])]
