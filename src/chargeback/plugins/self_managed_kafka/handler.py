"""The handler of self-managed Kafka lines: clusters, principals and the rule table.

- network ingress / egress: by the principals' bytes in / out on the cluster;
- compute: ``compute_usage_ratio`` by bytes in + out, the rest evenly over the
  cluster's active principals;
- storage and partitions: ``storage_usage_ratio`` by bytes in, the rest evenly.

The identities of a cluster are the principals seen on it (the principal label),
each charged as itself, or to the static identity that lists it. With
``from_principal_label: false`` only static identities are charged and the bytes of
any other principal go to UNALLOCATED (``unknown_principal``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from chargeback.core.models import (
    BillingLineItem,
    Identity,
    IdentityResolution,
    IdentitySet,
    MetricQuery,
    Resource,
)
from chargeback.core.plugin.protocols import ResolveContext
from chargeback.core.rules import RuleAllocator, RuleSpec, RuleTable
from chargeback.core.sources.day_range import DAY_WINDOW, DayRangeQuery
from chargeback.plugins.self_managed_kafka.config import SelfManagedKafkaSettings
from chargeback.plugins.self_managed_kafka.costs import COSTS
from chargeback.plugins.self_managed_kafka.promql import selector

__all__ = ["Discovered", "KafkaHandler"]

PRINCIPAL = "kafka_principal"
STATIC = "static"


@dataclass(slots=True)
class Discovered:
    """The principals seen per cluster (the run's shared context)."""

    principals: dict[str, set[str]] = field(default_factory=dict)


def _rules(settings: SelfManagedKafkaSettings) -> RuleTable:
    compute = Fraction(settings.compute_usage_ratio)
    storage = Fraction(settings.storage_usage_ratio)
    both = ("bytes_in", "bytes_out")
    return RuleTable(
        {
            "KAFKA_NETWORK_INGRESS": RuleSpec(kind="usage", name="kafka_ingress_by_bytes",
                                              metrics=("bytes_in",)),
            "KAFKA_NETWORK_EGRESS": RuleSpec(kind="usage", name="kafka_egress_by_bytes",
                                             metrics=("bytes_out",)),
            "KAFKA_COMPUTE": RuleSpec(kind="usage", name="kafka_compute_usage_shared",
                                      ratio=compute, metrics=both),
            "KAFKA_STORAGE": RuleSpec(kind="usage", name="kafka_storage_usage_shared",
                                      ratio=storage, metrics=("bytes_in",)),
            "KAFKA_PARTITION": RuleSpec(kind="usage", name="kafka_partition_usage_shared",
                                        ratio=storage, metrics=("bytes_in",)),
        },
        unknown_to_unallocated=True,
    )  # fmt: skip


class KafkaHandler:
    """A :class:`~chargeback.core.plugin.protocols.ServiceHandler` for every cost type."""

    def __init__(self, settings: SelfManagedKafkaSettings, query: DayRangeQuery) -> None:
        self._settings = settings
        self._query = query
        self._rules = _rules(settings)
        self._discovered = Discovered()
        self._map = {p: s.id for s in settings.identities.static for p in s.principals}
        names = settings.metrics
        self._queries = {
            key: MetricQuery(key, getattr(names, key), names.cluster_label, names.principal_label)
            for key in ("bytes_in", "bytes_out")
        }

    @property
    def service_type(self) -> str:
        """``kafka``."""
        return "kafka"

    @property
    def handles_product_types(self) -> Sequence[str]:
        """Every product type the cost input writes."""
        return tuple(c.product_type for c in COSTS)

    async def discover(self, today: dt.date) -> Discovered:
        """List the principals per cluster over ``identities.lookback_days`` (one request)."""
        names = self._settings.metrics
        ids = [c.id for c in self._settings.clusters]
        by = f"{names.cluster_label}, {names.principal_label}"
        selectors = [
            selector(m, names.cluster_label, ids) for m in (names.bytes_in, names.bytes_out)
        ]
        promql = " or ".join(
            f"count by ({by}) (last_over_time({s}[{DAY_WINDOW}]))" for s in selectors
        )
        start = today - dt.timedelta(days=self._settings.identities.lookback_days)
        found = Discovered()
        for series in await self._query.days(promql, start, today + dt.timedelta(days=1)):
            cluster = series.labels.get(names.cluster_label)
            principal = series.labels.get(names.principal_label)
            if cluster and principal:
                found.principals.setdefault(cluster, set()).add(principal)
        self._discovered = found
        return found

    async def gather_resources(self, tenant_id: str, shared: Any) -> Sequence[Resource]:
        """The configured clusters."""
        return [
            Resource(c.id, "kafka_cluster", display_name=c.display_name,
                     attributes={"region": c.region} if c.region else {})
            for c in self._settings.clusters
        ]  # fmt: skip

    async def gather_identities(self, tenant_id: str, shared: Any) -> Sequence[Identity]:
        """The static identities, then every discovered principal no static one claims."""
        out = [Identity(s.id, STATIC, display_name=s.display_name)
               for s in self._settings.identities.static]  # fmt: skip
        if self._settings.identities.from_principal_label:
            seen = sorted({p for ps in self._discovered.principals.values() for p in ps})
            out.extend(Identity(p, PRINCIPAL) for p in seen if p not in self._map)
        return out

    def get_metrics_for_product_type(self, product_type: str) -> Sequence[MetricQuery]:
        """Bytes in and/or out, as the product type's rule weighs them."""
        return [self._queries[k] for k in self._rules.usage_metrics(product_type)]

    def resolve_identities(
        self, line: BillingLineItem, context: ResolveContext | None = None
    ) -> IdentityResolution:
        """The identities of the principals seen on the line's cluster."""
        known: Mapping[str, Identity] = context["cached_identities"] if context else {}
        principals = self._discovered.principals.get(line.resource_id or "", set())
        ids = {self._map.get(p, p) for p in principals}
        found = IdentitySet(known[i] for i in sorted(ids) if i in known)
        reason = None if found else f"no principals seen on cluster {line.resource_id}"
        return IdentityResolution(found, principal_map=self._map, reason=reason)

    def get_allocator(self, product_type: str) -> RuleAllocator:
        """The product type's rule."""
        return self._rules.allocator(product_type)
