"""Per-principal usage, generated lazily per (resource, date).

Kafka: ``request_bytes`` / ``response_bytes`` per principal per day, whole megabytes
(so billing quantities in GB have at most 3 decimals) split over 24 hours by a
per-principal daily profile. Flink: CFU-minutes per statement per day, multiples
of 6 (so CFU-hours have at most 1 decimal).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import lru_cache

from ccloud_sim._det import rng
from ccloud_sim.inventory import FlinkStatement, KafkaCluster, UsageSource

__all__ = ["MB", "flink_day", "hourly_split", "kafka_day"]

MB = 1_000_000
_P_ZERO_DAY = 0.12


def kafka_day(
    org_id: str, cluster: KafkaCluster, sources: Sequence[UsageSource], d: date
) -> dict[str, tuple[int, int]]:
    """Bytes (whole megabytes) written and read per principal on *cluster* on *d*.

    Returns ``{principal_id: (request_bytes, response_bytes)}`` ordered by principal
    (sources are sorted by principal); empty on zero-usage days.
    """
    if not cluster.life.alive_on(d):
        return {}
    r = rng("kafka-day", org_id, cluster.id, d.isoformat())
    if "zero_days" in cluster.features and r.random() < _P_ZERO_DAY:
        return {}
    day_factor = r.uniform(0.7, 1.3)
    out: dict[str, tuple[int, int]] = {}
    rand = r.random
    for src in sources:
        f = day_factor * (0.5 + rand())
        life = src.life
        if not life.first_day <= d <= life.last_day:
            continue
        w, rd = int(src.write_mb * f) * MB, int(src.read_mb * f) * MB
        if w == 0 and rd == 0:
            continue
        p = src.principal_id
        if p in out:
            pw, pr = out[p]
            out[p] = (pw + w, pr + rd)
        else:
            out[p] = (w, rd)
    return out


def flink_day(
    org_id: str, pool_id: str, statements: Sequence[FlinkStatement], d: date
) -> dict[str, tuple[str, int]]:
    """CFU-minutes per statement of pool *pool_id* on *d*: ``{name: (principal, minutes)}``."""
    r = rng("flink-day", org_id, pool_id, d.isoformat())
    out: dict[str, tuple[str, int]] = {}
    for st in statements:
        minutes = 6 * r.randint(20, 1200)
        if st.runs_on(d):
            out[st.name] = (st.principal, minutes)
    return out


@lru_cache(maxsize=65536)
def _profile(*parts: str) -> tuple[int, ...]:
    """Cumulative integer weights (length 25, starting at 0) of a daily profile."""
    r = rng("profile", *parts)
    peak = r.randrange(24)
    cum = [0]
    for h in range(24):
        dist = min(abs(h - peak), 24 - abs(h - peak))
        cum.append(cum[-1] + r.randint(1, 4) + max(0, 8 - dist))
    return tuple(cum)


def hourly_split(total: int, *profile_key: str) -> list[int]:
    """Split *total* into 24 non-negative integers that sum to it exactly."""
    cum = _profile(*profile_key)
    w = cum[-1]
    return [total * cum[h + 1] // w - total * cum[h] // w for h in range(24)]
