"""What an allocation query asks for: dimensions, filters, sort and page (DESIGN §15).

Dimensions name columns of the chargeback rows::

    identity  product_type  product_category  environment  resource  cost_type  rule
    line  date  team

``aggregate`` lists one or more of them (``identity,product_type``); every distinct
combination of their values is one entry of a set. A row without a resource or an
environment has the value ``""`` there.

A filter keeps the rows whose dimension has one of the values, or (with ``!:``) none::

    identity:sa-1,sa-2        product_type!:KAFKA_BASE        environment:""

Several filters must all hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from chargeback.errors import QueryError

__all__ = [
    "ALL_DIMENSIONS",
    "DIMENSIONS",
    "MAX_LIMIT",
    "TEAM",
    "AllocationSpec",
    "Filter",
    "Sort",
    "parse_aggregate",
    "parse_filters",
    "parse_sort",
]

DIMENSIONS: dict[str, str] = {
    "identity": "identity_id",
    "product_type": "product_type",
    "product_category": "product_category",
    "environment": "env_id",
    "resource": "resource_id",
    "cost_type": "cost_type",
    "rule": "rule",
    "line": "line_id",
    "date": "date",
}
"""Dimension name -> the chargeback row column it reads."""

TEAM = "team"
"""The team of a row's (identity, resource, environment) key on its day, from the
ownership attribution (DESIGN §14): not a row column, resolved by :mod:`.teams`."""

ALL_DIMENSIONS: tuple[str, ...] = (*DIMENSIONS, TEAM)
"""Every dimension an aggregate or a filter may name."""

MAX_LIMIT = 10_000
"""The most entries one page of a JSON answer holds."""


@dataclass(frozen=True, slots=True)
class Filter:
    """Rows whose ``dimension`` is (``negate``: is not) one of ``values``."""

    dimension: str
    values: tuple[str, ...]
    negate: bool = False

    def matches(self, value: str) -> bool:
        """Whether a row with ``value`` in this dimension passes the filter."""
        return (value in self.values) != self.negate


class Sort(StrEnum):
    """The order of a set's entries; ties always fall back to the key, ascending."""

    COST_DESC = "-cost"
    COST_ASC = "cost"
    KEY = "key"


@dataclass(frozen=True, slots=True)
class AllocationSpec:
    """One allocation query, parsed.

    Attributes:
        dimensions: the aggregate's dimensions, in the order asked.
        filters: every one must hold.
        sort: the entries' order.
        limit: entries per set (``None``: all).
        offset: entries skipped per set.
    """

    dimensions: tuple[str, ...]
    filters: tuple[Filter, ...] = ()
    sort: Sort = Sort.COST_DESC
    limit: int | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        if self.limit is not None and not 0 <= self.limit <= MAX_LIMIT:
            raise QueryError(f"limit: expected 0..{MAX_LIMIT}, got {self.limit}", parameter="limit")
        if self.offset < 0:
            raise QueryError(f"offset: expected >= 0, got {self.offset}", parameter="offset")


def _dimension(name: str, parameter: str) -> str:
    name = name.strip().lower()
    if name not in ALL_DIMENSIONS:
        raise QueryError(
            f"{parameter}: unknown dimension {name!r}; expected one of {', '.join(ALL_DIMENSIONS)}",
            parameter=parameter,
        )
    return name


def parse_aggregate(text: str | None) -> tuple[str, ...]:
    """Parse ``aggregate`` (comma-separated dimensions; default ``identity``).

    Raises:
        QueryError: an unknown or repeated dimension.
    """
    if text is None or not text.strip():
        return ("identity",)
    names = tuple(_dimension(part, "aggregate") for part in text.split(","))
    if len(set(names)) != len(names):
        raise QueryError(f"aggregate: a dimension is repeated in {text!r}", parameter="aggregate")
    return names


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse_filters(texts: Sequence[str]) -> tuple[Filter, ...]:
    """Parse ``filter`` parameters (``dimension:v1,v2`` or ``dimension!:v``).

    Raises:
        QueryError: no ``:``, an unknown dimension, or no value.
    """
    filters: list[Filter] = []
    for text in texts:
        name, sep, values = text.partition(":")
        if not sep:
            raise QueryError(
                f"filter: expected DIMENSION:VALUE[,VALUE...] or DIMENSION!:VALUE, got {text!r}",
                parameter="filter",
            )
        negate = name.endswith("!")
        dimension = _dimension(name.removesuffix("!"), "filter")
        filters.append(Filter(dimension, tuple(_unquote(v) for v in values.split(",")), negate))
    return tuple(filters)


def parse_sort(text: str | None) -> Sort:
    """Parse ``sort`` (``-cost``, the default, ``cost`` or ``key``).

    Raises:
        QueryError: any other text.
    """
    if text is None or not text.strip():
        return Sort.COST_DESC
    try:
        return Sort(text.strip().lower())
    except ValueError:
        raise QueryError(
            f"sort: expected one of -cost, cost, key, got {text!r}", parameter="sort"
        ) from None
