"""Allocation dispatch: route each billing line to its handler and split it, exactly.

Per product type the route is built once: the handler that claims it (by
``handles_product_types``), its allocator (or the tenant's override, or the plugin's
fallback), an optional identity-resolver override, and the usage metrics it needs.

Every line's parts are checked: whatever an allocator or resolver does (raise,
return parts that do not add up, charge an empty identity), the stored rows of a
line always sum to its amount; the difference goes to ``UNALLOCATED`` with a reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from operator import itemgetter
from typing import cast

import structlog

from chargeback.core.engine.conserve import Part, checked
from chargeback.core.ledger.fallback import allocate_unavailable
from chargeback.core.ledger.records import NO_GAPS, UsageGaps
from chargeback.core.models import (
    UNALLOCATED,
    AllocationContext,
    AllocationParams,
    BillingLineItem,
    ChargebackRow,
    CostType,
    IdentityResolution,
    IdentitySet,
    MetricQuery,
    Resource,
    UsageTable,
)
from chargeback.core.plugin.overrides import Overrides
from chargeback.core.plugin.protocols import (
    CostAllocator,
    IdentityResolver,
    ResolveContext,
    ServiceHandler,
)
from chargeback.errors import PluginError

__all__ = ["DateAllocation", "Dispatcher", "Route", "RunNotes"]

log = structlog.get_logger(__name__)

_EMPTY: Mapping[str, int] = {}
_UNALLOCATED = str(CostType.UNALLOCATED)
_new = tuple.__new__
_IDENT, _AMOUNT, _COST_TYPE, _RULE, _REASON = (itemgetter(i) for i in range(5))
_SEQUENCES = (list, tuple)
_REASON_TYPES = {str, type(None)}


@dataclass(frozen=True, slots=True)
class Route:
    """How lines of one product type are allocated.

    Attributes:
        product_type: the product type.
        handler: the claiming handler, or ``None`` when unclaimed.
        allocator: the allocator to call, or ``None`` (no handler, no fallback).
        resolver: an identity-resolver override, if configured.
        queries: usage metrics the lines need.
        params: the rule handed to the allocator in the context.
        error: why the route is broken (e.g. ``get_allocator`` raised), if it is.
    """

    product_type: str
    handler: ServiceHandler | None
    allocator: CostAllocator | None
    resolver: IdentityResolver | None
    queries: tuple[MetricQuery, ...]
    params: AllocationParams
    error: str | None = None


@dataclass(slots=True)
class RunNotes:
    """What one run has already warned about, so each problem is logged once per run."""

    warned: set[tuple[str, str]] = field(default_factory=set)

    def first(self, kind: str, product_type: str) -> bool:
        """Return ``True`` the first time ``(kind, product_type)`` is seen this run."""
        key = (kind, product_type)
        if key in self.warned:
            return False
        self.warned.add(key)
        return True


@dataclass(frozen=True, slots=True)
class DateAllocation:
    """The rows of one date and what went to ``UNALLOCATED``.

    Attributes:
        rows: the chargeback rows, line by line.
        unallocated: the amount charged to ``UNALLOCATED`` (minor units).
        allocator_errors: lines whose allocator or resolver broke its contract.
        usage_unavailable: lines split by ``usage_unavailable`` (their usage is gone).
    """

    rows: list[ChargebackRow]
    unallocated: int
    allocator_errors: int
    usage_unavailable: int = 0


def _rule_name(allocator: object) -> str:
    rule = getattr(allocator, "rule", None)
    if isinstance(rule, str) and rule:
        return rule
    name = getattr(allocator, "__name__", None)
    return name if isinstance(name, str) else type(allocator).__name__


class Dispatcher:
    """Routes and allocates billing lines for one tenant; built once per tenant runtime.

    Args:
        tenant_id: the tenant.
        handlers: the plugin's handlers by service type.
        fallback: the plugin's allocator for unclaimed product types, if any.
        overrides: the tenant's allocator and resolver overrides.

    Raises:
        PluginError: two handlers claim the same product type.
    """

    __slots__ = ("_claims", "_fallback", "_overrides", "_routes", "tenant_id")

    def __init__(
        self,
        tenant_id: str,
        handlers: Mapping[str, ServiceHandler],
        fallback: CostAllocator | None,
        overrides: Overrides | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self._fallback = fallback
        self._overrides = overrides or Overrides()
        self._claims: dict[str, ServiceHandler] = {}
        claimed_by: dict[str, str] = {}
        for service_type in sorted(handlers):
            handler = handlers[service_type]
            for product_type in handler.handles_product_types:
                if product_type in claimed_by:
                    raise PluginError(
                        f"product type {product_type!r} is claimed by two handlers: "
                        f"{claimed_by[product_type]!r} and {service_type!r}",
                        plugin=tenant_id,
                    )
                claimed_by[product_type] = service_type
                self._claims[product_type] = handler
        self._routes: dict[str, Route] = {}

    def route(self, product_type: str) -> Route:
        """Return (and cache) the route of ``product_type``."""
        cached = self._routes.get(product_type)
        if cached is not None:
            return cached
        handler = self._claims.get(product_type)
        allocator: CostAllocator | None = self._overrides.allocators.get(product_type)
        error: str | None = None
        queries: tuple[MetricQuery, ...] = ()
        if handler is not None:
            try:
                queries = tuple(handler.get_metrics_for_product_type(product_type))
                if allocator is None:
                    allocator = handler.get_allocator(product_type)
            except Exception as exc:  # plugin code may raise anything; lines go to UNALLOCATED
                error = f"allocator_error: handler setup raised {type(exc).__name__}: {exc}"
        elif allocator is None:
            allocator = self._fallback
        params_attr = getattr(allocator, "params", None)
        params = (
            params_attr
            if isinstance(params_attr, AllocationParams)
            else AllocationParams(
                rule=_rule_name(allocator) if allocator is not None else "none",
                metric_keys=tuple(q.key for q in queries),
            )
        )
        route = Route(
            product_type=product_type,
            handler=handler,
            allocator=allocator,
            resolver=self._overrides.resolvers.get(product_type),
            queries=queries,
            params=params,
            error=error,
        )
        self._routes[product_type] = route
        return route

    def metric_queries(self, lines: Iterable[BillingLineItem]) -> dict[MetricQuery, set[str]]:
        """Return every usage metric ``lines`` need, with the resource ids to ask for."""
        out: dict[MetricQuery, set[str]] = {}
        for line in lines:
            if line.resource_id is None or line.error is not None:
                continue
            for query in self.route(line.product_type).queries:
                out.setdefault(query, set()).add(line.resource_id)
        return out

    def allocate_date(
        self,
        day: dt.date,
        lines: Sequence[BillingLineItem],
        *,
        identities: IdentitySet,
        resources: Mapping[str, Resource],
        usage: Mapping[MetricQuery, UsageTable],
        notes: RunNotes | None = None,
        context: ResolveContext | None = None,
        gaps: UsageGaps = NO_GAPS,
    ) -> DateAllocation:
        """Allocate one date's lines into chargeback rows that conserve every line.

        Args:
            day: the date.
            lines: the date's billing lines (or a slice of them).
            identities: every known identity (filtered here to those active on ``day``).
            resources: every known resource by id, deleted ones included.
            usage: usage tables by metric query, covering ``day``.
            notes: the run's already-logged warnings.
            context: the date's caches from :meth:`resolve_context`; pass the same one
                for every slice of a date so handlers index the inventory once.
            gaps: the date's usage that is unavailable; a line whose route needs any
                of it is split by ``usage_unavailable`` (:mod:`chargeback.core.ledger.fallback`).
        """
        notes = notes if notes is not None else RunNotes()
        if context is None:
            context = self.resolve_context(day, identities, resources)
        rows: list[ChargebackRow] = []
        unallocated = errors = lacking = 0
        tenant = self.tenant_id
        for line in lines:
            reason = self._problem(line, notes)
            if reason is None:
                route = self.route(line.product_type)
                if gaps.missing and gaps.lacks(route.queries, line.resource_id):
                    lacking += line.amount != 0  # a zero line has nothing to split, no rows
                    result, reason = self._allocate(line, route, context, usage, day, gaps=gaps)
                else:
                    result, reason = self._allocate(line, route, context, usage, day)
                if result is not None:
                    parts, reason, idents, amounts = checked(line, result)
                    if reason is not None:
                        errors += 1
                        _log_once(notes, "allocator_error", line.product_type, reason)
                    if UNALLOCATED in idents:
                        unallocated += sum(
                            a for i, a in zip(idents, amounts, strict=True) if i == UNALLOCATED
                        )
                    rows.extend(_rows_of(tenant, day, line, parts, idents, amounts))
                    continue
                errors += 1
                _log_once(notes, "allocator_error", line.product_type, reason)
            if line.amount or line.error is not None:  # a refused line (amount 0) shows too
                rows.append(_unallocated_row(tenant, day, line, _rule_for(reason), reason))
                unallocated += line.amount
        return DateAllocation(
            rows=rows, unallocated=unallocated, allocator_errors=errors, usage_unavailable=lacking
        )

    @staticmethod
    def resolve_context(
        day: dt.date, identities: IdentitySet, resources: Mapping[str, Resource]
    ) -> ResolveContext:
        """Return one date's caches: the identities active that day and every resource."""
        return ResolveContext(
            cached_identities=identities.active_on(day), cached_resources=resources
        )

    def _problem(self, line: BillingLineItem, notes: RunNotes) -> str | None:
        """Return why ``line`` cannot be allocated at all, or ``None``."""
        if line.error is not None:
            return f"source_error: {line.error}"
        route = self.route(line.product_type)
        if route.error is not None:
            return route.error
        if route.allocator is None:
            reason = f"no handler for product type {line.product_type}"
            if notes.first("unclaimed", line.product_type):
                log.warning("no handler for product type", product_type=line.product_type)
            return reason
        return None

    def _allocate(
        self,
        line: BillingLineItem,
        route: Route,
        context: ResolveContext,
        usage: Mapping[MetricQuery, UsageTable],
        day: dt.date,
        *,
        gaps: UsageGaps | None = None,
    ) -> tuple[object | None, str]:
        """Resolve and allocate one line; ``(result, "")`` or ``(None, reason)``.

        With ``gaps`` (the line's usage is unavailable) the resolved identities share
        the line by the gaps' fallback instead of the route's allocator.
        """
        try:
            resolution = _resolve(route, line, context)
        except Exception as exc:  # plugin code may raise anything; line goes to UNALLOCATED
            return None, f"resolver_error: {type(exc).__name__}: {exc}"
        if not isinstance(resolution, IdentityResolution):
            return None, f"resolver_error: returned {type(resolution).__name__}"
        if gaps is not None:
            return allocate_unavailable(line, resolution.identities, gaps), ""
        rid = line.resource_id
        line_usage: dict[str, Mapping[str, int]] = {}
        for query in route.queries:
            table = usage.get(query)
            line_usage[query.key] = (
                table.get((day, rid), _EMPTY) if table is not None and rid is not None else _EMPTY
            )
        ctx = AllocationContext(
            tenant_id=self.tenant_id,
            line=line,
            identities=resolution.identities,
            principal_map=resolution.principal_map,
            usage=line_usage,
            params=route.params,
            reason=resolution.reason,
        )
        allocator = route.allocator
        if allocator is None:  # pragma: no cover - excluded by _problem
            return None, "no allocator"
        try:
            return allocator(ctx), ""
        except Exception as exc:  # plugin code may raise anything; line goes to UNALLOCATED
            return None, f"allocator_error: {type(exc).__name__}: {exc}"


