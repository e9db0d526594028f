"""Topics of the generated Kafka clusters and their per-topic metrics.

Every cluster has user topics (some created or deleted mid-history) and internal
topics (``__consumer_offsets`` always; ``_confluent-command`` on Dedicated clusters;
``_schemas`` on some; one ``_confluent-ksql-…_command_topic`` per ksqlDB cluster on
it). Per-topic figures are derived from the per-principal ground truth:

* ``received_bytes`` of a cluster-day, summed over its topics, is exactly the
  principals' ``request_bytes`` of that day; ``sent_bytes`` likewise is exactly
  ``response_bytes``. The split over topics is by each topic's weight times a daily
  jitter (rounded down, the few bytes left given to the first topics, so it is
  exact), and a topic's bytes are split over its partitions the same way.
* ``retained_bytes`` is a gauge per topic and partition: a daily level (a slow
  28-day wave around the topic's size, ramping up over a new topic's first week)
  plus an hourly saw-tooth that sums to zero over the day, so the day's mean is the
  level exactly.

Lifetimes are whole days for metrics: a topic alive at any moment of a day has
figures for the whole day (like principals in :mod:`ccloud_sim.usage`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from ccloud_sim._det import day_start, digest_hex, rng
from ccloud_sim.inventory import KafkaCluster, Lifetime
from ccloud_sim.usage import MB

if TYPE_CHECKING:
    from ccloud_sim._generate import Inventory

__all__ = [
    "INTERNAL_PREFIXES",
    "Topic",
    "add_topics",
    "gauge_hours",
    "retained_levels",
    "split_exact",
    "topic_day",
]

INTERNAL_PREFIXES = ("__", "_confluent", "_schemas")
"""Names starting with these are internal topics (``Topic.internal``)."""

_EVENTS = ("created", "updated", "events", "commands", "snapshots", "changelog", "dlq", "audit")
_PARTITIONS = (1, 3, 6, 6, 12)
_WAVE_DAYS = 28
_RAMP_DAYS = 7
_SAW = 1200  # a partition's hourly saw-tooth amplitude is level // _SAW per step


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic of a Kafka cluster.

    ``write_weight`` / ``read_weight`` are its relative shares of the cluster's
    produced / consumed bytes; ``retained_mb`` its typical retained size;
    ``partition_weights`` the relative shares of its partitions (one per partition).
    """

    name: str
    cluster_id: str
    team: str | None
    internal: bool
    write_weight: int
    read_weight: int
    retained_mb: int
    partition_weights: tuple[int, ...]
    life: Lifetime

    @property
    def partitions(self) -> int:
        """The number of partitions."""
        return len(self.partition_weights)


