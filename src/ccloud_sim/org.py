"""The generated organization: inventory, usage, billing and ground truth.

An :class:`Organization` is a pure function of ``(seed, scale, anchor)``. The
inventory is built once; usage and billing lines are computed per date on demand and
kept in small LRU caches, so even ``xlarge`` stays light.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ccloud_sim import billing, truth
from ccloud_sim._generate import Inventory, generate
from ccloud_sim._lru import LRU
from ccloud_sim.billing import Line
from ccloud_sim.inventory import (
    ApiKey,
    Connector,
    FlinkPool,
    FlinkStatement,
    KafkaCluster,
    KsqlCluster,
    SchemaRegistry,
)
from ccloud_sim.names import Catalogue
from ccloud_sim.scales import Scale, get_scale
from ccloud_sim.topics import Topic, gauge_hours, retained_levels, split_exact, topic_day
from ccloud_sim.usage import MB, flink_day, hourly_split, kafka_day

__all__ = ["Organization"]


class Organization:
    """A deterministic fake Confluent Cloud organization.

    Args:
        seed: any integer; the same seed (and scale and anchor) gives the same org.
        scale: a preset name (``tiny`` … ``xlarge``) or a :class:`Scale`.
        anchor: the date the ~400-day history ends (default: today, UTC). Objects
            are created and deleted before it; billing exists for any date.
    """

    def __init__(self, seed: int = 0, scale: str | Scale = "tiny", anchor: date | None = None):
        self.seed = seed
        self.scale = get_scale(scale) if isinstance(scale, str) else scale
        self.anchor = anchor or datetime.now(UTC).date()
        self.inventory: Inventory = generate(seed, self.scale, self.anchor)
        inv = self.inventory
        self.org_id = inv.org_id
        self.clusters: dict[str, KafkaCluster] = {c.id: c for c in inv.clusters}
        self.connectors: dict[str, Connector] = {c.id: c for c in inv.connectors}
        self.ksql: dict[str, KsqlCluster] = {k.id: k for k in inv.ksql}
        self.schema_registries: dict[str, SchemaRegistry] = {s.id: s for s in inv.schema_registries}
        self.flink_pools: dict[str, FlinkPool] = {p.id: p for p in inv.flink_pools}
        self.api_keys: dict[str, ApiKey] = {k.id: k for k in inv.api_keys}
        self.statements_by_pool: dict[str, list[FlinkStatement]] = {}
        for st in inv.statements:
            self.statements_by_pool.setdefault(st.pool_id, []).append(st)
        self._kafka = LRU[tuple[str, date], dict[str, tuple[int, int]]](8192)
        # large enough for every cluster-day of a 90-day compound query of the large org
        self._topic_bytes = LRU[tuple[str, date], dict[str, tuple[int, int]]](32768)
        self._retained = LRU[tuple[str, date], dict[str, tuple[int, ...]]](4096)
        self._topic_index: dict[tuple[str, str], Topic] = {
            (cid, t.name): t for cid, topics in inv.topics.items() for t in topics
        }
        self._flink = LRU[tuple[str, date], dict[str, tuple[str, int]]](2048)
        self._lines = LRU[date, list[Line]](16)
        self._identities: frozenset[str] | None = None

    def __repr__(self) -> str:
        return f"Organization(seed={self.seed}, scale={self.scale.name!r}, anchor={self.anchor})"

    # -- usage -------------------------------------------------------------------------

    def kafka_usage(self, cluster_id: str, d: date) -> dict[str, tuple[int, int]]:
        """Bytes per principal on a cluster for a whole UTC day.

        Returns ``{principal_id: (request_bytes, response_bytes)}``; empty when the
        cluster did not exist or had a zero-usage day.
        """
        cluster = self.clusters.get(cluster_id)
        if cluster is None:
            return {}

        def make() -> dict[str, tuple[int, int]]:
            sources = self.inventory.usage_sources.get(cluster_id, ())
            return kafka_day(self.org_id, cluster, sources, d)

        return self._kafka.get_or_make((cluster_id, d), make)

    def kafka_hourly(self, cluster_id: str, d: date, principal: str, metric: int) -> list[int]:
        """24 hourly byte values (``metric`` 0 = request, 1 = response) summing to the day."""
        total = self.kafka_usage(cluster_id, d).get(principal, (0, 0))[metric]
        parts = hourly_split(total // MB, self.org_id, cluster_id, principal, str(metric))
        return [p * MB for p in parts]

    def flink_usage(self, pool_id: str, d: date) -> dict[str, tuple[str, int]]:
        """CFU-minutes per statement of a pool on *d*: ``{name: (principal, minutes)}``."""
        statements = self.statements_by_pool.get(pool_id, [])
        return self._flink.get_or_make(
            (pool_id, d), lambda: flink_day(self.org_id, pool_id, statements, d)
        )

    def flink_hourly(self, pool_id: str, d: date, statement: str) -> list[int]:
        """24 hourly CFU-minute values of one statement summing to the day."""
        total = self.flink_usage(pool_id, d).get(statement, ("", 0))[1]
        return hourly_split(total, self.org_id, pool_id, statement)

    # -- topics ------------------------------------------------------------------------

    @property
    def catalogue(self) -> Catalogue:
        """Teams and the real owner of every identity and resource (ground truth)."""
        return self.inventory.catalogue

    def topics(self, cluster_id: str) -> tuple[Topic, ...]:
        """Every topic ever created on a cluster, sorted by name."""
        return self.inventory.topics.get(cluster_id, ())

    def topic_bytes(self, cluster_id: str, d: date) -> dict[str, tuple[int, int]]:
        """``{topic: (received_bytes, sent_bytes)}`` on a cluster for a whole UTC day.

        Summed over topics these are exactly the principals' request and response bytes
        of :meth:`kafka_usage`; topics with no traffic either way are left out.
        """

        def make() -> dict[str, tuple[int, int]]:
            usage = self.kafka_usage(cluster_id, d)
            totals = (sum(v[0] for v in usage.values()), sum(v[1] for v in usage.values()))
            return topic_day(self.org_id, cluster_id, self.topics(cluster_id), d, totals)

        return self._topic_bytes.get_or_make((cluster_id, d), make)

    def partition_bytes(self, cluster_id: str, d: date, topic: str, metric: int) -> list[int]:
        """A topic's day of ``metric`` (0 received, 1 sent) split over its partitions."""
        total = self.topic_bytes(cluster_id, d).get(topic, (0, 0))[metric]
        return split_exact(total, self._topic_index[cluster_id, topic].partition_weights)

    def topic_hourly(
        self, cluster_id: str, d: date, topic: str, metric: int, partition: int | None = None
    ) -> list[int]:
        """24 hourly byte values of a topic (or one partition) summing to its day.

        A topic's hours are the sums of its partitions' hours.
        """
        parts = self.partition_bytes(cluster_id, d, topic, metric)
        key = (self.org_id, cluster_id, topic, str(metric))
        if partition is not None:
            return hourly_split(parts[partition], *key)
        hours = [0] * 24
        for value in parts:
            if value:
                hours = [a + b for a, b in zip(hours, hourly_split(value, *key), strict=True)]
        return hours

    def retained(self, cluster_id: str, d: date) -> dict[str, tuple[int, ...]]:
        """The day's mean ``retained_bytes`` per partition of each topic alive on *d*."""
        return self._retained.get_or_make(
            (cluster_id, d), lambda: retained_levels(self.org_id, self.topics(cluster_id), d)
        )

    def retained_hourly(
        self, cluster_id: str, d: date, topic: str, partition: int | None = None
    ) -> list[int]:
        """24 hourly ``retained_bytes`` values of a topic (or one partition); mean = level."""
        levels = self.retained(cluster_id, d).get(topic, ())
        return gauge_hours(levels if partition is None else levels[partition : partition + 1])

    # -- billing -----------------------------------------------------------------------

    def billing_lines(self, d: date, now: datetime | None = None) -> list[Line]:
        """Cost rows of *d*: final ones, or as visible at *now* (late data) if given."""
        final = self._lines.get_or_make(d, lambda: billing.settled_lines(self, d))
        if now is None:
            return final
        return billing.as_of(final, d, now, Decimal(self.inventory.discount_rate))

    def line(self, d: date, line_id: str) -> Line:
        """The final row *line_id* of date *d*.

        Raises:
            KeyError: if *d* has no such row.
        """
        for line in self.billing_lines(d):
            if line.id == line_id:
                return line
        raise KeyError(f"no billing line {line_id!r} on {d}")

    def identity_ids(self) -> frozenset[str]:
        """Ids of every service account, user and identity pool ever created."""
        if self._identities is None:
            inv = self.inventory
            ids = [x.id for x in inv.service_accounts] + [x.id for x in inv.users]
            self._identities = frozenset(ids + [x.id for x in inv.pools])
        return self._identities

    # -- ground truth ------------------------------------------------------------------

    def truth(self, d: date, line_id: str | None = None) -> Any:
        """What produced a final billing row (or, without *line_id*, every row of *d*).

        See :func:`ccloud_sim.truth.explain` for the shape.
        """
        if line_id is not None:
            return truth.explain(self, self.line(d, line_id))
        return [truth.explain(self, line) for line in self.billing_lines(d)]

    def truth_topics(self, cluster_id: str, d: date) -> dict[str, Any]:
        """Every topic of a cluster alive on *d* with the day's figures.

        See :func:`ccloud_sim.truth.topics_of`.

        Raises:
            KeyError: if the organization has no such cluster.
        """
        return truth.topics_of(self, cluster_id, d)
