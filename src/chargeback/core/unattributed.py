"""Unattributed cost: what the chargeback could not put on a known, real identity.

"Unallocated" counts only the rows on :data:`~chargeback.core.models.UNALLOCATED`. A bill
can also land on placeholder identities a plugin declares (identity type ``sentinel``,
e.g. Confluent's ``CONNECTOR_OWNER_UNKNOWN``) and on principals the usage names but the
inventory does not know: none of it is charged to someone who can be asked to pay.
:func:`unattributed_cost` sums the three, each identity named, from the stored rows and
the stored inventory; reconcile and the demo print it beside the unallocated share.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from chargeback.core.models import UNALLOCATED, ChargebackRow, Identity
from chargeback.core.money import format_amount
from chargeback.core.storage.backend import StorageBackend

__all__ = [
    "SENTINEL_TYPE",
    "Unattributed",
    "render_unattributed",
    "unattributed_cost",
    "unattributed_of_rows",
]

SENTINEL_TYPE = "sentinel"
"""The identity type of a plugin's placeholder identities."""

_SHOWN = 5


@dataclass(frozen=True, slots=True)
class Unattributed:
    """The unattributed part of ``total`` (minor units), by kind and identity."""

    total: int
    unallocated: int
    sentinels: dict[str, int] = field(default_factory=dict)
    unknown_principals: dict[str, int] = field(default_factory=dict)

    @property
    def amount(self) -> int:
        """UNALLOCATED + sentinel identities + principals not in the inventory."""
        return (
            self.unallocated + sum(self.sentinels.values()) + sum(self.unknown_principals.values())
        )


async def unattributed_cost(
    storage: StorageBackend, tenant_id: str, start: dt.date, end: dt.date
) -> Unattributed:
    """Sum the unattributed cost of ``start <= day < end`` (exclusive end, as storage)."""
    by_identity: Counter[str] = Counter()
    for group in await storage.cost_totals(tenant_id, start, end):
        by_identity[group.identity_id] += group.amount
    _, identities = await storage.load_inventory(tenant_id)
    kinds = {i.identity_id: i.identity_type for i in identities}
    sentinels = {i: a for i, a in by_identity.items() if kinds.get(i) == SENTINEL_TYPE}
    unknown = {i: a for i, a in by_identity.items() if i != UNALLOCATED and i not in kinds}
    return Unattributed(
        total=sum(by_identity.values()),
        unallocated=by_identity.get(UNALLOCATED, 0),
        sentinels=dict(sorted(sentinels.items())),
        unknown_principals=dict(sorted(unknown.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def unattributed_of_rows(rows: Iterable[ChargebackRow], identities: Mapping[str, Identity]) -> int:
    """The unattributed amount of ``rows`` (minor units), by the rule of
    :func:`unattributed_cost`: UNALLOCATED, sentinel identities and ids ``identities``
    (the run's inventory) does not hold."""
    total = 0
    for row in rows:
        identity = identities.get(row.identity_id)
        if identity is None or identity.identity_type == SENTINEL_TYPE:
            total += row.amount  # UNALLOCATED is never in the inventory
    return total


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def render_unattributed(u: Unattributed) -> list[str]:
    """Lines naming the unattributed cost, its share and each part."""
    out = [
        f"Unattributed: {format_amount(u.amount)} of {format_amount(u.total)} "
        f"({_share(u.amount, u.total)}): not charged to a known identity",
        f"  {'UNALLOCATED':<40} {format_amount(u.unallocated):>22}",
    ]
    out.extend(f"  {i + ' (sentinel)':<40} {format_amount(a):>22}" for i, a in u.sentinels.items())
    if u.unknown_principals:
        total = sum(u.unknown_principals.values())
        n = len(u.unknown_principals)
        out.append(f"  {f'{n} principals not in the inventory':<40} {format_amount(total):>22}")
        shown = list(u.unknown_principals.items())[:_SHOWN]
        out.extend(f"    {i:<38} {format_amount(a):>22}" for i, a in shown)
        if n > _SHOWN:
            out.append(f"    and {n - _SHOWN} more")
    return out
