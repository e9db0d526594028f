"""``POST /v2/metrics/cloud/query``: per-principal Kafka bytes and Flink CFU-minutes.

Supported: exactly one aggregation (``agg`` omitted or ``SUM``); ``filter`` made of
FieldFilter (EQ/GT/GTE), CompoundFilter (AND/OR) and UnaryFilter (NOT) that names at
least one resource (``resource.kafka.id`` for Kafka metrics,
``resource.compute_pool.id`` for Flink) or the answer is 403; ``group_by`` over the
metric's labels; granularity ``PT1H``, ``PT4H``, ``PT6H``, ``PT12H``, ``P1D`` or
``ALL``; ``intervals`` as ``start/end``, ``start/duration`` or ``duration/end``;
``limit`` (groups per page, ≤ 1000); ``format`` FLAT or GROUPED; ``?page_token=``
pagination that requires the identical body. Only hours that ended at least three
minutes before the sim clock's "now" have data.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ccloud_sim._http import TokenError, decode_token, encode_token, error, json_response, sim
from ccloud_sim.org import Organization

__all__ = ["FLINK_CFU_METRIC", "KAFKA_METRICS", "routes"]

KAFKA_METRICS = {
    "io.confluent.kafka.server/request_bytes": 0,
    "io.confluent.kafka.server/response_bytes": 1,
}
FLINK_CFU_METRIC = "io.confluent.flink/statement_utilization/cfu_minutes_consumed"
_KAFKA_LABELS = ("resource.kafka.id", "metric.principal_id")
_FLINK_LABELS = ("resource.compute_pool.id", "resource.flink_statement.name", "metric.principal_id")
_GRANULARITY = {"PT1H": 3600, "PT4H": 14400, "PT6H": 21600, "PT12H": 43200, "P1D": 86400, "ALL": 0}
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_LAG = timedelta(minutes=3)


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


def _matches(f: dict[str, Any], labels: dict[str, str]) -> bool:
    op = f["op"]
    if op == "AND":
        return all(_matches(s, labels) for s in f["filters"])
    if op == "OR":
        return any(_matches(s, labels) for s in f["filters"])
    if op == "NOT":
        return not _matches(f["filter"], labels)
    have, want = labels.get(f["field"]), str(f["value"])
    if have is None:
        return True  # a filter on a label the metric lacks does not restrict (lenient)
    return have == want if op == "EQ" else (have > want if op == "GT" else have >= want)


def _parse(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _BadQueryError("the request body must be a JSON object")
    aggs = body.get("aggregations")
    if not isinstance(aggs, list) or len(aggs) != 1 or not isinstance(aggs[0], dict):
        raise _BadQueryError("'aggregations' must hold exactly one aggregation")
    metric = aggs[0].get("metric")
    if metric not in KAFKA_METRICS and metric != FLINK_CFU_METRIC:
        raise _BadQueryError(f"unknown metric {metric!r}")
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
    labels = _FLINK_LABELS if metric == FLINK_CFU_METRIC else _KAFKA_LABELS
    if not isinstance(group_by, list) or any(g not in labels for g in group_by):
        raise _BadQueryError(f"group_by must be a list of labels from {list(labels)}")
    limit = body.get("limit", 1000 if gran == "ALL" else 100)
    if not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise _BadQueryError("limit must be an integer between 1 and 1000")
    fmt = body.get("format", "FLAT")
    if fmt not in ("FLAT", "GROUPED") or (fmt == "GROUPED" and not group_by):
        raise _BadQueryError("format must be FLAT, or GROUPED with a non-empty group_by")
    flt = body.get("filter")
    if flt is not None:
        _check_filter(flt)
    return {
        "metric": metric,
        "gran": gran,
        "spans": spans,
        "group_by": group_by,
        "limit": limit,
        "format": fmt,
        "filter": flt,
    }


def _series(org: Organization, q: dict[str, Any], ids: set[str], now: datetime) -> Any:
    """Yield ``(label values, day epoch, first hour, hours or None, daily total)`` for
    every matching series-day; label values are in the metric's label order."""
    available = now - _LAG
    for start, span_end in q["spans"]:
        end = min(span_end, available.replace(minute=0, second=0, microsecond=0))
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < end:
            first = max(0, -(-int((start - day).total_seconds()) // 3600))
            last = min(24, int((end - day).total_seconds()) // 3600)
            if first < last:
                yield from _day_series(org, q, ids, day, hours_range=(first, last))
            day += timedelta(days=1)


def _day_series(
    org: Organization,
    q: dict[str, Any],
    ids: set[str],
    day: datetime,
    *,
    hours_range: tuple[int, int],
) -> Any:
    first, last = hours_range
    d = day.date()
    epoch = int(day.timestamp())
    metric = q["metric"]
    flt = q["filter"]
    whole = first == 0 and last == 24 and q["gran"] in ("P1D", "ALL")
    if metric in KAFKA_METRICS:
        idx = KAFKA_METRICS[metric]
        for cid in sorted(ids):
            for p, values in org.kafka_usage(cid, d).items():
                if flt is None or _matches(flt, dict(zip(_KAFKA_LABELS, (cid, p), strict=True))):
                    hours = None if whole else org.kafka_hourly(cid, d, p, idx)[first:last]
                    yield (cid, p), epoch, first, hours, values[idx]
    else:
        for pid in sorted(ids):
            for name, (principal, minutes) in org.flink_usage(pid, d).items():
                labels = (pid, name, principal)
                if flt is None or _matches(flt, dict(zip(_FLINK_LABELS, labels, strict=True))):
                    hours = None if whole else org.flink_hourly(pid, d, name)[first:last]
                    yield labels, epoch, first, hours, minutes


def _group_key(labels: tuple[str, ...], group_by: list[str]) -> Any:
    """A function from a series' label values to its group key (a tuple)."""
    positions = [labels.index(g) for g in group_by]
    if not positions:
        return lambda values: ()
    if len(positions) == 1:
        (only,) = positions
        return lambda values: (values[only],)
    return itemgetter(*positions)


@lru_cache(maxsize=65536)
def _fmt(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@lru_cache(maxsize=65536)
def _quote(value: str) -> str:
    return json.dumps(value)


async def query(request: Request) -> Response:
    """Answer one Metrics API query (see module docstring)."""
    state = sim(request)
    raw = await request.body()
    try:
        q = _parse(json.loads(raw or b"null"))
    except (_BadQueryError, ValueError) as exc:
        return error(400, str(exc), style="metrics")
    field = "resource.compute_pool.id" if q["metric"] == FLINK_CFU_METRIC else "resource.kafka.id"
    wanted = _resources(q["filter"], field) if q["filter"] is not None else set()
    known = state.org.flink_pools if field == "resource.compute_pool.id" else state.org.clusters
    ids = {i for i in wanted if i in known}
    if q["filter"] is not None and _only_resources(q["filter"], field):
        q["filter"] = None
    if not ids:
        detail = "Query must filter by at least one of your authorized resources"
        return error(403, detail, style="metrics")
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
    gsize, group_by = _GRANULARITY[q["gran"]], q["group_by"]
    groups: dict[tuple[str, ...], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    all_start = int(min(a for a, _ in q["spans"]).timestamp())
    key_of = _group_key(_KAFKA_LABELS if q["metric"] in KAFKA_METRICS else _FLINK_LABELS, group_by)
    for values, epoch, first, hours, total in _series(state.org, q, ids, state.clock.now()):
        points = groups[key_of(values)]
        if gsize == 0:
            points[all_start] += total
        elif hours is None:
            points[epoch] += total
        else:
            for i, v in enumerate(hours):
                if v:
                    ts = epoch + (first + i) * 3600
                    points[ts - ts % gsize] += v
    keys = sorted(k for k, pts in groups.items() if any(pts.values()))
    return json_response(_page_text(groups, keys, q, offset, body_hash))


def _page_text(
    groups: dict[tuple[str, ...], dict[int, int]],
    keys: list[tuple[str, ...]],
    q: dict[str, Any],
    offset: int,
    body_hash: str,
) -> str:
    """The JSON text of one page of groups (FLAT or GROUPED)."""
    group_by = q["group_by"]
    limit = q["limit"]
    parts: list[str] = []
    for key in keys[offset : offset + limit]:
        labels_text = "".join(f'"{g}":{_quote(v)},' for g, v in zip(group_by, key, strict=True))
        pts = sorted(groups[key].items(), reverse=True)  # timestamps are unique keys
        if q["format"] == "GROUPED":
            pts_text = ",".join([f'{{"timestamp":"{_fmt(t)}","value":{v}.0}}' for t, v in pts if v])
            parts.append(f'{{{labels_text}"points":[{pts_text}]}}')
        else:
            parts += [
                f'{{"timestamp":"{_fmt(t)}",{labels_text}"value":{v}.0}}' for t, v in pts if v
            ]
    pagination: dict[str, Any] = {"page_size": limit, "total_size": len(keys)}
    if offset + limit < len(keys) and group_by and q["gran"] != "ALL":
        pagination["next_page_token"] = encode_token({"o": offset + limit, "h": body_hash})
    meta = json.dumps({"pagination": pagination}, separators=(",", ":"))
    return '{"data":[' + ",".join(parts) + '],"meta":' + meta + "}"


routes = [Route("/v2/metrics/cloud/query", query, methods=["POST"])]
