"""What every Confluent Cloud service handler shares.

- the rule table: each handler's default :class:`~chargeback.core.rules.RuleSpec`
  per product type, merged with the ``plugin_settings.allocation`` override by the
  core's :class:`~chargeback.core.rules.RuleTable` into the allocator it returns;
- :class:`DateIndex` / :class:`IndexCache`: lookups built once from a date's
  :class:`~chargeback.core.plugin.protocols.ResolveContext` (API key -> owner, owners of
  the keys on each resource and environment, Flink statements per pool), never
  once per line;
- :class:`BaseHandler`: ``handles_product_types``, ``get_metrics_for_product_type``
  and ``get_allocator`` from the rule table; subclasses add gathering and
  ``resolve_identities``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from chargeback.core.models import (
    AllocationParams,
    BillingLineItem,
    Identity,
    IdentityResolution,
    IdentitySet,
    MetricQuery,
    Resource,
)
from chargeback.core.plugin.protocols import ResolveContext
from chargeback.core.rules import RuleAllocator, RuleSpec, RuleTable
from chargeback.plugins.confluent_cloud.config import CCloudSettings
from chargeback.plugins.confluent_cloud.inventory import Inventory

__all__ = [
    "METRIC_QUERIES",
    "BaseHandler",
    "DateIndex",
    "IndexCache",
    "identity_type_of",
]

METRIC_QUERIES: Mapping[str, MetricQuery] = {
    "request_bytes": MetricQuery(
        "request_bytes", "io.confluent.kafka.server/request_bytes",
        "resource.kafka.id", "metric.principal_id",
    ),
    "response_bytes": MetricQuery(
        "response_bytes", "io.confluent.kafka.server/response_bytes",
        "resource.kafka.id", "metric.principal_id",
    ),
    "cfu": MetricQuery(
        "cfu", "io.confluent.flink/statement_utilization/cfu_minutes_consumed",
        "resource.compute_pool.id", "resource.flink_statement.name",
    ),
}  # fmt: skip
"""The usage metrics, by the key allocation settings refer to them with."""

DEFAULT_USAGE_METRICS = ("request_bytes", "response_bytes")
"""What a product type overridden to ``rule: usage`` weighs by when it names no metric."""


def identity_type_of(identity_id: str) -> str:
    """Guess an identity's type from its id prefix (for ids not in the inventory)."""
    if identity_id.startswith("sa-"):
        return "service_account"
    if identity_id.startswith("u-"):
        return "user"
    if identity_id.startswith("pool-"):
        return "identity_pool"
    return "unknown"


@dataclass(slots=True)
class DateIndex:
    """Lookups over one date's :class:`ResolveContext`, built once."""

    identities: IdentitySet
    resources: Mapping[str, Resource]
    key_owner: dict[str, str] = field(default_factory=dict)
    owners_by_resource: dict[str, set[str]] = field(default_factory=dict)
    owners_by_env: dict[str, set[str]] = field(default_factory=dict)
    _statements: dict[dt.date, dict[str, dict[str, str]]] = field(default_factory=dict)
    _by_type: dict[tuple[str, ...], IdentitySet] = field(default_factory=dict)
    _owner_sets: dict[tuple[str, str], IdentitySet] = field(default_factory=dict)

    @classmethod
    def build(cls, context: ResolveContext) -> DateIndex:
        """Index the API keys of ``context`` by owner, resource and environment."""
        idx = cls(context["cached_identities"], context["cached_resources"])
        for ident in idx.identities.values():
            if ident.identity_type != "api_key" or not ident.owner_id:
                continue
            idx.key_owner[ident.identity_id] = ident.owner_id
            if ident.resource_id:
                idx.owners_by_resource.setdefault(ident.resource_id, set()).add(ident.owner_id)
                res = idx.resources.get(ident.resource_id)
                env = (res.env_id if res else None) or ident.attributes.get("env_id")
                if env:
                    idx.owners_by_env.setdefault(env, set()).add(ident.owner_id)
        return idx

    def identity(self, identity_id: str) -> Identity:
        """Return the identity, or a stand-in for an id the inventory does not have."""
        found = self.identities.get(identity_id)
        return found or Identity(identity_id, identity_type_of(identity_id))

    def payer(self, identity_id: str) -> str:
        """Return who pays for ``identity_id`` (an API key's owner, else itself)."""
        return self.key_owner.get(identity_id, identity_id)

    def identity_set(self, ids: Sequence[str] | set[str]) -> IdentitySet:
        """Return the identities of ``ids`` (stand-ins for unknown ids)."""
        return IdentitySet(self.identity(i) for i in ids)

    def owners_on(self, resource_id: str | None) -> IdentitySet:
        """Return the owners of the API keys scoped to ``resource_id`` (cached)."""
        key = ("resource", resource_id or "")
        found = self._owner_sets.get(key)
        if found is None:
            found = self.identity_set(self.owners_by_resource.get(key[1], set()))
            self._owner_sets[key] = found
        return found

    def owners_in_env(self, env_id: str | None) -> IdentitySet:
        """Return the owners of the API keys in environment ``env_id`` (cached)."""
        key = ("env", env_id or "")
        found = self._owner_sets.get(key)
        if found is None:
            found = self.identity_set(self.owners_by_env.get(key[1], set()))
            self._owner_sets[key] = found
        return found

    def of_types(self, types: tuple[str, ...]) -> IdentitySet:
        """Return the date's identities of the given types (cached)."""
        found = self._by_type.get(types)
        if found is None:
            found = self._by_type[types] = self.identities.of_type(*types)
        return found

    def statements(self, day: dt.date) -> dict[str, dict[str, str]]:
        """Return ``pool -> statement name -> owner`` for statements active on ``day``."""
        found = self._statements.get(day)
        if found is None:
            found = {}
            for res in self.resources.values():
                if res.resource_type == "flink_statement" and res.parent_id and res.active_on(day):
                    name = res.attributes.get("statement_name") or res.display_name or ""
                    if res.owner_id:
                        found.setdefault(res.parent_id, {})[name] = self.payer(res.owner_id)
            self._statements[day] = found
        return found


