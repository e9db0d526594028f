"""Exact splits of an origin charge's metrics over its allocated charges (FOCUS 1.3 split
cost allocation: allocated charges sum to the origin for every aggregatable metric).

The chargeback parts (integers in nanos, DESIGN §5) are the weights. Each other metric
of the origin (``ListCost``, the quantities, the ratio 1) is split in proportion to
them with the largest-remainder method at :data:`FINE` (1e-15), so its parts sum to
the origin's value exactly and ``ListUnitPrice x PricingQuantity`` still equals each
part's ``ListCost`` far below the validator's 1e-9 tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from chargeback.core.money import split

__all__ = [
    "FINE",
    "FINE_DIGITS",
    "fine_of_decimal",
    "format_fine",
    "format_nanos",
    "split_by",
    "split_many",
]

FINE_DIGITS = 15
FINE = 10**FINE_DIGITS
"""Units per 1 of a finely split metric."""
_FINE_QUANTUM = Decimal(1).scaleb(-FINE_DIGITS)


def fine_of_decimal(value: Decimal) -> int:
    """``value`` in units of 1e-15 (rounded half-even beyond 15 decimals)."""
    return int(value.quantize(_FINE_QUANTUM, rounding=ROUND_HALF_EVEN).scaleb(FINE_DIGITS))


def split_by(total: int, parts: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``parts`` (the allocated amounts), exactly.

    Parts of one sign (what every allocator gives) are the weights of the
    largest-remainder split; all-zero parts split evenly. Parts of mixed signs (a
    custom allocator's) get ``round(total * part / sum)`` each and the rounding rest
    on the largest part, so the sum is still exact.
    """
    if len(parts) == 1:
        return [total]
    if all(p >= 0 for p in parts):
        return split(total, parts)
    if all(p <= 0 for p in parts):
        return split(total, [-p for p in parts])
    whole = sum(parts)
    if whole == 0:
        return split(total, [1] * len(parts))
    out = [(2 * total * p + whole) // (2 * whole) for p in parts]
    biggest = max(range(len(parts)), key=lambda i: abs(parts[i]))
    out[biggest] += total - sum(out)
    return out


def split_many(totals: Sequence[int], parts: Sequence[int]) -> list[list[int]]:
    """:func:`split_by` of each of ``totals`` over the same ``parts``, in one pass.

    The same results as ``[split_by(t, parts) for t in totals]`` (a property test holds
    it to that): the weights are checked and summed once, and each total's
    largest-remainder step shares them. Parts of one sign with a non-zero sum take the
    shared path; any other case is :func:`split_by`'s.
    """
    n = len(parts)
    if n == 1:
        return [[t] for t in totals]
    sign = 1 if all(p >= 0 for p in parts) else -1 if all(p <= 0 for p in parts) else 0
    weights = [p * sign for p in parts]
    whole = sum(weights)
    if sign == 0 or whole == 0:
        return [split_by(t, parts) for t in totals]
    out: list[list[int]] = []
    order = range(n)
    for total in totals:
        shares = [divmod(total * w, whole) for w in weights]
        got = [q for q, _ in shares]
        left = total - sum(got)  # 0 <= left < n
        if left:
            for i in sorted(order, key=lambda i: (-shares[i][1], i))[:left]:
                got[i] += 1
        out.append(got)
    return out


def _format_scaled(value: int, digits: int, *, trim: bool) -> str:
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**digits)
    text = f"{frac:0{digits}d}"
    if trim:
        text = text.rstrip("0")
    return f"{sign}{whole}.{text}" if text else f"{sign}{whole}"


def format_nanos(value: int) -> str:
    """An amount in nanos as a plain decimal (``-0.5``, ``12``), no exponent, exact."""
    return _format_scaled(value, 9, trim=True)


def format_fine(value: int) -> str:
    """A value in 1e-15 units as a plain decimal, exact."""
    return _format_scaled(value, FINE_DIGITS, trim=True)
