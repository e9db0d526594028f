"""What the usage ledger stores, and which days a source can still answer for.

A *cell* is one (date, query, resource): the unit the ledger fetches and stores. A
stored cell holds the usage of every principal that day (an empty mapping when the
source was asked and answered nothing). Queries are stored by :func:`query_id`, the
metric with the labels it is filtered and grouped by, so two handlers asking the same
metric the same way share the stored figures, and a renamed allocation key does not
orphan them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from chargeback.core.models import MetricQuery

__all__ = [
    "NO_GAPS",
    "SETTLE",
    "UNAVAILABLE_RULE",
    "UnavailableFallback",
    "UsageCell",
    "UsageEntry",
    "UsageGaps",
    "UsagePolicy",
    "UsageWindow",
    "query_id",
]

UNAVAILABLE_RULE = "usage_unavailable"
"""The rule of a line whose usage is neither stored nor fetchable any more."""

SETTLE = dt.timedelta(minutes=10)
"""How long after a day ends its usage is taken as complete (the Metrics API makes a
point queryable within about 3 minutes, reference §4.3). A day younger than this is
used as fetched but never stored, so a partial day never becomes the stored truth."""

UnavailableFallback = Literal["even", "unallocated"]
"""How a ``usage_unavailable`` line is split: evenly over the line's active principals,
or wholly to UNALLOCATED."""


def query_id(query: MetricQuery) -> str:
    """The stored name of a query: ``metric|resource label|group-by label``."""
    return f"{query.metric}|{query.resource_label}|{query.group_by}"


class UsageCell(NamedTuple):
    """One (date, query, resource) of the ledger; ``query`` is a :func:`query_id`."""

    day: dt.date
    query: str
    resource_id: str


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """The stored usage of one cell.

    Attributes:
        day: the date.
        query: the query's :func:`query_id`.
        resource_id: the resource the query was filtered by.
        values: principal -> value (integers, as the source gave them); empty when the
            source was asked and had no usage.
        source: which source answered (``metrics_api``, ``prometheus``, ...).
        fetched_at: when it was fetched.
    """

    day: dt.date
    query: str
    resource_id: str
    values: Mapping[str, int]
    source: str
    fetched_at: dt.datetime

    @property
    def cell(self) -> UsageCell:
        """The entry's (date, query, resource)."""
        return UsageCell(self.day, self.query, self.resource_id)


@dataclass(frozen=True, slots=True)
class UsagePolicy:
    """What a plugin says about its usage source (see ``EcosystemPlugin.get_usage_policy``).

    Attributes:
        source: the name stored with every fetched figure.
        retention_days: how many days back the source still answers (``None``: no
            limit known, e.g. a Prometheus that keeps its history).
        fallback: how a line whose usage is unavailable is split.
        label: the source as a reason names it (``the Metrics API``).
    """

    source: str = "metrics"
    retention_days: int | None = None
    fallback: UnavailableFallback = "even"
    label: str = "the usage source"

    def window(self, now: dt.datetime) -> UsageWindow:
        """The days the source can answer for completely at ``now``."""
        now = now.astimezone(dt.UTC)
        if self.retention_days is None:
            first = None
        else:
            edge = now - dt.timedelta(days=self.retention_days)
            first = edge.date()
            if edge.time() != dt.time(0):  # the day the retention cuts through is partial
                first += dt.timedelta(days=1)
        last_complete = (now - SETTLE).date() - dt.timedelta(days=1)
        return UsageWindow(
            first=first,
            last_complete=last_complete,
            retention=self.retention_days,
            label=self.label,
        )


@dataclass(frozen=True, slots=True)
class UsageWindow:
    """Which days' usage a source holds completely at one moment.

    Attributes:
        first: the oldest day still whole at the source (``None``: no limit).
        last_complete: the newest day that has ended and settled; younger days are
            used as fetched but not stored.
        retention: the source's retention in days (``None``: no limit), for reasons.
        label: the source as a reason names it.
    """

    first: dt.date | None
    last_complete: dt.date
    retention: int | None
    label: str = "the usage source"

    def fetchable(self, day: dt.date) -> bool:
        """Whether the source still holds ``day`` whole (or, if younger, what there is)."""
        return self.first is None or day >= self.first

    def storable(self, day: dt.date) -> bool:
        """Whether ``day`` is whole at the source and may be stored."""
        return self.fetchable(day) and day <= self.last_complete

    def reason(self, day: dt.date) -> str:
        """Why the usage of ``day`` is unavailable (it is beyond retention, never stored)."""
        return (
            f"usage for {day.isoformat()} is older than {self.label}'s "
            f"{self.retention}-day retention and was never collected"
        )


@dataclass(frozen=True, slots=True)
class UsageGaps:
    """The usage one date lacks: cells neither stored nor fetchable any more.

    Attributes:
        missing: query -> the resources whose usage that day is unavailable.
        reason: why (names the date and the retention).
        fallback: how the lines that need it are split.
    """

    missing: Mapping[MetricQuery, frozenset[str]]
    reason: str = ""
    fallback: UnavailableFallback = "even"

    def lacks(self, queries: Sequence[MetricQuery], resource_id: str | None) -> bool:
        """Whether any of ``queries`` has no usage for ``resource_id`` that day."""
        if resource_id is None or not self.missing:
            return False
        return any(resource_id in self.missing.get(q, ()) for q in queries)


NO_GAPS = UsageGaps({})
"""A date with all its usage."""
