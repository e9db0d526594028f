"""The read side's interface to the database: what the query API asks storage (DESIGN §15).

The storage backend protocol serves the engine (commit a date, list runs, load the
inventory); the API also needs set-based reads shaped for questions: amounts grouped
by any dimensions over a window, and one billing line with its parts. Those are a
:class:`QuerySource`, built from the open backend by :func:`query_source`, so the
backend's own code stays as it is and a PostgreSQL backend adds its own source.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from chargeback.core.models import ChargebackRow
from chargeback.core.query.aggregate import GroupRow
from chargeback.core.query.spec import Filter
from chargeback.core.query.window import Step, Window
from chargeback.core.storage.backend import StorageBackend
from chargeback.errors import StorageError

__all__ = ["BillingLine", "QuerySource", "query_source"]


@dataclass(frozen=True, slots=True)
class BillingLine:
    """One stored billing line, as ``explain`` shows it (amounts in minor units)."""

    day: dt.date
    line_id: str
    product_type: str
    product_category: str
    resource_id: str | None
    env_id: str | None
    amount: int
    quantity: str | None
    unit: str | None
    unit_price: str | None
    original_amount: int | None
    discount_amount: int | None
    description: str | None
    error: str | None


class QuerySource(Protocol):
    """Protocol: the grouped reads behind ``/api/v1/allocation`` and ``/explain``."""

    async def allocation_groups(
        self,
        tenant_id: str,
        window: Window,
        step: Step | None,
        dimensions: tuple[str, ...],
        filters: tuple[Filter, ...],
    ) -> list[GroupRow]:
        """Sum the rows of ``window`` that pass ``filters`` per bucket, key and cost type.

        Args:
            tenant_id: the tenant.
            window: the days to read.
            step: a hint: the source may group by any finer bucket (days, say).
            dimensions: the key's dimensions (names of :data:`~.spec.DIMENSIONS`).
            filters: every one must hold.
        """
        ...

    async def team_rollup_groups(
        self,
        tenant_id: str,
        window: Window,
        step: Step | None,
        dimensions: tuple[str, ...],
        filters: tuple[Filter, ...],
    ) -> tuple[list[GroupRow], set[dt.date]]:
        """Groups of the days with a current team rollup, and those days (maybe none).

        Only asked for dimensions and filters within team, product type, cost type and date.
        """
        ...

    async def billing_lines(
        self, tenant_id: str, line_id: str, days: list[dt.date]
    ) -> list[BillingLine]:
        """Return the stored lines with this id on any of ``days`` (oldest first)."""
        ...

    async def line_rows(self, tenant_id: str, day: dt.date, line_id: str) -> list[ChargebackRow]:
        """Return the chargeback rows of one line, in commit order."""
        ...

    async def display_names(self, tenant_id: str, ids: Collection[str]) -> dict[str, str]:
        """Return the display names of those identity and resource ids that have one."""
        ...


def query_source(storage: StorageBackend) -> QuerySource:
    """The query source reading the same database as ``storage``.

    Raises:
        StorageError: the backend has no query source (an in-memory SQLite database, or
            a backend of a third party).
    """
    from chargeback.core.storage.query_sqlite import SQLiteQuerySource  # noqa: PLC0415
    from chargeback.core.storage.sqlite import SQLiteBackend  # noqa: PLC0415

    if isinstance(storage, SQLiteBackend) and storage.path != ":memory:":
        return SQLiteQuerySource(storage.path)
    from chargeback.core.storage.postgres import PostgresBackend  # noqa: PLC0415

    if isinstance(storage, PostgresBackend):
        from chargeback.core.storage.postgres.query import PostgresQuerySource  # noqa: PLC0415

        return PostgresQuerySource(storage)
    raise StorageError(
        f"the query API reads SQLite files and PostgreSQL; {storage!r} has no query source"
    )
