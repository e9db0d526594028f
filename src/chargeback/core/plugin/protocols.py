"""The plugin protocols (seed: "Plugin System"; DESIGN §6).

Who calls what, and when, in one tenant run (DESIGN §3)::

    plugin.initialize(raw plugin_settings)          once per tenant runtime
    plugin.get_service_handlers()                   -> {service_type: ServiceHandler}
    plugin.get_cost_input()                         -> CostInput
    plugin.get_metrics_source()                     -> MetricsSource | None
    plugin.get_storage_module()                     -> StorageModule | None
    plugin.get_fallback_allocator()                 -> CostAllocator | None
    await plugin.build_shared_context(tenant_id)    -> shared state for every handler
    per run:  handler.gather_resources / gather_identities (inventory, once per run)
              cost_input.gather(start, end)         (billing, streamed)
              metrics_source.fetch(query, ids, start, end)  (once per query, whole range)
    per date: handler.resolve_identities(line, ResolveContext) -> IdentityResolution
              allocator(AllocationContext)          -> AllocationResult  (pure, no I/O)
              storage commit, then emitter(tenant_id, date, rows)
    await plugin.close()                            on shutdown or tenant removal

Methods that do I/O are coroutines; allocators and resolvers are synchronous and pure.
Implementations satisfy these structurally; they do not inherit from them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, TypedDict, runtime_checkable

from chargeback.core.models import (
    AllocationContext,
    AllocationResult,
    BillingLineItem,
    ChargebackRow,
    Identity,
    IdentityResolution,
    IdentitySet,
    MetricQuery,
    Resource,
    UsageTable,
)

__all__ = [
    "CostAllocator",
    "CostInput",
    "EcosystemPlugin",
    "Emitter",
    "IdentityResolver",
    "MetricsSource",
    "Migration",
    "PluginFactory",
    "PluginRows",
    "ResolveContext",
    "ServiceHandler",
    "StorageModule",
]


class ResolveContext(TypedDict):
    """Caches handed to :meth:`ServiceHandler.resolve_identities` for one date.

    Built once per date by the engine so that resolving thousands of lines never
    re-reads the inventory.

    Attributes:
        cached_identities: every identity known for the tenant and active on the date.
        cached_resources: every resource known for the tenant, by id (deleted ones too,
            with ``deleted_at`` set, so billed-but-deleted resources still resolve).
    """

    cached_identities: IdentitySet
    cached_resources: Mapping[str, Resource]


@runtime_checkable
class CostAllocator(Protocol):
    """Protocol: split one billing line among identities.

    Called by the engine once per billing line, after identity resolution. Must be
    pure and fast: no I/O. The parts should sum to ``ctx.line.amount``; the engine
    checks it and sends any difference to ``UNALLOCATED`` with a reason.

    Args:
        ctx: the line, the candidate identities, usage and the configured rule.
    """

    def __call__(self, ctx: AllocationContext, /) -> AllocationResult: ...


@runtime_checkable
class IdentityResolver(Protocol):
    """Protocol: a standalone override of identity resolution for a product type.

    Configured per product type in ``plugin_settings.identity_resolver_overrides`` by
    dotted path (``package.module:callable``); the engine calls it instead of the
    handler's :meth:`ServiceHandler.resolve_identities`, once per line.

    Args:
        line: the billing line.
        context: the date's caches of identities and resources.
    """

    def __call__(self, line: BillingLineItem, context: ResolveContext, /) -> IdentityResolution: ...


@runtime_checkable
class ServiceHandler(Protocol):
    """Protocol: one service of an ecosystem (Kafka, connectors, Flink, ...).

    The engine routes every billing line whose ``product_type`` is in
    :attr:`handles_product_types` to this handler. It gathers the handler's inventory
    once per run, asks it which usage metrics each product type needs, resolves each
    line's identities through it, and splits the line with its allocator.
    """

    @property
    def service_type(self) -> str:
        """A short name for the service, e.g. ``"kafka"``."""
        ...

    @property
    def handles_product_types(self) -> Sequence[str]:
        """The billing product types this handler claims."""
        ...

    async def gather_resources(self, tenant_id: str, shared: Any) -> Sequence[Resource]:
        """List the service's current resources. Called once per run.

        Args:
            tenant_id: the tenant.
            shared: the plugin's shared context from ``build_shared_context``.
        """
        ...

    async def gather_identities(self, tenant_id: str, shared: Any) -> Sequence[Identity]:
        """List the identities this service knows about. Called once per run.

        Args:
            tenant_id: the tenant.
            shared: the plugin's shared context from ``build_shared_context``.
        """
        ...

    def get_metrics_for_product_type(self, product_type: str) -> Sequence[MetricQuery]:
        """Return the usage metrics lines of ``product_type`` need (empty: none)."""
        ...

    def resolve_identities(
        self, line: BillingLineItem, context: ResolveContext | None = None
    ) -> IdentityResolution:
        """Return who may be charged for ``line``. Called once per line; no I/O.

        Args:
            line: the billing line.
            context: the date's caches; handlers must use them when given.
        """
        ...

    def get_allocator(self, product_type: str) -> CostAllocator:
        """Return the allocator for ``product_type`` (the configured rule)."""
        ...


@runtime_checkable
class CostInput(Protocol):
    """Protocol: the source of billing lines.

    Called by the engine once per run for the span of dates that may need work.
    """

    def gather(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> AsyncIterator[BillingLineItem]:
        """Stream the billing lines of the days ``start <= day < end``.

        Args:
            tenant_id: the tenant.
            start: first day (inclusive).
            end: last day (exclusive).
        """
        ...


@runtime_checkable
class MetricsSource(Protocol):
    """Protocol: where usage comes from (Metrics API, Prometheus, ...).

    Called by the engine once per :class:`MetricQuery` for all the resources and the
    whole range of dates being calculated.
    """

    async def fetch(
        self, query: MetricQuery, resource_ids: Sequence[str], start: dt.date, end: dt.date
    ) -> UsageTable:
        """Return daily usage per ``(date, resource_id)`` and principal.

        Args:
            query: which metric, filtered by which label, grouped by which label.
            resource_ids: the resources to ask for.
            start: first day (inclusive).
            end: last day (exclusive).
        """
        ...


class Migration(NamedTuple):
    """One ordered schema step of a storage namespace, recorded in the database once applied."""

    version: int
    name: str
    sql: str


class PluginRows(NamedTuple):
    """Rows for a plugin table for one tenant and date.

    The core storage replaces the table's rows for ``(tenant_id, date)`` with these in
    the same transaction as the date's chargeback rows, so the table must have
    ``tenant_id`` and ``date`` (ISO text) columns.
    """

    table: str
    columns: tuple[str, ...]
    rows: Sequence[tuple[object, ...]]


@runtime_checkable
class StorageModule(Protocol):
    """Protocol: a plugin's own tables (e.g. Confluent billing with ``env_id`` in the key).

    The core storage applies :meth:`migrations` at start-up and calls
    :meth:`billing_rows` inside each date's commit. Plugins never execute SQL
    themselves (DESIGN §7): they supply schema and rows.
    """

    @property
    def namespace(self) -> str:
        """The migration namespace, e.g. ``"confluent_cloud"``."""
        ...

    def migrations(self) -> Sequence[Migration]:
        """Return the ordered schema migrations of this module."""
        ...

    def billing_rows(
        self, tenant_id: str, day: dt.date, lines: Sequence[BillingLineItem]
    ) -> Sequence[PluginRows]:
        """Return the plugin rows to store with one date's commit."""
        ...


