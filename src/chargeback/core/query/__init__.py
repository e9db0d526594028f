"""The read side (DESIGN §15): windows, aggregates and filters over the stored chargeback.

Pure parsing and exact aggregation live here (:mod:`.window`, :mod:`.spec`,
:mod:`.aggregate`); the SQL that feeds them is a :class:`~.source.QuerySource` of the
storage package (:mod:`chargeback.core.storage.query_sqlite`). The query API, the UI
and ``chargeback export`` ask through this package.
"""

from __future__ import annotations

from chargeback.core.query.aggregate import (
    AllocationSet,
    Amounts,
    DayTotal,
    Entry,
    GroupRow,
    build_sets,
)
from chargeback.core.query.source import BillingLine, QuerySource, query_source
from chargeback.core.query.spec import (
    DIMENSIONS,
    MAX_LIMIT,
    AllocationSpec,
    Filter,
    Sort,
    parse_aggregate,
    parse_filters,
    parse_sort,
)
from chargeback.core.query.window import MAX_WINDOW_DAYS, Step, Window, parse_step, parse_window

__all__ = [
    "DIMENSIONS",
    "MAX_LIMIT",
    "MAX_WINDOW_DAYS",
    "AllocationSet",
    "AllocationSpec",
    "Amounts",
    "BillingLine",
    "DayTotal",
    "Entry",
    "Filter",
    "GroupRow",
    "QuerySource",
    "Sort",
    "Step",
    "Window",
    "build_sets",
    "parse_aggregate",
    "parse_filters",
    "parse_sort",
    "parse_step",
    "parse_window",
    "query_source",
]
