"""Allocation sets from grouped rows: exact sums, deterministic order, pages (DESIGN §5, §15).

A :class:`~chargeback.core.query.source.QuerySource` returns the chargeback amounts
grouped by (bucket day, the aggregate's key, cost type); :func:`build_sets` puts each
group into the step's set that holds its day, sums exactly (integers of minor units)
and sorts. Every set carries the billed and allocated totals of its calculated days,
so an answer reconciles by itself: with no filter, the entries of a set sum to its
``allocated`` total, which equals ``billed`` (the engine's promise).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from chargeback.core.models import CostType
from chargeback.core.query.spec import AllocationSpec, Sort
from chargeback.core.query.window import Step, Window

__all__ = ["AllocationSet", "Amounts", "DayTotal", "Entry", "GroupRow", "build_sets"]


class GroupRow(NamedTuple):
    """The sum of the rows of one group, as a query source returns it.

    Attributes:
        day: a day of the group's bucket (any day of it: the source may group finer).
        key: the aggregate's dimension values, in the aggregate's order.
        cost_type: the rows' cost type.
        amount: their sum, in minor units.
    """

    day: dt.date
    key: tuple[str, ...]
    cost_type: str
    amount: int


class DayTotal(NamedTuple):
    """A calculated day's totals (minor units), from its stored state."""

    day: dt.date
    billed: int
    allocated: int
    unallocated: int


@dataclass(frozen=True, slots=True)
class Amounts:
    """One entry's money by cost type; ``cost`` is their exact sum.

    ``other`` holds cost types beyond usage, shared and unallocated (a plugin's own).
    """

    cost: int = 0
    usage: int = 0
    shared: int = 0
    unallocated: int = 0
    other: int = 0


@dataclass(frozen=True, slots=True)
class Entry:
    """One key of a set and its amounts."""

    key: tuple[str, ...]
    amounts: Amounts


@dataclass(frozen=True, slots=True)
class AllocationSet:
    """One step of an answer.

    Attributes:
        window: the set's days.
        entries: this page of the entries, sorted.
        total_entries: entries before paging.
        selected: the sum of every entry (before paging): what the filters kept.
        billed: the billing lines' total of the calculated days.
        allocated: the chargeback rows' total of those days (equals ``billed``).
        unallocated: the part of ``allocated`` charged to UNALLOCATED.
        calculated_days: the days of the window with a calculation.
        missing_days: the days without one (nothing is known about them yet).
    """

    window: Window
    entries: tuple[Entry, ...]
    total_entries: int
    selected: Amounts
    billed: int
    allocated: int
    unallocated: int
    calculated_days: tuple[dt.date, ...]
    missing_days: tuple[dt.date, ...]


_COLUMN = {CostType.USAGE.value: 1, CostType.SHARED.value: 2, CostType.UNALLOCATED.value: 3}


def _amounts(sums: Sequence[int]) -> Amounts:
    return Amounts(sum(sums), sums[1], sums[2], sums[3], sums[4])


def _sort_key(sort: Sort) -> Callable[[Entry], tuple[int, tuple[str, ...]]]:
    if sort is Sort.COST_DESC:
        return lambda e: (-e.amounts.cost, e.key)
    if sort is Sort.COST_ASC:
        return lambda e: (e.amounts.cost, e.key)
    return lambda e: (0, e.key)


def _bucket_of(starts: Sequence[dt.date], day: dt.date) -> int:
    return max(0, bisect.bisect_right(starts, day) - 1)


def build_sets(
    window: Window,
    step: Step | None,
    groups: Iterable[GroupRow],
    totals: Iterable[DayTotal],
    spec: AllocationSpec,
) -> list[AllocationSet]:
    """Sum ``groups`` into one set per step of ``window`` (one set when ``step`` is None).

    Groups and totals outside the window are ignored.
    """
    buckets = [window] if step is None else step.buckets(window)
    starts = [b.start for b in buckets]
    sums: list[dict[tuple[str, ...], list[int]]] = [{} for _ in buckets]
    for group in groups:
        if not window.start <= group.day < window.end:
            continue
        per_key = sums[_bucket_of(starts, group.day)]
        slot = per_key.get(group.key)
        if slot is None:
            slot = per_key[group.key] = [0, 0, 0, 0, 0]
        slot[_COLUMN.get(group.cost_type, 4)] += group.amount
    day_totals: list[list[DayTotal]] = [[] for _ in buckets]
    for total in totals:
        if window.start <= total.day < window.end:
            day_totals[_bucket_of(starts, total.day)].append(total)
    return [
        _one_set(bucket, per_key, days, spec)
        for bucket, per_key, days in zip(buckets, sums, day_totals, strict=True)
    ]


def _one_set(
    bucket: Window,
    per_key: dict[tuple[str, ...], list[int]],
    days: list[DayTotal],
    spec: AllocationSpec,
) -> AllocationSet:
    entries = sorted(
        (Entry(key, _amounts(slot)) for key, slot in per_key.items()),
        key=_sort_key(spec.sort),
    )
    column_sums = [sum(slot[i] for slot in per_key.values()) for i in range(5)]
    end = None if spec.limit is None else spec.offset + spec.limit
    calculated = {d.day for d in days}
    return AllocationSet(
        window=bucket,
        entries=tuple(entries[spec.offset : end]),
        total_entries=len(entries),
        selected=_amounts(column_sums),
        billed=sum(d.billed for d in days),
        allocated=sum(d.allocated for d in days),
        unallocated=sum(d.unallocated for d in days),
        calculated_days=tuple(sorted(calculated)),
        missing_days=tuple(d for d in bucket.dates() if d not in calculated),
    )
