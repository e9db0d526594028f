"""The PromQL of the generic metrics plugin: a series selector and the day's function.

Every expression is evaluated per exact UTC day (see
:mod:`chargeback.core.sources.day_range`), so one request answers every day of the run:

- ``gauge_average``: each series' average over the day's samples;
- ``increase``: each counter series' last sample of the day minus its last sample of
  the day before (exact, no extrapolation; a day, or the day before, without samples
  has no value, and a counter that went down gives a negative value).

A quantity is the sum over the series, sent with the smallest series value of the day
in the same answer (:func:`~chargeback.core.sources.day_range.sum_and_smallest`), so a
counter that went down is seen even where the others' growth hides it in the sum.
"""

from __future__ import annotations

from typing import Literal

from chargeback.core.sources.day_range import DAY_WINDOW, sum_and_smallest

__all__ = [
    "Kind",
    "day_values",
    "grouped",
    "presence",
    "quantity",
]

Kind = Literal["gauge_average", "increase"]


def day_values(kind: Kind, select: str) -> str:
    """The day's value of every series of ``select``."""
    if kind == "gauge_average":
        return f"avg_over_time({select}[{DAY_WINDOW}])"
    window = f"{select}[{DAY_WINDOW}]"
    return f"(last_over_time({window}) - last_over_time({window} offset 1d))"


def grouped(kind: Kind, select: str, label: str) -> str:
    """The day's value of ``select`` summed per value of ``label`` (the usage)."""
    return f"sum by ({label}) ({day_values(kind, select)})"


def quantity(kind: Kind, select: str) -> str:
    """The day's sum over the series of ``select`` and, apart, the smallest series value."""
    return sum_and_smallest(day_values(kind, select))


def presence(select: str, label: str) -> str:
    """One series per value of ``label`` on each day ``select`` has samples with it."""
    return f"count by ({label}) (last_over_time({select}[{DAY_WINDOW}]))"