def _resolve(route: Route, line: BillingLineItem, context: ResolveContext) -> object:
    """Call the resolver override, else the handler, else use the date's identities.

    Typed ``object``: plugin code is checked, not trusted.
    """
    if route.resolver is not None:
        return route.resolver(line, context)
    if route.handler is not None:
        return route.handler.resolve_identities(line, context)
    return IdentityResolution(identities=context["cached_identities"])


def _rows_of(  # noqa: PLR0917  (the row's parts, in the row's order)
    tenant: str,
    day: dt.date,
    line: BillingLineItem,
    parts: Sequence[Part],
    idents: list[str],
    amounts: list[int],
) -> Iterator[ChargebackRow]:
    """The chargeback rows of one line's checked parts, built in C (no Python-level
    ``__new__`` per row)."""
    return map(
        _new_row,
        zip(
            repeat(tenant),
            repeat(day),
            repeat(line.line_id),
            idents,
            repeat(line.product_type),
            repeat(line.product_category),
            repeat(line.resource_id),
            repeat(line.env_id),
            map(_COST_TYPE, parts),
            map(_RULE, parts),
            amounts,
            map(_REASON, parts),
        ),
    )


def _unallocated_row(
    tenant: str, day: dt.date, line: BillingLineItem, rule: str, reason: str
) -> ChargebackRow:
    return ChargebackRow(
        tenant,
        day,
        line.line_id,
        UNALLOCATED,
        line.product_type,
        line.product_category,
        line.resource_id,
        line.env_id,
        _UNALLOCATED,
        rule,
        line.amount,
        reason,
    )


_ENGINE_RULES = ("source_error", "allocator_error", "resolver_error")


def _rule_for(reason: str) -> str:
    """Name the engine rule that sent a whole line to UNALLOCATED, from its reason."""
    kind = reason.split(":", 1)[0]
    return kind if kind in _ENGINE_RULES else "no_handler"


def _log_once(notes: RunNotes, kind: str, product_type: str, reason: str) -> None:
    if notes.first(kind, product_type):
        log.error("allocation failed", product_type=product_type, reason=reason)


_new_row = cast(Callable[[tuple[object, ...]], ChargebackRow], partial(_new, ChargebackRow))
"""Build a :class:`ChargebackRow` from its twelve values in C (no Python frame per row)."""
