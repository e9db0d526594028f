"""Exact money: fixed-point integers and the largest-remainder split (DESIGN §5).

Amounts travel through the engine and the database as ``int`` counts of
:data:`MINOR_UNITS_PER_UNIT` (1e-9 of the currency, like ``google.type.Money.nanos``).
``Decimal`` appears only at the edges: parsing a bill and printing a report.

The split is the product's promise: for any amount (positive, zero or negative) and
any non-empty weights, :func:`split` returns parts that sum to the amount exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

__all__ = [
    "MINOR_UNITS_PER_UNIT",
    "NANOS",
    "format_amount",
    "split",
    "split_even",
    "to_decimal",
    "to_minor",
]

NANOS = 9
"""Digits after the decimal point kept in storage."""

MINOR_UNITS_PER_UNIT: int = 10**NANOS
"""Minor units in one unit of the currency (1 USD = 1_000_000_000)."""

_QUANTUM = Decimal(1).scaleb(-NANOS)


def to_minor(value: Decimal | int | str | float) -> int:
    """Convert a currency amount to integer minor units, exactly where possible.

    Floats (JSON numbers from an API) are read through their shortest ``repr``, so
    ``97.2`` becomes exactly 97.2 and not 97.2000000000000028...; anything with more
    than nine decimal places is rounded half-to-even once, here, at the edge.

    Raises:
        ValueError: the value is not a finite number.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got a boolean {value!r}")  # noqa: TRY004  (one error type for bad amounts)
    if isinstance(value, int):
        return value * MINOR_UNITS_PER_UNIT
    try:
        dec = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"expected a decimal number, got {value!r}") from exc
    if not dec.is_finite():
        raise ValueError(f"expected a finite number, got {value!r}")
    return int(dec.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN).scaleb(NANOS))


def to_decimal(minor: int) -> Decimal:
    """Return the exact ``Decimal`` value of an amount in minor units."""
    return Decimal(minor).scaleb(-NANOS)


def format_amount(minor: int, places: int = NANOS) -> str:
    """Format minor units as a plain decimal string with ``places`` decimals (no exponent)."""
    dec = to_decimal(minor)
    if places < NANOS:
        dec = dec.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return f"{dec:.{places}f}"


def split(amount: int, weights: Sequence[int]) -> list[int]:
    """Split ``amount`` in proportion to ``weights`` so that the parts sum to it exactly.

    Largest-remainder method on integers: every part gets ``floor(amount * w / W)``;
    the units left over go, one each, to the parts with the largest fractional
    remainders, ties broken by position (so the result is deterministic). Works for
    negative amounts (credits) too: Python's floor division keeps the leftover
    non-negative. All-zero weights split evenly.

    Args:
        amount: the amount in minor units.
        weights: non-negative integer weights, at least one.

    Raises:
        ValueError: ``weights`` is empty or has a negative weight.
    """
    n = len(weights)
    if n == 0:
        raise ValueError("cannot split an amount over no weights; give at least one weight")
    if n == 1:
        if weights[0] < 0:
            raise ValueError(f"weights must be >= 0, got {weights[0]}")
        return [amount]
    total = 0
    for w in weights:
        if w < 0:
            raise ValueError(f"weights must be >= 0, got {w}")
        total += w
    if total == 0:
        return split_even(amount, n)
    parts: list[int] = []
    remainders: list[int] = []
    allocated = 0
    for w in weights:
        q, r = divmod(amount * w, total)
        parts.append(q)
        remainders.append(r)
        allocated += q
    left = amount - allocated  # 0 <= left < n
    if left:
        order = sorted(range(n), key=lambda i: (-remainders[i], i))
        for i in order[:left]:
            parts[i] += 1
    return parts


def split_even(amount: int, n: int) -> list[int]:
    """Split ``amount`` into ``n`` parts that differ by at most one minor unit.

    The first ``amount mod n`` parts carry the extra unit.

    Raises:
        ValueError: ``n`` is not positive.
    """
    if n <= 0:
        raise ValueError(f"cannot split an amount into {n} parts; need at least one")
    q, r = divmod(amount, n)
    return [q + 1] * r + [q] * (n - r)
