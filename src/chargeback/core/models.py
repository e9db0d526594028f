"""The records that flow through the engine (DESIGN §2, §3, §5).

Internal records are frozen, slotted dataclasses; the records that exist in the
hundreds of thousands (:class:`BillingLineItem`, :class:`Allocation`,
:class:`ChargebackRow`) are ``NamedTuple``\\ s so they cost no more than a tuple,
are built in C and go straight into ``executemany``. Amounts are integers in minor
units (:mod:`chargeback.core.money`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any, NamedTuple

__all__ = [
    "NO_ATTRIBUTES",
    "REFUSED",
    "SCRAPE_GAP",
    "UNALLOCATED",
    "Allocation",
    "AllocationContext",
    "AllocationParams",
    "AllocationResult",
    "BillingLineItem",
    "ChargebackRow",
    "CostType",
    "Identity",
    "IdentityResolution",
    "IdentitySet",
    "MetricQuery",
    "Resource",
    "UsageTable",
    "active_on",
]

UNALLOCATED = "UNALLOCATED"
"""Identity id that receives cost nobody can be charged for, always with a reason."""

SCRAPE_GAP = "scrape_gap: "
"""How a line's ``error`` starts when its quantity had no samples on its day (a metrics
source's scrapes failed): the line is stored with amount 0 and the reason, and the
engine counts it in the run's summary; never billed as zero silently."""

REFUSED = "refused: "
"""How a line's ``error`` starts when its billed amount could not be taken at all (out
of range, or unreadable with nothing to derive it from): the line is stored with amount
0 and its reported amount in ``attributes["reported_amount"]``; reconcile counts it."""


class CostType(StrEnum):
    """Why a share of a line was charged to an identity."""

    USAGE = "usage"
    """In proportion to measured usage (bytes, CFU)."""
    SHARED = "shared"
    """An even share of a cost that all active identities of a resource share."""
    UNALLOCATED = "unallocated"
    """Nobody could be charged; the row's ``reason`` says why."""


def active_on(day: dt.date, created_at: dt.datetime | None, deleted_at: dt.datetime | None) -> bool:
    """Return whether something with these timestamps existed at any time on ``day`` (UTC).

    An unknown creation time counts as "always existed"; a deletion time on ``day``
    still counts as active that day, so an identity deleted since is still charged
    for the days it worked.
    """
    if created_at is not None and created_at.date() > day:
        return False
    return deleted_at is None or deleted_at.date() >= day


class _NoAttributes(Mapping[str, str]):
    """An empty, read-only mapping that pickles as the one :data:`NO_ATTRIBUTES`."""

    __slots__ = ()

    def __getitem__(self, key: str) -> str:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "NO_ATTRIBUTES"

    def __reduce__(self) -> str:
        return "NO_ATTRIBUTES"  # pickled by name: unpickles as the same object


NO_ATTRIBUTES: Mapping[str, str] = _NoAttributes()
"""The default ``attributes`` of a :class:`BillingLineItem`: empty and read-only (a
tuple's default is shared by every line, so it must not be a ``dict``). Equal to
``{}``."""


class BillingLineItem(NamedTuple):
    """One billed line: one product type, one resource (or none), one UTC day.

    ``line_id`` is stable for the same line across fetches, and unique within a
    tenant and date. ``error`` is set by a cost input for a malformed source row: the
    engine then allocates the line to :data:`UNALLOCATED` with that reason instead of
    asking a handler (a row even for amount 0, so a :data:`REFUSED` line shows).

    A ``NamedTuple`` (immutable; change a field with ``_replace``): a large
    organization's backfill builds every line twice (parsed, then unpacked from the
    spool), ~200k each for 90 days, and a tuple is built in C where a frozen
    dataclass sets its fifteen fields one Python call at a time (bench/README.md).
    """

    line_id: str
    date: dt.date
    product_type: str
    product_category: str
    amount: int
    resource_id: str | None = None
    env_id: str | None = None
    quantity: Decimal | None = None
    unit: str | None = None
    unit_price: Decimal | None = None
    original_amount: int | None = None
    discount_amount: int | None = None
    description: str | None = None
    attributes: Mapping[str, str] = NO_ATTRIBUTES
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Resource:
    """Something that is billed or that usage is measured on (cluster, connector, ...).

    ``owner_id`` is the identity a resource's cost belongs to when the resource has
    one owner (a connector's service account, a ksqlDB cluster's credential identity,
    a Flink statement's principal). ``parent_id`` links a connector to its cluster or
    a statement to its compute pool.
    """

    resource_id: str
    resource_type: str
    display_name: str | None = None
    env_id: str | None = None
    parent_id: str | None = None
    owner_id: str | None = None
    created_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)

    def active_on(self, day: dt.date) -> bool:
        """Return whether the resource existed on ``day``."""
        return active_on(day, self.created_at, self.deleted_at)


@dataclass(frozen=True, slots=True)
class Identity:
    """Someone who can be charged: a service account, user, identity pool, or API key.

    An API key has ``owner_id`` (the identity that pays for it) and ``resource_id``
    (the resource it is scoped to).
    """

    identity_id: str
    identity_type: str
    display_name: str | None = None
    owner_id: str | None = None
    resource_id: str | None = None
    created_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)

    def active_on(self, day: dt.date) -> bool:
        """Return whether the identity existed on ``day``."""
        return active_on(day, self.created_at, self.deleted_at)


