"""What ``chargeback demo`` prints while it backfills: the progress emitter's lines and
the amounts in them (see :mod:`chargeback.demo`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import TextIO

from chargeback.core.models import UNALLOCATED, ChargebackRow
from chargeback.core.money import to_decimal

__all__ = ["Progress", "money", "share"]

_HELD = 2
"""Lines held for an earlier date at most (the engine has two commits in flight)."""


def money(minor: int) -> str:
    """An amount of minor units in currency units with two decimals and separators."""
    return f"{to_decimal(minor).quantize(Decimal('0.01')):,}"


def share(part: int, whole: int) -> str:
    """``part`` as a percentage of ``whole`` with one decimal (``-`` when whole is 0)."""
    return f"{(100 * Decimal(part) / Decimal(whole)).quantize(Decimal('0.1'))}%" if whole else "-"


class Progress:
    """The ``demo_progress`` emitter: one line per emitted date, in date order.

    The counter is the date's place in the backfill window (``first`` is its first
    day), so it never passes the total. Dates commit two at a time and may be emitted
    out of order: a line waits until the dates before it were printed, or until
    :data:`_HELD` lines wait (an earlier date is not coming soon), or :meth:`flush`. A
    date emitted again (a rerun, a retried emit) is printed at once and says so.
    """

    def __init__(self, out: TextIO, total: int, first: dt.date) -> None:
        self.out = out
        self.total = total
        self.first = first
        self.seen: set[dt.date] = set()
        self._next = first
        self._held: dict[dt.date, str] = {}

    def label(self, day: dt.date) -> str:
        """``[ 3/30]`` for the window's third day; ``[rerun]`` for a day outside it."""
        place = (day - self.first).days + 1
        width = len(str(self.total))
        if 1 <= place <= self.total:
            return f"[{place:>{width}}/{self.total}]"
        return "[rerun]".rjust(2 * width + 3)

    async def __call__(
        self, tenant_id: str, day: dt.date, rows: Sequence[ChargebackRow], /
    ) -> None:
        again = day in self.seen
        self.seen.add(day)
        cost = sum(r.amount for r in rows)
        unallocated = sum(r.amount for r in rows if r.identity_id == UNALLOCATED)
        line = (
            f"  {self.label(day)} {day}  {len(rows):>6} rows"
            f"  cost {money(cost):>12}  unallocated {share(unallocated, cost):>6}"
            + ("  (again)" if again else "")
        )
        if again or day < self._next:
            self._print(line)
            return
        self._held[day] = line
        while self._next in self._held:
            self._print(self._held.pop(self._next))
            self._next += dt.timedelta(days=1)
        if len(self._held) > _HELD:
            self.flush()

    def flush(self) -> None:
        """Print every held line, in date order."""
        for day in sorted(self._held):
            self._print(self._held.pop(day))
            self._next = max(self._next, day + dt.timedelta(days=1))

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)
