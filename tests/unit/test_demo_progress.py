"""The demo's progress lines: the counter is the date's place in the window (issue 16)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io

from chargeback.core.models import UNALLOCATED, ChargebackRow
from chargeback.demo_output import Progress

FIRST = dt.date(2026, 3, 1)


def rows(day: dt.date, amount: int) -> list[ChargebackRow]:
    return [ChargebackRow("t", day, "l1", UNALLOCATED, "P", "C", None, None, "usage", "r",
                          amount, "why")]  # fmt: skip


def test_counter_never_passes_the_total_and_names_each_date() -> None:
    """Out-of-order, repeated and out-of-window dates: [i/N] is the date's place, never N+1."""
    out = io.StringIO()
    progress = Progress(out, 3, FIRST)
    days = [FIRST, FIRST + dt.timedelta(days=2), FIRST + dt.timedelta(days=1), FIRST,
            FIRST - dt.timedelta(days=10)]  # fmt: skip
    for day in days:
        asyncio.run(progress("t", day, rows(day, 1_000_000_000)))
    lines = out.getvalue().splitlines()
    labels = [line.split("]")[0].strip() + "]" for line in lines]
    # The third day waits for the second: the lines come in date order.
    assert labels == ["[1/3]", "[2/3]", "[3/3]", "[1/3]", "[rerun]"]
    assert [line.endswith("(again)") for line in lines] == [False, False, False, True, False]
    printed = [days[0], days[2], days[1], days[3], days[4]]
    assert all(str(day) in line for day, line in zip(sorted(days[:3]) + printed[3:], lines,
                                                     strict=True))  # fmt: skip


def test_a_date_that_never_comes_holds_the_others_briefly() -> None:
    """Dates after a missing one are held for at most two lines, then printed in order."""
    out = io.StringIO()
    progress = Progress(out, 5, FIRST)
    for offset in (1, 2, 3):  # the first day never comes (nothing to calculate)
        asyncio.run(progress("t", FIRST + dt.timedelta(days=offset), rows(FIRST, 1)))
    assert [line.split("]")[0].strip() for line in out.getvalue().splitlines()] == [
        "[2/5",
        "[3/5",
        "[4/5",
    ]
    asyncio.run(progress("t", FIRST + dt.timedelta(days=4), rows(FIRST, 1)))
    progress.flush()
    assert out.getvalue().splitlines()[-1].lstrip().startswith("[5/5]")