class IndexCache:
    """Holds the :class:`DateIndex` of the context being resolved (one at a time).

    The engine builds one :class:`ResolveContext` per date and resolves all of that
    date's lines with it; the cache keeps a reference to the context (so its ``id``
    cannot be reused) and rebuilds the index only when a new context arrives.
    """

    __slots__ = ("_context", "_fallback", "_index")

    def __init__(self) -> None:
        self._context: object | None = None
        self._index: DateIndex | None = None
        self._fallback: ResolveContext | None = None

    def set_inventory(self, inventory: Inventory, sentinels: Sequence[Identity]) -> None:
        """Remember the latest crawl, used when a caller passes no context."""
        identities = IdentitySet(
            [
                *inventory.service_accounts, *inventory.users, *inventory.identity_pools,
                *inventory.api_keys, *sentinels,
            ]
        )  # fmt: skip
        resources: dict[str, Resource] = {}
        for group in (
            inventory.environments, inventory.clusters, inventory.connectors,
            inventory.ksql_clusters, inventory.schema_registries, inventory.flink_pools,
            inventory.flink_statements, inventory.identity_providers,
        ):  # fmt: skip
            resources.update((r.resource_id, r) for r in group)
        self._fallback = ResolveContext(cached_identities=identities, cached_resources=resources)

    def get(self, context: ResolveContext | None, day: dt.date) -> DateIndex:
        """Return the index of ``context`` (or of the latest crawl, active on ``day``)."""
        if context is None:
            fb = self._fallback or ResolveContext(
                cached_identities=IdentitySet(), cached_resources={}
            )
            context = ResolveContext(
                cached_identities=fb["cached_identities"].active_on(day),
                cached_resources=fb["cached_resources"],
            )
            return DateIndex.build(context)
        if self._context is not context or self._index is None:
            self._index = DateIndex.build(context)
            self._context = context
        return self._index


class BaseHandler:
    """Rule table, metrics and allocators shared by every handler.

    Subclasses set :attr:`service_type_name`, :attr:`DEFAULTS` and implement the
    gathering and resolution methods.
    """

    service_type_name: ClassVar[str] = ""
    DEFAULTS: ClassVar[Mapping[str, RuleSpec]] = {}
    UNKNOWN_TO_UNALLOCATED: ClassVar[bool] = False

    def __init__(self, settings: CCloudSettings, index: IndexCache) -> None:
        self._settings = settings
        self._index = index
        self._rules = RuleTable(
            self.DEFAULTS,
            overrides={pt: o.rule_override() for pt, o in settings.allocation.items()},
            default_metrics=DEFAULT_USAGE_METRICS,
            unknown_to_unallocated=(
                self.UNKNOWN_TO_UNALLOCATED
                if settings.unknown_principals is None
                else settings.unknown_principals == "unallocated"
            ),
        )

    @property
    def service_type(self) -> str:
        """The service's short name."""
        return self.service_type_name

    @property
    def handles_product_types(self) -> Sequence[str]:
        """The line types this handler claims."""
        return self._rules.product_types

    def rule_spec(self, product_type: str) -> RuleSpec:
        """Return the effective rule of a product type."""
        return self._rules.spec(product_type)

    def allocation_params(self, product_type: str) -> AllocationParams:
        """Return the effective :class:`AllocationParams` of a product type."""
        return self._rules.allocator(product_type).params

    def get_metrics_for_product_type(self, product_type: str) -> Sequence[MetricQuery]:
        """Return the metric queries the product type's usage rule weighs by."""
        return tuple(METRIC_QUERIES[m] for m in self._rules.usage_metrics(product_type))

    def get_allocator(self, product_type: str) -> RuleAllocator:
        """Return the allocator of the product type's configured rule."""
        return self._rules.allocator(product_type)

    async def gather_resources(self, tenant_id: str, shared: Any) -> Sequence[Resource]:
        """No resources by default."""
        return ()

    async def gather_identities(self, tenant_id: str, shared: Any) -> Sequence[Identity]:
        """No identities by default."""
        return ()

    def resolve_identities(
        self, line: BillingLineItem, context: ResolveContext | None = None
    ) -> IdentityResolution:
        """Subclasses resolve; the base charges nobody."""
        return IdentityResolution(IdentitySet(), reason=f"{line.product_type} has no resolver")

    def owner_resolution(
        self, line: BillingLineItem, context: ResolveContext | None, what: str
    ) -> IdentityResolution:
        """Resolve a single-owner resource (connector, ksqlDB cluster) to its owner."""
        idx = self._index.get(context, line.date)
        if line.resource_id is None:
            return IdentityResolution(IdentitySet(), reason=f"{what} line without a resource id")
        res = idx.resources.get(line.resource_id)
        if res is None:
            return IdentityResolution(
                IdentitySet(), reason=f"{what} {line.resource_id} is not in the inventory"
            )
        if not res.owner_id:
            return IdentityResolution(
                IdentitySet(), reason=f"{what} {line.resource_id} has no owner"
            )
        owner = idx.payer(res.owner_id)
        return IdentityResolution(IdentitySet([idx.identity(owner)]), idx.key_owner)
