"""The rate card: which price applies to a cluster on a UTC day.

For one rate on one day, the entries that apply (``valid_from <= day``, scope matching
the cluster) are tried from the most specific scope (the cluster, then its region,
then every cluster) and, within a scope, from the latest ``valid_from``; the first
entry that sets the rate wins. A rate change therefore applies from its day on, and an
override need only name the rates it changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Literal

from chargeback.plugins.self_managed_kafka.config import ClusterSettings, RateEntry

__all__ = ["RateCard", "RateName"]

RateName = Literal[
    "compute_per_broker_hour",
    "storage_per_gib_hour",
    "partition_per_hour",
    "ingress_per_gib",
    "egress_per_gib",
]


class RateCard:
    """Look up rates by cluster and day."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Sequence[RateEntry]) -> None:
        self._entries = sorted(entries, key=lambda e: e.valid_from, reverse=True)

    def rate(self, name: RateName, cluster: ClusterSettings, day: dt.date) -> Decimal | None:
        """Return the rate ``name`` of ``cluster`` on ``day``; ``None`` if no entry sets it."""
        for scope in ("cluster", "region", "all"):
            for entry in self._entries:
                if entry.valid_from > day or _scope(entry, cluster) != scope:
                    continue
                value: Decimal | None = getattr(entry.rates, name)
                if value is not None:
                    return value
        return None


def _scope(entry: RateEntry, cluster: ClusterSettings) -> str | None:
    """The scope through which ``entry`` applies to ``cluster`` (``None``: it does not)."""
    if entry.cluster is not None:
        return "cluster" if entry.cluster == cluster.id else None
    if entry.region is not None:
        return "region" if entry.region == cluster.region else None
    return "all"
