"""The generic allocation rules (DESIGN §10) as pure functions.

Every function takes an :class:`~chargeback.core.models.AllocationContext` and
returns parts that sum to the line's amount exactly (they only use
:func:`~chargeback.core.money.split` and :func:`~chargeback.core.money.split_even`).
Each part carries a ``cost_type`` and the name of the rule that produced it:

==========================  ===========================================================
rule name                   meaning
==========================  ===========================================================
``<configured name>``       the configured rule applied normally (e.g.
                            ``kafka_network_usage``, ``connector_owner``)
``even_split_no_usage``     a usage rule found no usage: even over active principals
``no_identities``           nobody could be charged: UNALLOCATED with the reason
``unknown_principal``       usage by principals not in the inventory (when the rule
                            sends those to UNALLOCATED)
``fallback_unallocated``    no handler claims the product type
==========================  ===========================================================

Billing lines with ``error`` set (malformed rows) never reach these functions: the
engine charges them to UNALLOCATED with the reason ``source_error: ...``.

Usage principals are mapped through ``principal_map`` (e.g. API key -> owner) and
their values summed per payer. A principal in no inventory is charged as itself
(a real principal id the identity listing did not show), unless the rule sends
such usage to UNALLOCATED (``unknown_to_unallocated``: a name that is not an
identity, such as a Flink statement's).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from functools import partial
from itertools import repeat
from typing import NamedTuple

from chargeback.core.models import (
    UNALLOCATED,
    Allocation,
    AllocationContext,
    AllocationParams,
    AllocationResult,
    CostType,
)
from chargeback.core.money import split, split_even

__all__ = [
    "EVEN_NO_USAGE",
    "FALLBACK",
    "NO_IDENTITIES",
    "UNKNOWN_PRINCIPAL",
    "UsageMemo",
    "allocate_even",
    "allocate_owner",
    "allocate_unallocated",
    "allocate_usage",
]

EVEN_NO_USAGE = "even_split_no_usage"
NO_IDENTITIES = "no_identities"
UNKNOWN_PRINCIPAL = "unknown_principal"
FALLBACK = "fallback_unallocated"

# The parts carry plain str cost types, which the engine's check accepts as they are
# (CostType members, from a plugin's own allocator, are converted part by part), and
# are built in C. Both are the core's own business: a plugin using these functions or
# writing its own allocator need not know. What each pays: bench/README.md, "building
# blocks" (bench/alloc_fastpath.py).
_USAGE = str(CostType.USAGE)
_SHARED = str(CostType.SHARED)
_UNALLOCATED_TYPE = str(CostType.UNALLOCATED)
_allocations = partial(map, partial(tuple.__new__, Allocation))
"""Build ``Allocation`` tuples from ``(id, amount, cost_type, rule, reason)`` in C."""


_PART_AMOUNT = operator.itemgetter(1)


def _nonzero(parts: list[Allocation]) -> list[Allocation]:
    """Drop zero parts, but keep one so every line leaves a row behind."""
    if 0 not in map(_PART_AMOUNT, parts):  # one pass in C
        return parts
    kept = [p for p in parts if p.amount != 0]
    return kept or parts[:1]


def _even(amount: int, ids: Iterable[str], cost_type: str, rule: str) -> list[Allocation]:
    ordered = ids if isinstance(ids, tuple) else sorted(ids)  # IdentitySet.ids is sorted
    amounts = split_even(amount, len(ordered))
    return list(_allocations(zip(ordered, amounts, repeat(cost_type), repeat(rule), repeat(None))))


def _nobody(ctx: AllocationContext, default: str) -> AllocationResult:
    return AllocationResult.unallocated(ctx.line, NO_IDENTITIES, ctx.reason or default)


class _Basis(NamedTuple):
    """What a usage split needs besides the amount: the same for every line of a
    resource and day that weighs the same metrics."""

    payers: list[str]  # sorted
    weights: list[int]  # per payer, then the unknown principals' weight if any
    unknown_weight: int
    active: tuple[str, ...]  # sorted: resolved identities plus every payer seen
    total: int


def _basis(
    ctx: AllocationContext, params: AllocationParams, unknown_to_unallocated: bool
) -> _Basis:
    pmap = ctx.principal_map
    known = ctx.identities
    weights: dict[str, int] = {}
    unknown_weight = 0
    seen: set[str] = set()
    for key in params.metric_keys:
        for principal, value in ctx.usage.get(key, {}).items():
            payer = pmap.get(principal, principal)
            if unknown_to_unallocated and principal not in pmap and payer not in known:
                unknown_weight += max(value, 0)
                continue
            seen.add(payer)
            if value > 0:
                weights[payer] = weights.get(payer, 0) + value
    payers = sorted(weights)
    ws = [weights[p] for p in payers]
    if unknown_weight:
        ws.append(unknown_weight)
    active = tuple(sorted(set(known.ids) | seen))
    return _Basis(payers, ws, unknown_weight, active, sum(ws))


UsageMemo = dict[tuple[object, ...], tuple[tuple[object, ...], _Basis]]
"""Bases of recent lines, by the identity of their inputs (see :func:`allocate_usage`)."""

_MEMO_SIZE = 64


def _cached_basis(
    ctx: AllocationContext,
    params: AllocationParams,
    unknown_to_unallocated: bool,
    memo: UsageMemo,
) -> _Basis:
    inputs = (
        *(ctx.usage.get(key) for key in params.metric_keys),
        ctx.principal_map,
        ctx.identities,
    )
    key = (*map(id, inputs), params.metric_keys, unknown_to_unallocated, ctx.line.date)
    hit = memo.get(key)
    # The entry holds its inputs, so no other object can have their ids meanwhile.
    if hit is not None and all(map(operator.is_, hit[0], inputs)):
        return hit[1]
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    basis = _basis(ctx, params, unknown_to_unallocated)
    memo[key] = (inputs, basis)
    return basis


def allocate_usage(
    ctx: AllocationContext,
    params: AllocationParams,
    *,
    unknown_to_unallocated: bool = False,
    memo: UsageMemo | None = None,
) -> AllocationResult:
    """Split by usage (``params.usage_ratio`` of the line), the rest evenly.

    The usage part is split by the summed values of ``params.metric_keys`` per payer;
    the shared part evenly over the active principals (the resolved identities plus
    every payer seen in the usage). Without usage the whole line is split evenly
    over the active principals (``even_split_no_usage``); with nobody at all it goes
    to UNALLOCATED (``no_identities``).

    Args:
        ctx: the line, its resolved identities, principal map and usage.
        params: the rule's name, usage ratio and metric keys.
        unknown_to_unallocated: usage of principals that are neither mapped nor
            resolved goes to UNALLOCATED (``unknown_principal``), not to themselves.
        memo: a dict the caller keeps between lines. The lines of one resource and
            day (~5 of them) share their usage tables, principal map and identities
            (the engine and the handlers hand out the same objects), so the weights
            are summed and sorted once for them, not per line. Entries are found by
            the identity of those inputs and the line's date; the inputs of a date
            are never mutated once its allocation has started.
    """
    if memo is None:
        basis = _basis(ctx, params, unknown_to_unallocated)
    else:
        basis = _cached_basis(ctx, params, unknown_to_unallocated, memo)
    amount = ctx.line.amount
    if basis.total == 0:
        if not basis.active:
            return _nobody(ctx, f"no usage and no active principals for {ctx.line.resource_id}")
        return AllocationResult(_nonzero(_even(amount, basis.active, _SHARED, EVEN_NO_USAGE)))
    usage_part, shared_part = _usage_and_shared(amount, params, bool(basis.active))
    parts = _usage_parts(usage_part, basis, params.rule)
    if shared_part:
        parts.extend(_even(shared_part, basis.active, _SHARED, params.rule))
    if not parts:
        parts = _even(amount, basis.active or (UNALLOCATED,), _SHARED, params.rule)
    return AllocationResult(_nonzero(parts))


def _usage_and_shared(amount: int, params: AllocationParams, anyone: bool) -> tuple[int, int]:
    """Cut ``amount`` into its usage and shared parts by ``params.usage_ratio``.

    With nobody active to share with, the whole line is the usage part.
    """
    ratio = params.usage_ratio
    numerator, denominator = ratio.numerator, ratio.denominator
    if numerator >= denominator or not anyone:
        return amount, 0
    if numerator <= 0:
        return 0, amount
    usage_part, shared_part = split(amount, [numerator, denominator - numerator])
    return usage_part, shared_part


def _usage_parts(usage_part: int, basis: _Basis, rule: str) -> list[Allocation]:
    """Split ``usage_part`` by the basis' weights; unknown principals' share to UNALLOCATED."""
    if not usage_part:
        return []
    amounts = split(usage_part, basis.weights)
    parts = list(
        _allocations(zip(basis.payers, amounts, repeat(_USAGE), repeat(rule), repeat(None)))
    )
    if basis.unknown_weight:
        parts.append(
            Allocation(
                UNALLOCATED, amounts[-1], _UNALLOCATED_TYPE, UNKNOWN_PRINCIPAL,
                "usage by principals that are not in the inventory",
            )
        )  # fmt: skip
    return parts


def allocate_even(ctx: AllocationContext, params: AllocationParams) -> AllocationResult:
    """Split the line evenly over the resolved identities."""
    if not ctx.identities:
        return _nobody(ctx, f"no active identities for {ctx.line.resource_id or 'the tenant'}")
    return AllocationResult(
        _nonzero(_even(ctx.line.amount, ctx.identities.ids, _SHARED, params.rule))
    )


def allocate_owner(ctx: AllocationContext, params: AllocationParams) -> AllocationResult:
    """Charge the resource's owner (evenly if the resolution found several)."""
    if not ctx.identities:
        return _nobody(ctx, f"no owner known for {ctx.line.resource_id}")
    return AllocationResult(
        _nonzero(_even(ctx.line.amount, ctx.identities.ids, _USAGE, params.rule))
    )


def allocate_unallocated(ctx: AllocationContext, params: AllocationParams) -> AllocationResult:
    """Charge UNALLOCATED, with the configured rule's name as the reason."""
    return AllocationResult.unallocated(
        ctx.line, params.rule, ctx.reason or f"{ctx.line.product_type} is configured unallocated"
    )