def split_exact(total: int, weights: Sequence[int]) -> list[int]:
    """Split *total* over *weights* in proportion, rounding down, then one more unit to
    each of the first parts until the parts sum to *total* exactly (bytes: the bias is
    under one byte a part)."""
    whole = sum(weights)
    parts = [total * w // whole for w in weights]
    for i in range(total - sum(parts)):  # fewer than len(weights)
        parts[i] += 1
    return parts


def _partition_weights(r: random.Random, n: int) -> tuple[int, ...]:
    weights = [r.randint(8, 12) for _ in range(n)]
    if n > 1 and r.random() < 0.2:
        weights[r.randrange(n)] *= 3  # a hot partition
    return tuple(weights)


def _user_life(r: random.Random, i: int, n: int, cluster: Lifetime, anchor: date) -> Lifetime:
    """Topic *i* of *n*: one always-alive topic, one created and one deleted recently."""
    end = day_start(anchor)
    if cluster.deleted_at is not None:
        end = min(end, cluster.deleted_at)
    span = end - cluster.created_at
    if i == 0 or span < timedelta(days=10):
        return cluster
    created, deleted = cluster.created_at, cluster.deleted_at
    if i == n - 2 or r.random() < 0.12:  # created mid-history
        back = r.randint(10, 40) if i == n - 2 else r.randint(3, max(3, span.days - 2))
        created = max(
            created, end - timedelta(days=min(back, span.days - 2), hours=r.randint(1, 20))
        )
    if i == n - 1 or r.random() < 0.08:  # deleted mid-history
        ahead = (end - created).days
        if ahead >= 4:
            back = r.randint(2, min(25, ahead - 2)) if i == n - 1 else r.randint(1, ahead - 2)
            deleted = end - timedelta(days=back, hours=r.randint(1, 20))
    return Lifetime(created, deleted)


def add_topics(inv: Inventory) -> None:
    """Give every cluster of *inv* its topics, and each connector a topic of its cluster
    (its config's ``topics``; one of its team's when there is one)."""
    ksql: dict[str, list[tuple[str, Lifetime]]] = {}
    for k in inv.ksql:
        ksql.setdefault(k.kafka_cluster_id, []).append((k.id, k.life))
    cat = inv.catalogue
    apps = {t.name: t.apps for t in cat.teams}
    for i, c in enumerate(inv.clusters):
        r = rng("topics", inv.org_id, c.id)
        user = _user_topics(r, c, inv.anchor, apps, cat.team_of(c.id))
        internal = _internal_topics(r, c, ksql.get(c.id, ()), user, schemas=i % 3 == 0)
        inv.topics[c.id] = tuple(sorted(user + internal, key=lambda t: t.name))
    for i, cn in enumerate(inv.connectors):
        topics = [t for t in inv.topics[cn.cluster_id] if not t.internal]
        mine = [t for t in topics if t.team == cat.team_of(cn.id)] or topics
        pick = mine[int(digest_hex("connector-topic", cn.id), 16) % len(mine)]
        inv.connectors[i] = replace(cn, topics=pick.name)


def _user_topics(
    r: random.Random,
    cluster: KafkaCluster,
    anchor: date,
    apps: dict[str, tuple[str, ...]],
    cluster_team: str | None,
) -> list[Topic]:
    """3-24 user topics: mostly of the cluster's team (any team on a shared cluster)."""
    teams = sorted(apps)
    n = min(24, 3 + r.randrange(max(1, cluster.partitions // 40)))
    out: dict[str, Topic] = {}
    for i in range(n):
        team = cluster_team if cluster_team is not None and r.random() < 0.7 else r.choice(teams)
        app, event = r.choice(apps[team]), r.choice(_EVENTS)
        name = f"{app}-{event}" if r.random() < 0.25 else f"{team}.{app}.{event}"
        version = 2
        while name in out:
            name, version = f"{name.rsplit('-v', 1)[0]}-v{version}", version + 1
        out[name] = Topic(
            name=name,
            cluster_id=cluster.id,
            team=team,
            internal=False,
            write_weight=max(1, int(r.paretovariate(1.3) * 100)),
            read_weight=max(1, int(r.paretovariate(1.3) * 100)),
            retained_mb=min(5_000_000, int(r.paretovariate(1.1) * 2_000)),
            partition_weights=_partition_weights(r, r.choice(_PARTITIONS)),
            life=_user_life(r, i, n, cluster.life, anchor),
        )
    return list(out.values())


def _internal_topics(
    r: random.Random,
    cluster: KafkaCluster,
    ksql: Sequence[tuple[str, Lifetime]],
    user: Sequence[Topic],
    *,
    schemas: bool,
) -> list[Topic]:
    """``__consumer_offsets`` (offset commits: ~1 % of the produced bytes) and the
    small ``_confluent-command``, ``_schemas`` and ksqlDB command topics."""
    life = cluster.life
    weight = max(1, sum(t.write_weight for t in user) // 80)
    specs = [("__consumer_offsets", 50, weight, r.randint(50, 500), life)]
    if cluster.kind == "Dedicated":
        specs.append(("_confluent-command", 1, 1, 1, life))
    if schemas:
        specs.append(("_schemas", 1, 1, 1, life))
    for ksql_id, ksql_life in ksql:
        topic_life = Lifetime(max(life.created_at, ksql_life.created_at), ksql_life.deleted_at)
        specs.append((f"_confluent-ksql-{ksql_id}_command_topic", 1, 1, 1, topic_life))
    return [
        Topic(
            name=name,
            cluster_id=cluster.id,
            team=None,
            internal=True,
            write_weight=w,
            read_weight=max(1, w // 10),
            retained_mb=mb,
            partition_weights=_partition_weights(r, partitions),
            life=topic_life,
        )
        for name, partitions, w, mb, topic_life in specs
    ]


def topic_day(
    org_id: str, cluster_id: str, topics: Sequence[Topic], d: date, totals: tuple[int, int]
) -> dict[str, tuple[int, int]]:
    """``{topic: (received_bytes, sent_bytes)}`` of a cluster-day, summing to *totals*.

    *totals* are the principals' ``(request_bytes, response_bytes)`` of the day; topics
    with nothing either way are left out.
    """
    alive = [t for t in topics if t.life.alive_on(d)]
    if not alive or not any(totals):
        return {}
    r = rng("topic-day", org_id, cluster_id, d.isoformat())
    jitter = [(r.randint(60, 140), r.randint(60, 140)) for _ in alive]
    received = split_exact(
        totals[0], [t.write_weight * j for t, (j, _) in zip(alive, jitter, strict=True)]
    )
    sent = split_exact(
        totals[1], [t.read_weight * j for t, (_, j) in zip(alive, jitter, strict=True)]
    )
    return {t.name: (w, rd) for t, w, rd in zip(alive, received, sent, strict=True) if w or rd}


def retained_levels(org_id: str, topics: Sequence[Topic], d: date) -> dict[str, tuple[int, ...]]:
    """The day's mean ``retained_bytes`` per partition of every topic alive on *d*."""
    out: dict[str, tuple[int, ...]] = {}
    ordinal = d.toordinal()
    for t in topics:
        if not t.life.alive_on(d):
            continue
        phase = _phase(org_id, t.cluster_id, t.name)
        wave = 86 + 2 * abs((ordinal + phase) % _WAVE_DAYS - _WAVE_DAYS // 2)  # 86..114 %
        age = min(_RAMP_DAYS, ordinal - t.life.first_day.toordinal() + 1)
        level = t.retained_mb * MB * wave * age // (100 * _RAMP_DAYS)
        out[t.name] = tuple(split_exact(level, t.partition_weights))
    return out


@lru_cache(maxsize=65536)
def _phase(org_id: str, cluster_id: str, topic: str) -> int:
    return rng("wave", org_id, cluster_id, topic).randrange(_WAVE_DAYS)


def gauge_hours(levels: Sequence[int]) -> list[int]:
    """24 hourly values of a gauge made of partitions at *levels*; their mean is the sum.

    Each partition rises by ``level // 1200`` an hour around its level (a saw-tooth of
    segments filling and being deleted), which sums to zero over the day.
    """
    total = sum(levels)
    step = sum(level // _SAW for level in levels)
    return [total + step * (2 * h - 23) for h in range(24)]
