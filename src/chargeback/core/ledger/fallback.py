"""How a line whose usage is unavailable is split (rule ``usage_unavailable``, DESIGN §13).

The usage a line's rule needs is neither in the ledger nor at the source any more
(older than the source's retention, never collected). The line is not split as if
nobody used the resource: it gets the rule ``usage_unavailable``, the reason on every
row, and the configured fallback:

- ``even`` (default): evenly over the identities the handler resolved for the line
  (those active that day), as cost type ``shared``;
- ``unallocated``: wholly to UNALLOCATED.

With nobody to share it, the line goes to UNALLOCATED either way.
"""

from __future__ import annotations

from itertools import repeat

from chargeback.core.ledger.records import UNAVAILABLE_RULE, UsageGaps
from chargeback.core.models import (
    Allocation,
    AllocationResult,
    BillingLineItem,
    CostType,
    IdentitySet,
)
from chargeback.core.money import split_even

__all__ = ["allocate_unavailable"]

_SHARED = str(CostType.SHARED)


def allocate_unavailable(
    line: BillingLineItem, identities: IdentitySet, gaps: UsageGaps
) -> AllocationResult:
    """Split ``line`` by ``gaps.fallback`` over ``identities``, with ``gaps.reason``."""
    reason = gaps.reason or "usage unavailable"
    ids = identities.ids
    if gaps.fallback == "unallocated" or not ids:
        if not ids and gaps.fallback != "unallocated":
            reason = f"{reason}; nobody active to share it"
        return AllocationResult.unallocated(line, UNAVAILABLE_RULE, reason)
    amounts = split_even(line.amount, len(ids))
    parts = [
        Allocation(*part)
        for part in zip(ids, amounts, repeat(_SHARED), repeat(UNAVAILABLE_RULE), repeat(reason))
        if part[1] != 0
    ]
    if not parts:  # a zero line still leaves one row behind
        parts = [Allocation(ids[0], 0, _SHARED, UNAVAILABLE_RULE, reason)]
    return AllocationResult(parts)
