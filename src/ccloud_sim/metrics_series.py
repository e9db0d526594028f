"""The metrics the simulated Metrics API serves, and their series day by day.

A *series* is one label combination of one metric (e.g. a cluster and a principal).
For every day a query touches, :func:`day_series` yields
``(label values, day epoch, first hour, hours or None, day value)``: ``hours`` are
the hourly values from ``first hour`` on (``None`` when the query takes whole days
and the day value is enough). Counters are summed over time; gauges
(``retained_bytes``) are averaged, see :func:`collect`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from operator import itemgetter
from typing import Any, NamedTuple

from ccloud_sim.org import Organization

__all__ = [
    "FLINK_CFU_METRIC",
    "KAFKA_METRICS",
    "METRICS",
    "RETAINED_METRIC",
    "TOPIC_METRICS",
    "DayQuery",
    "Groups",
    "Metric",
    "collect",
    "day_series",
    "group_key",
    "matches",
    "series_labels",
]

Series = tuple[tuple[str, ...], int, int, Sequence[int] | None, int]
"""``(label values, day epoch, first hour, hours or None, day value)``."""

KAFKA_METRICS = {
    "io.confluent.kafka.server/request_bytes": 0,
    "io.confluent.kafka.server/response_bytes": 1,
}
TOPIC_METRICS = {
    "io.confluent.kafka.server/received_bytes": 0,
    "io.confluent.kafka.server/sent_bytes": 1,
}
RETAINED_METRIC = "io.confluent.kafka.server/retained_bytes"
FLINK_CFU_METRIC = "io.confluent.flink/statement_utilization/cfu_minutes_consumed"

_KAFKA = "resource.kafka.id"
_PARTITION = "metric.partition"
_TOPIC_LABELS = (_KAFKA, "metric.topic", _PARTITION)


class Metric(NamedTuple):
    """A served metric: the resource label that authorizes it, its labels, its kind."""

    name: str
    resource_field: str
    labels: tuple[str, ...]
    gauge: bool = False


METRICS = {
    **{m: Metric(m, _KAFKA, (_KAFKA, "metric.principal_id")) for m in KAFKA_METRICS},
    **{m: Metric(m, _KAFKA, _TOPIC_LABELS) for m in TOPIC_METRICS},
    RETAINED_METRIC: Metric(RETAINED_METRIC, _KAFKA, _TOPIC_LABELS, gauge=True),
    FLINK_CFU_METRIC: Metric(
        FLINK_CFU_METRIC,
        "resource.compute_pool.id",
        ("resource.compute_pool.id", "resource.flink_statement.name", "metric.principal_id"),
    ),
}


def series_labels(
    metric: Metric, group_by: Sequence[str], flt: dict[str, Any] | None
) -> tuple[str, ...]:
    """The labels of the series a query needs: topic metrics drop ``metric.partition``
    unless the query groups or filters by it (a topic's figure is its partitions' sum)."""
    if metric.labels != _TOPIC_LABELS or _PARTITION in group_by or _mentions(flt, _PARTITION):
        return metric.labels
    return metric.labels[:2]


def _mentions(f: dict[str, Any] | None, field: str) -> bool:
    if f is None:
        return False
    if f["op"] in ("AND", "OR"):
        return any(_mentions(s, field) for s in f["filters"])
    if f["op"] == "NOT":
        return _mentions(f["filter"], field)
    return bool(f.get("field") == field)


def matches(f: dict[str, Any], labels: dict[str, str]) -> bool:
    """True if a series with *labels* passes filter *f*."""
    op = f["op"]
    if op == "AND":
        return all(matches(s, labels) for s in f["filters"])
    if op == "OR":
        return any(matches(s, labels) for s in f["filters"])
    if op == "NOT":
        return not matches(f["filter"], labels)
    have, want = labels.get(f["field"]), str(f["value"])
    if have is None:
        return True  # a filter on a label the metric lacks does not restrict (lenient)
    return have == want if op == "EQ" else (have > want if op == "GT" else have >= want)


class DayQuery(NamedTuple):
    """What :func:`day_series` needs to know about the query for one day."""

    metric: str
    labels: tuple[str, ...]
    ids: Sequence[str]
    flt: dict[str, Any] | None
    first: int
    last: int
    whole: bool


def day_series(org: Organization, q: DayQuery, d: date, epoch: int) -> Iterator[Series]:
    """Every matching series of one day (see the module docstring)."""
    if q.metric in KAFKA_METRICS:
        return _principal_series(org, q, d, epoch)
    if q.metric in TOPIC_METRICS:
        return _topic_series(org, q, d, epoch)
    if q.metric == RETAINED_METRIC:
        return _retained_series(org, q, d, epoch)
    return _flink_series(org, q, d, epoch)


def _principal_series(org: Organization, q: DayQuery, d: date, epoch: int) -> Iterator[Series]:
    idx = KAFKA_METRICS[q.metric]
    first, last, flt, labels, whole = q.first, q.last, q.flt, q.labels, q.whole
    for cid in q.ids:
        for p, values in org.kafka_usage(cid, d).items():
            if flt is None or matches(flt, dict(zip(labels, (cid, p), strict=True))):
                hours = None if whole else org.kafka_hourly(cid, d, p, idx)[first:last]
                yield (cid, p), epoch, first, hours, values[idx]


def _topic_series(org: Organization, q: DayQuery, d: date, epoch: int) -> Iterator[Series]:
    idx = TOPIC_METRICS[q.metric]
    first, last, flt = q.first, q.last, q.flt
    by_partition = len(q.labels) == 3
    for cid in q.ids:
        for topic, values in org.topic_bytes(cid, d).items():
            if not values[idx]:
                continue
            if not by_partition:
                if flt is None or matches(flt, dict(zip(q.labels, (cid, topic), strict=True))):
                    hours = None if q.whole else org.topic_hourly(cid, d, topic, idx)[first:last]
                    yield (cid, topic), epoch, first, hours, values[idx]
                continue
            for p, value in enumerate(org.partition_bytes(cid, d, topic, idx)):
                labels = (cid, topic, str(p))
                if value and (
                    flt is None or matches(flt, dict(zip(q.labels, labels, strict=True)))
                ):
                    hours = None if q.whole else org.topic_hourly(cid, d, topic, idx, p)[first:last]
                    yield labels, epoch, first, hours, value


def _retained_series(org: Organization, q: DayQuery, d: date, epoch: int) -> Iterator[Series]:
    first, last, flt = q.first, q.last, q.flt
    by_partition = len(q.labels) == 3
    for cid in q.ids:
        for topic, levels in org.retained(cid, d).items():
            if not by_partition:
                if flt is None or matches(flt, dict(zip(q.labels, (cid, topic), strict=True))):
                    hours = None if q.whole else org.retained_hourly(cid, d, topic)[first:last]
                    yield (cid, topic), epoch, first, hours, sum(levels)
                continue
            for p, level in enumerate(levels):
                labels = (cid, topic, str(p))
                if flt is None or matches(flt, dict(zip(q.labels, labels, strict=True))):
                    hours = None if q.whole else org.retained_hourly(cid, d, topic, p)[first:last]
                    yield labels, epoch, first, hours, level


def _flink_series(org: Organization, q: DayQuery, d: date, epoch: int) -> Iterator[Series]:
    first, last, flt = q.first, q.last, q.flt
    for pid in q.ids:
        for name, (principal, minutes) in org.flink_usage(pid, d).items():
            labels = (pid, name, principal)
            if flt is None or matches(flt, dict(zip(q.labels, labels, strict=True))):
                hours = None if q.whole else org.flink_hourly(pid, d, name)[first:last]
                yield labels, epoch, first, hours, minutes


def group_key(labels: tuple[str, ...], group_by: Sequence[str]) -> Callable[[tuple[str, ...]], Any]:
    """A function from a series' label values to its group key (a tuple)."""
    positions = [labels.index(g) for g in group_by]
    if not positions:
        return lambda values: ()
    if len(positions) == 1:
        (only,) = positions
        return lambda values: (values[only],)
    return itemgetter(*positions)


