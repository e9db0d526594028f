"""Deterministic randomness: every random choice is a pure function of its inputs.

Never use Python's ``hash()`` (salted per process); everything goes through blake2b.
"""

from __future__ import annotations

import hashlib
import random
import string
from datetime import UTC, date, datetime

__all__ = ["digest_hex", "fmt_ts", "rng", "unit_float"]

_ALNUM_LOWER = string.ascii_lowercase + string.digits
_ALNUM_UPPER = string.ascii_uppercase + string.digits


def _digest(parts: tuple[object, ...], size: int) -> bytes:
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=size).digest()


def rng(*parts: object) -> random.Random:
    """A ``random.Random`` seeded from a stable hash of *parts*."""
    return random.Random(int.from_bytes(_digest(parts, 16), "big"))


def digest_hex(*parts: object, size: int = 8) -> str:
    """A stable hex digest of *parts* (``2 * size`` characters)."""
    return _digest(parts, size).hex()


def unit_float(*parts: object) -> float:
    """A stable pseudo-random float in ``[0, 1)`` from *parts*."""
    return int.from_bytes(_digest(parts, 8), "big") / 2**64


def short_id(r: random.Random, length: int = 6, *, upper: bool = False) -> str:
    """A random alphanumeric string drawn from *r*."""
    alphabet = _ALNUM_UPPER if upper else _ALNUM_LOWER
    return "".join(r.choice(alphabet) for _ in range(length))


def fmt_ts(t: datetime) -> str:
    """RFC 3339 UTC timestamp with a ``Z`` suffix and whole seconds."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_start(d: date) -> datetime:
    """Midnight UTC at the start of *d*."""
    return datetime(d.year, d.month, d.day, tzinfo=UTC)
