"""Reading numbers and days out of API payloads exactly (usage and billing sources).

- :func:`parse_decimal`: a JSON number or numeric string as a :class:`~decimal.Decimal`
  (floats through their shortest ``repr``, so ``0.1`` is ``Decimal("0.1")``);
- :func:`usage_value`: a usage sample as the integer weight allocation uses (whole
  units after an optional scale, rounded half to even);
- :func:`day_of`: the UTC day of an ISO timestamp or a Unix time.
"""

from __future__ import annotations

import datetime as dt
import functools
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

__all__ = ["MAX_USAGE", "day_of", "parse_decimal", "usage_value"]


def parse_decimal(value: object) -> Decimal | None:
    """Read an API number (JSON number or numeric string) exactly; ``None`` if it is not one.

    Floats go through their shortest ``repr``; NaN and infinities are not numbers.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        dec = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return dec if dec.is_finite() else None


_EXACT_FLOAT = float(2**53)
"""Below this, an integral float's shortest repr is its exact integer (no exponent)."""

MAX_USAGE = 2**63 - 1
"""The largest usage weight a store holds (a 64-bit integer, as the usage ledger keeps it);
a sample beyond it (``1e999``) is no plausible measure of anything and is not a number."""


def usage_value(value: object, scale: int = 1) -> int | None:
    """Return a usage sample times ``scale`` as an integer; ``None`` if it is not a number.

    Byte counts arrive as integers or integral floats (``1.2E9``) and stay exact;
    fractional values (Flink CFU-minutes) are scaled first (``scale`` 1000 keeps three
    decimals) and rounded half to even. A weight beyond :data:`MAX_USAGE` either way is
    ``None`` too: it could be neither stored nor believed.
    """
    if type(value) is int:  # byte counts sent as integers: exact as they are
        return _bounded(value * scale)
    if type(value) is float and -_EXACT_FLOAT < value < _EXACT_FLOAT and value.is_integer():
        return int(value) * scale  # byte counts as the API sends them, 1.2E9 as 1200000000.0
    dec = parse_decimal(value)
    if dec is None:
        return None
    if abs(dec) > MAX_USAGE:  # before scaling: 1e999 would take a while to expand
        return None
    return _bounded(int((dec * scale).to_integral_value(rounding=ROUND_HALF_EVEN)))


def _bounded(weight: int) -> int | None:
    return weight if -MAX_USAGE <= weight <= MAX_USAGE else None


def day_of(timestamp: object) -> dt.date | None:
    """Return the UTC day of an ISO timestamp or a Unix time; ``None`` if it is neither."""
    if isinstance(timestamp, str):
        return _day_of_text(timestamp)
    if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).date()
    return None


@functools.lru_cache(maxsize=4096)
def _day_of_text(timestamp: str) -> dt.date | None:
    """The UTC day of an ISO timestamp; cached, since every group of a query repeats
    the same few timestamps (one per day)."""
    try:
        return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).astimezone(dt.UTC).date()
    except ValueError:
        return None