class IdentitySet(Mapping[str, Identity]):
    """An immutable set of identities, keyed and iterated by id in sorted order.

    Sorted iteration makes every split deterministic: the same identities always get
    the same remainders.
    """

    __slots__ = ("_by_id", "_ids")

    def __init__(self, identities: Iterable[Identity] = ()) -> None:
        by_id = {i.identity_id: i for i in identities}
        self._ids: tuple[str, ...] = tuple(sorted(by_id))
        self._by_id: dict[str, Identity] = by_id

    @classmethod
    def _sorted_subset(cls, ids: list[str], by_id: dict[str, Identity]) -> IdentitySet:
        """A set of ``ids`` (already sorted and unique) taken from ``by_id``."""
        subset = cls.__new__(cls)
        subset._ids = tuple(ids)
        subset._by_id = dict(zip(ids, map(by_id.__getitem__, ids), strict=True))
        return subset

    def __getitem__(self, identity_id: str) -> Identity:
        return self._by_id[identity_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, identity_id: object) -> bool:
        return identity_id in self._by_id

    def __repr__(self) -> str:
        return f"IdentitySet({list(self._ids)!r})"

    # Mapping's mixins go through __getitem__ per key in Python; these stay in C
    # (handlers index ~12k identities a date for a large organization).
    def get(self, identity_id: str, default: Any = None) -> Any:
        """Return the identity with this id, or ``default``."""
        return self._by_id.get(identity_id, default)

    def values(self) -> tuple[Identity, ...]:  # type: ignore[override]
        """The identities, in id order."""
        return tuple(map(self._by_id.__getitem__, self._ids))

    def items(self) -> tuple[tuple[str, Identity], ...]:  # type: ignore[override]
        """``(id, identity)`` pairs, in id order."""
        return tuple(zip(self._ids, map(self._by_id.__getitem__, self._ids), strict=True))

    @property
    def ids(self) -> tuple[str, ...]:
        """The identity ids, sorted."""
        return self._ids

    def active_on(self, day: dt.date) -> IdentitySet:
        """Return the identities that existed on ``day`` (each one's ``active_on``)."""
        by_id = self._by_id
        return self._sorted_subset([i for i in self._ids if by_id[i].active_on(day)], by_id)

    def of_type(self, *identity_types: str) -> IdentitySet:
        """Return the identities whose type is one of ``identity_types``."""
        return IdentitySet(i for i in self._by_id.values() if i.identity_type in identity_types)

    def union(self, other: Iterable[Identity]) -> IdentitySet:
        """Return a new set with the identities of both (``other`` wins on equal ids)."""
        return IdentitySet([*self._by_id.values(), *other])


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """One usage metric a handler needs for a product type.

    The engine asks the plugin's metrics source once per query for all resources and
    the whole range of dates being calculated (DESIGN §10), never once per day.

    Attributes:
        key: short name used in :attr:`AllocationContext.usage` (e.g. ``"request_bytes"``).
        metric: the ecosystem's metric name.
        resource_label: the label that filters by resource (e.g. ``"resource.kafka.id"``).
        group_by: the label whose values are the principals (e.g. ``"metric.principal_id"``).
    """

    key: str
    metric: str
    resource_label: str
    group_by: str


UsageTable = dict[tuple[dt.date, str], dict[str, int]]
"""Usage of one metric: ``(date, resource_id) -> {principal: value}``, values as integers."""


@dataclass(frozen=True, slots=True)
class IdentityResolution:
    """Who may be charged for one billing line, as a handler or resolver found it.

    Attributes:
        identities: the candidates, already filtered to those active on the line's date.
        principal_map: metric principal -> identity id that pays for it (API key ->
            owner, statement -> principal). Principals not in the map are charged as
            themselves when they are in ``identities``.
        reason: why ``identities`` is empty, if it is.
    """

    identities: IdentitySet
    principal_map: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AllocationParams:
    """The configured rule for a product type, typed (plugin settings, DESIGN §10).

    Attributes:
        rule: the rule's name, recorded on every row it produces.
        usage_ratio: the part of the line split by usage; the rest is shared evenly.
        metric_keys: which :class:`MetricQuery` keys weigh the usage part.
    """

    rule: str
    usage_ratio: Fraction = Fraction(1)
    metric_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AllocationContext:
    """Everything an allocator may look at to split one line; no I/O needed.

    Attributes:
        tenant_id: the tenant being calculated.
        line: the billing line to split.
        identities: candidate identities (from the handler's or resolver's resolution).
        principal_map: metric principal -> identity id that pays.
        usage: metric key -> principal -> value, for this line's resource and date.
        params: the configured rule for the line's product type.
        reason: the resolution's reason when ``identities`` is empty.
    """

    tenant_id: str
    line: BillingLineItem
    identities: IdentitySet
    principal_map: Mapping[str, str]
    usage: Mapping[str, Mapping[str, int]]
    params: AllocationParams
    reason: str | None = None


class Allocation(NamedTuple):
    """One part of a line charged to one identity."""

    identity_id: str
    amount: int
    cost_type: str
    rule: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AllocationResult:
    """The parts of one line; the engine checks they sum to the line's amount."""

    allocations: Sequence[Allocation]

    @classmethod
    def unallocated(cls, line: BillingLineItem, rule: str, reason: str) -> AllocationResult:
        """Charge the whole line to :data:`UNALLOCATED`, with a reason."""
        return cls([Allocation(UNALLOCATED, line.amount, CostType.UNALLOCATED, rule, reason)])


class ChargebackRow(NamedTuple):
    """One stored result row: a part of a billing line charged to one identity."""

    tenant_id: str
    date: dt.date
    line_id: str
    identity_id: str
    product_type: str
    product_category: str
    resource_id: str | None
    env_id: str | None
    cost_type: str
    rule: str
    amount: int
    reason: str | None
