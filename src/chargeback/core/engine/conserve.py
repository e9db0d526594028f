"""The check every allocator's result passes: parts that conserve the line, or the
difference on ``UNALLOCATED`` with a reason (DESIGN §5). Used by the dispatcher
(:mod:`chargeback.core.engine.allocation`) for every line."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from chargeback.core.models import (
    UNALLOCATED,
    Allocation,
    AllocationResult,
    BillingLineItem,
    CostType,
)

__all__ = ["Part", "checked", "merged"]

_UNALLOCATED = str(CostType.UNALLOCATED)
_IDENT, _AMOUNT = itemgetter(0), itemgetter(1)
_SEQUENCES = (list, tuple)
_REASON_TYPES = {str, type(None)}

Part = tuple[str, int, str, str, str | None]


def checked(
    line: BillingLineItem, result: object
) -> tuple[Sequence[Part], str | None, list[str], list[int]]:
    """Validate an allocator's result; return conserving parts and an error, if any.

    Parts to the same identity with the same cost type, rule and reason are merged
    and zero parts dropped, so a line never has duplicate rows.

    The common case (well-formed ``Allocation`` parts with ``str`` ids, cost types,
    rules and reasons, distinct keys, no zero and no UNALLOCATED part, summing to the
    line) is checked with C-level passes and returns the parts as they are; anything
    else (``CostType`` members included) takes :func:`_merged`, which converts them.
    Also returns the parts' identity ids and amounts (the caller's row columns).
    """
    if type(result) is not AllocationResult:
        return _with_columns(*merged(line, result))
    parts = result.allocations
    if not parts or type(parts) not in _SEQUENCES or set(map(type, parts)) != {Allocation}:
        return _with_columns(*merged(line, result))
    idents, amounts, cost_types, rules, reasons = zip(*parts, strict=True)  # columns, in C
    if (
        set(map(type, idents)) != {str}
        or "" in idents
        or UNALLOCATED in idents
        or set(map(type, amounts)) != {int}
        or sum(amounts) != line.amount
        or 0 in amounts
        or set(map(type, cost_types)) != {str}
        or set(map(type, rules)) != {str}
        or not set(map(type, reasons)) <= _REASON_TYPES
        # Distinct identities make distinct keys; only a line charged to an identity
        # twice (a usage and a shared part) needs the whole keys compared.
        or (
            len(set(idents)) != len(parts)
            and len(set(zip(idents, cost_types, rules, reasons, strict=True))) != len(parts)
        )
    ):
        return _with_columns(*merged(line, result))
    return parts, None, list(idents), list(amounts)


def _with_columns(
    parts: list[Part], error: str | None
) -> tuple[list[Part], str | None, list[str], list[int]]:
    return parts, error, list(map(_IDENT, parts)), list(map(_AMOUNT, parts))


def merged(line: BillingLineItem, result: object) -> tuple[list[Part], str | None]:
    """The general case of :func:`_checked`: validate part by part, merge, drop zeros."""
    if not isinstance(result, AllocationResult):
        reason = f"allocator_error: returned {type(result).__name__}, not AllocationResult"
        return [(UNALLOCATED, line.amount, _UNALLOCATED, "allocator_error", reason)], reason
    merged: dict[tuple[str, str, str, str | None], int] = {}
    total = 0
    for part in result.allocations:
        problem = _part_problem(part)
        if problem is not None:
            reason = f"allocator_error: {problem}"
            return [(UNALLOCATED, line.amount, _UNALLOCATED, "allocator_error", reason)], reason
        ident, amount, cost_type, part_rule, why = part
        if ident == UNALLOCATED and not why:
            why = f"{part_rule}: no reason given"
        key = (ident, str(cost_type), str(part_rule), why)
        merged[key] = merged.get(key, 0) + amount
        total += amount
    error: str | None = None
    if total != line.amount:
        error = f"allocator_error: parts sum to {total}, line amount is {line.amount}"
        key = (UNALLOCATED, _UNALLOCATED, "allocator_error", error)
        merged[key] = merged.get(key, 0) + line.amount - total
    parts = [(k[0], v, k[1], k[2], k[3]) for k, v in merged.items() if v]
    return parts, error


def _part_problem(part: object) -> str | None:
    """Return what is wrong with one allocation part, or ``None``."""
    if not isinstance(part, tuple) or len(part) != 5:
        return f"part {part!r:.60} is not an Allocation"
    ident, amount = part[0], part[1]
    if not isinstance(ident, str) or not ident:
        return f"identity id {ident!r} is empty or not a string"
    if type(amount) is not int:
        return f"amount {amount!r} is not an int of minor units"
    reason = part[4]
    if reason is not None and not isinstance(reason, str):
        return f"reason {reason!r:.60} is not text"
    return None
