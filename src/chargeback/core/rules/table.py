"""The rule table: each product type's rule, overridable, bound to an allocator.

A plugin declares its defaults as :class:`RuleSpec` values per product type, lets the
operator override them (:class:`RuleOverride`, from the plugin's settings) and asks
the :class:`RuleTable` for the allocator of a line's product type::

    DEFAULTS = {
        "KAFKA_NETWORK_READ": RuleSpec(kind="usage", name="kafka_network_usage",
                                       metrics=("response_bytes",)),
        "SUPPORT": RuleSpec(kind="even", name="org_wide_even"),
    }
    table = RuleTable(DEFAULTS, overrides={"SUPPORT": RuleOverride(rule="unallocated")})
    table.allocator("SUPPORT")  # a RuleAllocator charging UNALLOCATED

The metric keys of a usage rule name the plugin's
:class:`~chargeback.core.models.MetricQuery` keys; the table does not interpret them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import structlog

from chargeback.core.models import AllocationContext, AllocationParams, AllocationResult
from chargeback.core.rules.allocators import (
    FALLBACK,
    UsageMemo,
    allocate_even,
    allocate_owner,
    allocate_unallocated,
    allocate_usage,
)

__all__ = [
    "FallbackAllocator",
    "RuleAllocator",
    "RuleKind",
    "RuleOverride",
    "RuleSpec",
    "RuleTable",
]

_log = structlog.get_logger(__name__)

RuleKind = Literal["usage", "even", "owner", "unallocated"]
"""Allocation rules a product type can be configured with.

- ``usage``: ``usage_ratio`` of the line by the metric values per principal, the rest
  evenly over the active principals (ratio 1: all by usage).
- ``even``: evenly over the identities the handler resolved.
- ``owner``: the resource's owner (evenly if the resolution found several).
- ``unallocated``: everything to UNALLOCATED with a reason.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSpec:
    """A product type's rule: kind, recorded name, usage ratio and metric keys.

    Attributes:
        kind: which allocation function splits the line.
        name: the rule name recorded on every row the rule produces.
        ratio: the part of the line split by usage (``usage`` rules); the rest is shared.
        metrics: the metric keys that weigh the usage part (``usage`` rules).
    """

    kind: RuleKind
    name: str
    ratio: Fraction = Fraction(1)
    metrics: tuple[str, ...] = ()

    def params(self) -> AllocationParams:
        """Return the rule as the engine's :class:`AllocationParams`."""
        return AllocationParams(rule=self.name, usage_ratio=self.ratio, metric_keys=self.metrics)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleOverride:
    """An operator's change to one product type's default rule (any field may be omitted).

    Attributes:
        rule: another kind of rule; the rows then record ``<product type>_<kind>``.
        ratio: another usage ratio.
        metrics: other metric keys.
    """

    rule: RuleKind | None = None
    ratio: Fraction | None = None
    metrics: tuple[str, ...] | None = None

    def apply(
        self, product_type: str, spec: RuleSpec, *, default_metrics: tuple[str, ...] = ()
    ) -> RuleSpec:
        """Return ``spec`` with this override applied.

        Args:
            product_type: the line type (names a rule whose kind changed).
            spec: the default rule.
            default_metrics: the metric keys of a ``usage`` rule that names none.
        """
        kind = self.rule or spec.kind
        name = spec.name if kind == spec.kind else f"{product_type.lower()}_{kind}"
        metrics = self.metrics if self.metrics is not None else spec.metrics
        if kind == "usage" and not metrics:
            metrics = default_metrics
        ratio = spec.ratio if self.ratio is None else self.ratio
        return RuleSpec(kind=kind, name=name, ratio=ratio, metrics=metrics)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleAllocator:
    """A :class:`~chargeback.core.plugin.protocols.CostAllocator` bound to a configured rule.

    The rule and its parameters come from the rule table (defaults per product type,
    overridable); ``ctx.params`` from the engine is not consulted.
    """

    kind: RuleKind
    params: AllocationParams
    unknown_to_unallocated: bool = False
    memo: UsageMemo = field(default_factory=dict, compare=False, repr=False)
    """Shared by the rules of one table: its lines of a resource and day weigh the
    same usage whatever their product type (see :func:`allocate_usage`)."""

    def __call__(self, ctx: AllocationContext, /) -> AllocationResult:
        """Split ``ctx.line`` by this rule."""
        if self.kind == "usage":
            return allocate_usage(
                ctx,
                self.params,
                unknown_to_unallocated=self.unknown_to_unallocated,
                memo=self.memo,
            )
        if self.kind == "even":
            return allocate_even(ctx, self.params)
        if self.kind == "owner":
            return allocate_owner(ctx, self.params)
        return allocate_unallocated(ctx, self.params)


class RuleTable:
    """The effective rule and allocator of every product type one handler claims.

    Args:
        defaults: the default rule per product type.
        overrides: the operator's overrides per product type (types not in
            ``defaults`` are ignored here; the plugin warns about them).
        default_metrics: metric keys of a ``usage`` override that names none.
        unknown_to_unallocated: see :func:`allocate_usage`.
    """

    __slots__ = ("_allocators", "_specs")

    def __init__(
        self,
        defaults: Mapping[str, RuleSpec],
        *,
        overrides: Mapping[str, RuleOverride] | None = None,
        default_metrics: tuple[str, ...] = (),
        unknown_to_unallocated: bool = False,
    ) -> None:
        overrides = overrides or {}
        self._specs: dict[str, RuleSpec] = {}
        for product_type, spec in defaults.items():
            override = overrides.get(product_type)
            self._specs[product_type] = (
                spec
                if override is None
                else override.apply(product_type, spec, default_metrics=default_metrics)
            )
        memo: UsageMemo = {}
        self._allocators = {
            product_type: RuleAllocator(
                kind=spec.kind,
                params=spec.params(),
                unknown_to_unallocated=unknown_to_unallocated,
                memo=memo,
            )
            for product_type, spec in self._specs.items()
        }

    @property
    def product_types(self) -> Sequence[str]:
        """The product types of the table, in the order of the defaults."""
        return tuple(self._specs)

    def spec(self, product_type: str) -> RuleSpec:
        """Return the effective rule of a product type (``KeyError`` if not in the table)."""
        return self._specs[product_type]

    def get(self, product_type: str) -> RuleSpec | None:
        """Return the effective rule of a product type, or ``None``."""
        return self._specs.get(product_type)

    def allocator(self, product_type: str) -> RuleAllocator:
        """Return the allocator of a product type (``KeyError`` if not in the table)."""
        return self._allocators[product_type]

    def usage_metrics(self, product_type: str) -> tuple[str, ...]:
        """Return the metric keys a product type's usage rule weighs by (``()`` otherwise)."""
        spec = self._specs.get(product_type)
        if spec is None or spec.kind != "usage":
            return ()
        return spec.metrics


class FallbackAllocator:
    """Allocator for product types no handler claims: one warning per type, UNALLOCATED."""

    __slots__ = ("_warned",)

    def __init__(self) -> None:
        self._warned: set[str] = set()

    def __call__(self, ctx: AllocationContext, /) -> AllocationResult:
        """Charge the whole line to UNALLOCATED with the reason."""
        product_type = ctx.line.product_type
        if product_type not in self._warned:
            self._warned.add(product_type)
            _log.warning("product type has no handler", product_type=product_type)
        return AllocationResult.unallocated(
            ctx.line, FALLBACK, f"no allocation rule for product type {product_type}"
        )