@runtime_checkable
class Emitter(Protocol):
    """Protocol: publish one tenant-date's chargeback rows (CSV file, Prometheus, ...).

    Called by the emitter runner after a date is committed, and again after each
    recalculation of that date. A failure is recorded and retried on the next run;
    it never undoes the commit.

    Args:
        tenant_id: the tenant.
        day: the date.
        rows: every chargeback row of that tenant and date.
    """

    async def __call__(
        self, tenant_id: str, day: dt.date, rows: Sequence[ChargebackRow], /
    ) -> None: ...


@runtime_checkable
class EcosystemPlugin(Protocol):
    """Protocol: the entry point of an ecosystem; one instance per tenant runtime.

    Created by the factory that the plugin package's ``register()`` returns; then the
    engine walks the lifecycle in the module docstring above.
    """

    @property
    def name(self) -> str:
        """The ecosystem name tenants refer to, e.g. ``"confluent_cloud"``."""
        ...

    def initialize(self, config: Mapping[str, Any]) -> None:
        """Validate the raw ``plugin_settings`` (with pydantic) and create clients.

        Raises:
            pydantic.ValidationError: the settings are invalid.
        """
        ...

    def get_service_handlers(self) -> Mapping[str, ServiceHandler]:
        """Return the handlers by service type."""
        ...

    def get_cost_input(self) -> CostInput:
        """Return the billing source."""
        ...

    def get_metrics_source(self) -> MetricsSource | None:
        """Return the usage source, if the ecosystem has one."""
        ...

    def get_storage_module(self) -> StorageModule | None:
        """Return the plugin's tables, if it has any."""
        ...

    def get_fallback_allocator(self) -> CostAllocator | None:
        """Return the allocator for product types no handler claims."""
        ...

    async def build_shared_context(self, tenant_id: str) -> Any:
        """Build state all handlers share for one run (e.g. the environment list)."""
        ...

    async def close(self) -> None:
        """Release clients and connections. Idempotent."""
        ...


PluginFactory = Callable[[], EcosystemPlugin]
"""What a plugin package's ``register()`` returns with its name: ``(name, factory)``."""
