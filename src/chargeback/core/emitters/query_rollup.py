"""The ``query_rollup`` emitter: keeps the query API's daily rollups current (issue 19).

After every commit of a date (and every recalculation) the emitter runner calls it;
it rebuilds that date's rollups from the stored rows in one transaction
(:func:`~chargeback.core.storage.query_rollup.refresh_rollup`). The rows it is handed
are not used: the rollup is summed by SQLite from the database, in the same
transaction that reads the date's ``calc_seq``, so it is exactly the stored rows of
that calculation. Added to an existing installation, every calculated date is pending
for it, so the first run rolls up the whole history.

Configure it beside the others (it takes no params)::

    emitters:
      - {name: query_rollup, type: query_rollup}

Without it the API answers the same, from the rows (slower on a large organisation).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from chargeback.core.models import ChargebackRow
from chargeback.core.storage.backend import StorageBackend
from chargeback.core.storage.query_rollup import refresh_rollup
from chargeback.core.storage.sqlite import SQLiteBackend

__all__ = ["QueryRollupEmitter", "make_query_rollup_emitter"]


class QueryRollupEmitter:
    """Refreshes one date's rollups per call (see the module docstring).

    Args:
        path: the SQLite database file the daemon writes.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    async def __call__(self, tenant_id: str, day: dt.date, rows: Sequence[ChargebackRow]) -> None:
        """Rebuild the rollups of ``tenant_id`` on ``day`` from the database."""
        await refresh_rollup(self.path, tenant_id, day)


def make_query_rollup_emitter(*, storage_backend: StorageBackend) -> QueryRollupEmitter:
    """The emitter of the daemon's database.

    Raises:
        ValueError: the backend is not a SQLite file (PostgreSQL has no rollups yet).
    """
    if not isinstance(storage_backend, SQLiteBackend) or storage_backend.path == ":memory:":
        raise ValueError(
            f"query_rollup keeps rollups in a SQLite file only so far, not in {storage_backend!r}"
        )
    return QueryRollupEmitter(storage_backend.path)


make_query_rollup_emitter.needs_storage_backend = True  # type: ignore[attr-defined]
