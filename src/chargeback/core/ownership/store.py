"""Protocol: where attributions live (DESIGN §14), beside the storage backend.

Implemented for both core backends by :mod:`chargeback.core.storage.ownership`; get
one with :func:`~chargeback.core.storage.ownership.ownership_store`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chargeback.core.ownership.attribution import DateAttribution, TeamTotal
from chargeback.core.ownership.rules import RuleSet

__all__ = ["AttributionState", "OwnershipStore"]


@dataclass(frozen=True, slots=True)
class AttributionState:
    """What a stored attribution was made from.

    Attributes:
        rule_version: the tenant's rule version used.
        calc_seq: the date's calculation it attributed (stale when the date's
            ``calc_seq`` has moved on).
        unassigned: the date's amount no rule matched (minor units).
    """

    rule_version: int
    calc_seq: int
    unassigned: int


class OwnershipStore(Protocol):
    """Protocol: read and write attributions; each write is one transaction."""

    async def rule_version(self, tenant_id: str, rules: RuleSet, created_at: dt.datetime) -> int:
        """Return the version number of ``rules`` for the tenant, recording it if new."""
        ...

    async def write_attribution(
        self,
        attribution: DateAttribution,
        *,
        rule_version: int,
        attributed_at: dt.datetime,
        reemit: bool,
    ) -> None:
        """Replace the date's attribution and team totals; ``reemit``: mark the date
        for emission again (every emitter), without touching its rows or ``calc_seq``."""
        ...

    async def set_rule_version(
        self, tenant_id: str, days: Sequence[dt.date], rule_version: int
    ) -> None:
        """Record that ``days``' attributions are unchanged under ``rule_version``."""
        ...

    async def attribution_states(self, tenant_id: str) -> dict[dt.date, AttributionState]:
        """Return the state of every attributed date of a tenant."""
        ...

    async def read_attribution(self, tenant_id: str, day: dt.date) -> DateAttribution | None:
        """Return a date's attribution, ``None`` if it was never attributed."""
        ...

    async def team_totals(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> dict[dt.date, list[TeamTotal]]:
        """Team totals of every attributed date ``start <= day < end`` (set-based)."""
        ...
