"""The usage ledger (DESIGN §13): usage kept after its source forgets it.

Every usage figure the engine fetches is stored, per tenant, date, query, resource and
principal, in the same database as everything else, before the date is allocated;
allocation reads it back. A (date, query, resource) *cell* that was fetched and held no
usage is stored too, as an empty cell, so "fetched and really zero" and "never
fetched" stay different things.

- :mod:`~chargeback.core.ledger.records`: the stored records and the retention window
  (no I/O; the storage layer imports it);
- :mod:`~chargeback.core.ledger.provider`: :class:`LedgerUsage`, the engine's usage
  provider that reads the ledger and fetches only missing cells inside retention;
- :mod:`~chargeback.core.ledger.collect`: collecting recent days' usage on its own
  schedule, independent of billing.
"""

from chargeback.core.ledger.records import (
    NO_GAPS,
    UNAVAILABLE_RULE,
    UsageCell,
    UsageEntry,
    UsageGaps,
    UsagePolicy,
    UsageWindow,
    query_id,
)

__all__ = [
    "NO_GAPS",
    "UNAVAILABLE_RULE",
    "UsageCell",
    "UsageEntry",
    "UsageGaps",
    "UsagePolicy",
    "UsageWindow",
    "query_id",
]