Groups = dict[tuple[str, ...], dict[int, int | float]]


def collect(
    series: Iterator[Series],
    key_of: Callable[[tuple[str, ...]], Any],
    *,
    bucket_seconds: int,
    all_start: int,
    gauge: bool,
) -> Groups:
    """Aggregate series into ``{group key: {bucket epoch: value}}``.

    Counters: the sum over the group's series and the bucket's hours. Gauges: each
    series is averaged over the hours of the bucket it has values for, and the
    group's value is the sum of those averages. ``bucket_seconds`` 0 means one
    bucket (granularity ``ALL``) stamped ``all_start``.
    """
    if gauge:
        return _collect_gauge(series, key_of, bucket_seconds, all_start)
    groups: Groups = defaultdict(lambda: defaultdict(int))
    for values, epoch, first, hours, total in series:
        points = groups[key_of(values)]
        if bucket_seconds == 0:
            points[all_start] += total
        elif hours is None:
            points[epoch] += total
        else:
            for i, v in enumerate(hours):
                if v:
                    ts = epoch + (first + i) * 3600
                    points[ts - ts % bucket_seconds] += v
    return groups


def _collect_gauge(
    series: Iterator[Series], key_of: Callable[[tuple[str, ...]], Any], size: int, all_start: int
) -> Groups:
    """Gauges: buckets of at most a day never cross midnight, so a series' mean over a
    bucket comes from one day's slice; only ``ALL`` gathers means across days."""
    groups: Groups = defaultdict(lambda: defaultdict(int))
    spans: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])  # ALL: sum, hours
    for values, epoch, first, hours, level in series:
        if size == 0:
            acc = spans[values]
            acc[0] += level * 24 if hours is None else sum(hours)
            acc[1] += 24 if hours is None else len(hours)
            continue
        points = groups[key_of(values)]
        if hours is None:
            points[epoch] += level  # a whole day's mean is its level
            continue
        buckets: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for i, v in enumerate(hours):
            ts = epoch + (first + i) * 3600
            acc = buckets[ts - ts % size]
            acc[0] += v
            acc[1] += 1
        for bucket, (total, count) in buckets.items():
            points[bucket] += _mean(total, count)
    for values, (total, count) in spans.items():
        groups[key_of(values)][all_start] += _mean(total, count)
    return groups


def _mean(total: int, count: int) -> int | float:
    return total // count if total % count == 0 else total / count
