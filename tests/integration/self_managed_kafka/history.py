"""Generated broker history for several synthetic clusters, with its ground truth.

Thirty UTC days (plus the day before, the counters' baseline) sampled every six hours
(00:00, 06:00, 12:00, 18:00). Each principal's bytes of a day are known; the counters
grow by a quarter of them at each of the day's samples, so the last sample of a day
minus the last of the day before is exactly that day's bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from tests.support.prometheus import MetricHistory, Point

FIRST = dt.date(2026, 2, 1)
DAYS = [FIRST + dt.timedelta(days=i) for i in range(30)]
BASELINE = FIRST - dt.timedelta(days=1)
HOURS = (0, 6, 12, 18)
PRINCIPALS = ("User:alice", "User:bob", "User:carol")
GAP_CLUSTER, GAP_DAY = "west-1", dt.date(2026, 2, 20)
"""No sample at all of this cluster on this day (its scrapes failed)."""
RESET_CLUSTER, RESET_PRINCIPAL, RESET_DAY = "east-2", "User:bob", FIRST
"""This principal's bytes-out counter on this cluster restarts from 0 at noon (a broker
restart): the cluster's egress bytes of the day are unknown, though the other
principal's growth keeps the cluster's sum of deltas positive."""
BUSY_DAY = dt.date(2026, 2, 12)
"""east-1 grows from 3 to 4 brokers at noon: 3.5 on average, 84 broker-hours."""


@dataclass(frozen=True)
class Cluster:
    id: str
    region: str
    brokers: int
    partitions: int
    principals: tuple[str, ...]


CLUSTERS = (
    Cluster("east-1", "us-east", 3, 12, PRINCIPALS),
    Cluster("west-1", "us-west", 5, 30, PRINCIPALS[:2]),
    Cluster("east-2", "us-east", 2, 6, PRINCIPALS[1:]),
)


def day_bytes(cluster: int, principal: int, day: dt.date, direction: str) -> int:
    """The known bytes of one principal on one cluster and day (a multiple of 4)."""
    base = (cluster + 1) * (principal + 2) * 3_000_000_000 if direction == "in" else 0
    out = (principal + 1) * 1_700_000_000 * (3 - cluster) if direction == "out" else 0
    return 4 * ((base + out + day.toordinal() % 7 * 250_000_000 * (principal + 1)) // 4)


def brokers(cluster: Cluster, day: dt.date, hour: int) -> int:
    if cluster.id == "east-1" and day == BUSY_DAY and hour >= 12:
        return cluster.brokers + 1
    return cluster.brokers


def log_bytes(cluster: int, topic: int, day: dt.date) -> int:
    """Log size of one partition series, constant within a day."""
    return (cluster + 1) * (topic + 1) * 40 * 2**30 + (day - BASELINE).days * 3 * 2**28


def sampled(cluster: Cluster, day: dt.date) -> bool:
    return not (cluster.id == GAP_CLUSTER and day == GAP_DAY)


def _times(day: dt.date) -> list[tuple[int, dt.datetime]]:
    return [(h, dt.datetime.combine(day, dt.time(h), tzinfo=dt.UTC)) for h in HOURS]


_CONTROLLER = "kafka_controller_kafkacontroller_"


def history() -> list[MetricHistory]:
    """Every family of the clusters, ready for ``prometheus_history``."""
    points: dict[str, list[Point]] = {k: [] for k in ("in", "out", "log", "brokers", "parts")}
    for ci, cluster in enumerate(CLUSTERS):
        totals = {(p, d): 0 for p in cluster.principals for d in ("in", "out")}
        for day in [BASELINE, *DAYS]:
            for hour, at in _times(day):
                for pi, principal in enumerate(PRINCIPALS):
                    if principal not in cluster.principals:
                        continue
                    for direction in ("in", "out"):
                        if (cluster.id, principal, day, hour, direction) == (
                            RESET_CLUSTER,
                            RESET_PRINCIPAL,
                            RESET_DAY,
                            12,
                            "out",
                        ):
                            totals[principal, direction] = 0  # fmt: skip
                        totals[principal, direction] += day_bytes(ci, pi, day, direction) // 4
                        if sampled(cluster, day):
                            labels = {"cluster": cluster.id, "principal": principal}
                            points[direction].append(
                                Point(labels, at, totals[principal, direction])
                            )
                if not sampled(cluster, day):
                    continue
                points["brokers"].append(
                    Point({"cluster": cluster.id}, at, brokers(cluster, day, hour))
                )
                points["parts"].append(Point({"cluster": cluster.id}, at, cluster.partitions))
                for topic in range(2):
                    labels = {"cluster": cluster.id, "topic": f"t{topic}", "partition": "0"}
                    points["log"].append(Point(labels, at, log_bytes(ci, topic, day)))
    return kafka_histories(points)


def kafka_histories(points: Mapping[str, list[Point]]) -> list[MetricHistory]:
    """The series the plugin reads by default (the JMX exporter's names), from ``points``
    keyed ``in``, ``out`` (bytes counters), ``log`` (log size), ``brokers``, ``parts``."""
    return [
        MetricHistory("kafka_server_brokertopicmetrics_bytesin", "counter", "in", points["in"]),
        MetricHistory("kafka_server_brokertopicmetrics_bytesout", "counter", "out", points["out"]),
        MetricHistory("kafka_log_log_size", "gauge", "log", points["log"]),
        MetricHistory(_CONTROLLER + "activebrokercount", "gauge", "b", points["brokers"]),
        MetricHistory(_CONTROLLER + "globalpartitioncount", "gauge", "p", points["parts"]),
    ]  # fmt: skip


RATE_CARD = [
    {"valid_from": "2026-01-01", "rates": {
        "compute_per_broker_hour": "0.25", "storage_per_gib_hour": "0.0001",
        "partition_per_hour": "0.001", "ingress_per_gib": "0.01", "egress_per_gib": "0.02"}},
    {"valid_from": "2026-02-15", "rates": {"compute_per_broker_hour": "0.30"}},
    {"valid_from": "2026-01-01", "region": "us-west", "rates": {"egress_per_gib": "0.05"}},
    {"valid_from": "2026-02-10", "cluster": "east-2", "rates": {"storage_per_gib_hour": "0.0002"}},
]  # fmt: skip


def expected_rate(product_type: str, cluster: Cluster, day: dt.date) -> Decimal:
    """The rate card above, read by hand."""
    if product_type == "KAFKA_COMPUTE":
        return Decimal("0.30") if day >= dt.date(2026, 2, 15) else Decimal("0.25")
    if product_type == "KAFKA_STORAGE":
        late = cluster.id == "east-2" and day >= dt.date(2026, 2, 10)
        return Decimal("0.0002") if late else Decimal("0.0001")
    if product_type == "KAFKA_PARTITION":
        return Decimal("0.001")
    if product_type == "KAFKA_NETWORK_INGRESS":
        return Decimal("0.01")
    return Decimal("0.05") if cluster.region == "us-west" else Decimal("0.02")


def expected_quantity(product_type: str, ci: int, day: dt.date) -> Decimal:
    """The quantity of a line from the generator's own numbers."""
    cluster = CLUSTERS[ci]
    if product_type == "KAFKA_COMPUTE":
        return Decimal(sum(brokers(cluster, day, h) for h in HOURS)) / 4 * 24
    if product_type == "KAFKA_PARTITION":
        return Decimal(cluster.partitions * 24)
    if product_type == "KAFKA_STORAGE":
        return Decimal(sum(log_bytes(ci, t, day) for t in range(2)) * 24) / 2**30
    direction = "in" if product_type == "KAFKA_NETWORK_INGRESS" else "out"
    return Decimal(principal_bytes(ci, day, direction).total()) / 2**30


class Bytes(dict[str, int]):
    def total(self) -> int:
        return sum(self.values())


def principal_bytes(ci: int, day: dt.date, direction: str) -> Bytes:
    cluster = CLUSTERS[ci]
    return Bytes({
        p: day_bytes(ci, pi, day, direction)
        for pi, p in enumerate(PRINCIPALS) if p in cluster.principals
    })  # fmt: skip
