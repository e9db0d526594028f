"""Topics of the generated Kafka clusters and their per-topic metrics.

Every cluster has user topics (some created or deleted mid-history) and internal
topics (``__consumer_offsets`` always; ``_confluent-command`` on Dedicated clusters;
``_schemas`` on some; one ``_confluent-ksql-…_command_topic`` per ksqlDB cluster on
it). Per-topic figures are derived from the per-principal ground truth:

* ``received_bytes`` of a cluster-day, summed over its topics, is exactly the
  principals' ``request_bytes`` of that day; ``sent_bytes`` likewise is exactly
  ``response_bytes``. The split over topics is by each topic's weight times a daily
  jitter (largest remainder, so it is exact), and a topic's bytes are split over its
  partitions the same way.
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
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from ccloud_sim._det import day_start, rng
from ccloud_sim.inventory import KafkaCluster, Lifetime
from ccloud_sim.usage import MB

__all__ = [
    "INTERNAL_PREFIXES",
    "Topic",
    "gauge_hours",
    "generate_topics",
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
    """Split *total* over *weights* by largest remainder: the parts sum to *total*."""
    whole = sum(weights)
    parts = [total * w // whole for w in weights]
    rest = total - sum(parts)
    if rest:
        order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
        for i in order[:rest]:
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


def generate_topics(
    org_id: str,
    cluster: KafkaCluster,
    anchor: date,
    *,
    teams: Sequence[str],
    apps: dict[str, tuple[str, ...]],
    cluster_team: str | None,
    ksql: Sequence[tuple[str, Lifetime]],
    schemas: bool,
) -> tuple[Topic, ...]:
    """Every topic ever created on *cluster*, sorted by name.

    Args:
        org_id: the organization id (seeds the draws).
        cluster: the cluster.
        anchor: the end of the generated history.
        teams: team names user topics may belong to.
        apps: each team's application names.
        cluster_team: the cluster's owning team (``None`` for a shared cluster).
        ksql: ``(id, lifetime)`` of the ksqlDB clusters running on it.
        schemas: whether it holds a ``_schemas`` topic.
    """
    r = rng("topics", org_id, cluster.id)
    n = min(24, 3 + r.randrange(max(1, cluster.partitions // 40)))
    out: dict[str, Topic] = {}
    for i in range(n):
        team = cluster_team if cluster_team is not None and r.random() < 0.7 else r.choice(teams)
        app, event = r.choice(apps[team]), r.choice(_EVENTS)
        legacy = r.random() < 0.25
        name = f"{app}-{event}" if legacy else f"{team}.{app}.{event}"
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
    user_weight = sum(t.write_weight for t in out.values())
    internal = [("__consumer_offsets", 50, max(1, user_weight // 80), r.randint(50, 500))]
    if cluster.kind == "Dedicated":
        internal.append(("_confluent-command", 1, 1, 1))
    if schemas:
        internal.append(("_schemas", 1, 1, 1))
    for ksql_id, _ in ksql:
        internal.append((f"_confluent-ksql-{ksql_id}_command_topic", 1, 1, 1))
    lives = dict(ksql)
    for name, partitions, weight, mb in internal:
        life = cluster.life
        ksql_life = lives.get(name.removeprefix("_confluent-ksql-").removesuffix("_command_topic"))
        if ksql_life is not None:
            life = Lifetime(max(life.created_at, ksql_life.created_at), ksql_life.deleted_at)
        out[name] = Topic(
            name=name,
            cluster_id=cluster.id,
            team=None,
            internal=True,
            write_weight=weight,
            read_weight=max(1, weight // 10),
            retained_mb=mb,
            partition_weights=_partition_weights(r, partitions),
            life=life,
        )
    return tuple(sorted(out.values(), key=lambda t: t.name))


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
