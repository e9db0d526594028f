"""One tenant-date's billing lines and chargeback rows as FOCUS rows.

Each origin charge (a billing line) becomes its allocated charges: one FOCUS row per
chargeback row (one identity part). The origin's dimensions are repeated on every
part; its metrics are split exactly (:mod:`.split`), so the parts of one origin sum to
it and the whole export sums to the bill, to the nano.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from chargeback.core.emitters.focus.columns import COLUMNS, charge_kind, service_of
from chargeback.core.emitters.focus.parts import TAG_PREFIX, PartWriter, method_id
from chargeback.core.jsontext import compact_sorted
from chargeback.core.models import UNALLOCATED, BillingLineItem, ChargebackRow, Identity, Resource

__all__ = [
    "TAG_PREFIX",
    "ExportContext",
    "MissingLineError",
    "focus_rows",
    "focus_unit",
    "iso_instant",
    "method_id",
    "month_bounds",
]

NO_ROWS_RULE = "no_rows"
"""``x_AllocationRule`` of an origin charge that has no chargeback rows: a zero-amount line
(allocators leave zero parts out). It is exported whole, so every origin charge appears."""


class MissingLineError(ValueError):
    """A chargeback row names a billing line the date does not have."""


def iso_instant(day: dt.date) -> str:
    """Midnight UTC of ``day`` as FOCUS DateTimeFormat (``2026-11-01T00:00:00Z``)."""
    return f"{day.isoformat()}T00:00:00Z"


def month_bounds(day: dt.date) -> tuple[dt.date, dt.date]:
    """The first day of ``day``'s month and of the next month."""
    first = day.replace(day=1)
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    return first, nxt


@dataclass(frozen=True, slots=True)
class ExportContext:
    """What every row of one tenant's export shares, and the inventory names come from.

    Attributes:
        tenant_id: the tenant.
        version: FOCUS version, ``"1.2"`` or ``"1.3"``.
        currency: ``BillingCurrency`` (Confluent Cloud bills in USD).
        billing_account_id: the organization id (``BillingAccountId``).
        billing_account_name: ``BillingAccountName``.
        resources: resource id -> resource (names, types, regions, environments).
        identities: identity id -> identity (names and types of allocated charges).
        day_status: date -> ``open`` / ``closed`` (``x_ChargePeriodStatus``).
        month_status: month start -> ``open`` / ``closed`` (``x_BillingPeriodStatus``).
    """

    tenant_id: str
    version: str
    currency: str
    billing_account_id: str
    billing_account_name: str
    resources: Mapping[str, Resource]
    identities: Mapping[str, Identity]
    day_status: Mapping[dt.date, str]
    month_status: Mapping[dt.date, str]

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of this version, in file order."""
        return COLUMNS[self.version]

    _writers: dict[bool, PartWriter] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def part_writer(self, *, quoted: bool) -> PartWriter:
        """The writer of allocated charges of this context (made once: it caches)."""
        writer = self._writers.get(quoted)
        if writer is None:
            writer = self._writers[quoted] = PartWriter(
                self.columns, self.identities, allocated=self.version != "1.2", quoted=quoted
            )
        return writer


def _region(ctx: ExportContext, resource: Resource | None) -> tuple[str, str]:
    """``(region, cloud)`` of a resource, or of the resource it belongs to."""
    seen = 0
    while resource is not None and seen < 4:
        region = resource.attributes.get("region")
        if region:
            return region, resource.attributes.get("cloud", "")
        resource = ctx.resources.get(resource.parent_id) if resource.parent_id else None
        seen += 1
    return "", ""


_TYPE_BY_PREFIX = (
    ("lkc-", "Kafka Cluster"),
    ("lcc-", "Connector"),
    ("lsrc-", "Schema Registry"),
    ("lksqlc-", "ksqlDB Cluster"),
    ("lfcp-", "Flink Compute Pool"),
    ("env-", "Environment"),
)


def resource_type_name(resource: Resource | None, resource_id: str) -> str:
    """``ResourceType``: the inventory's type (``kafka_cluster`` -> ``Kafka Cluster``), else
    the type its id prefix names, else ``Resource`` (FOCUS: not null when ResourceId is set)."""
    if resource is not None:
        return resource.resource_type.replace("_", " ").title().replace("Ksqldb", "ksqlDB")
    for prefix, name in _TYPE_BY_PREFIX:
        if resource_id.startswith(prefix):
            return name
    return "Resource"


_HOSTS = {"aws": "Amazon Web Services", "gcp": "Google Cloud", "azure": "Microsoft Azure"}


_TIME_PLURALS = {"hour": "Hours", "day": "Days", "month": "Months", "minute": "Minutes"}
_SCALES = {"thousand": "1000", "million": "1000000", "billion": "1000000000"}


def focus_unit(unit: str | None) -> str:
    """Confluent's unit in FOCUS UnitFormat: ``CKU-hour`` -> ``CKU-Hours``, ``Million
    records`` -> ``1000000 Records``; units already in the format stay as they are."""
    if not unit:
        return ""
    head, dash, tail = unit.rpartition("-")
    if dash and tail.lower() in _TIME_PLURALS:
        return f"{head}-{_TIME_PLURALS[tail.lower()]}"
    first, space, rest = unit.partition(" ")
    if space and first.lower() in _SCALES and rest:
        return f"{_SCALES[first.lower()]} {rest[:1].upper()}{rest[1:]}"
    return unit


def _origin_cells(ctx: ExportContext, line: BillingLineItem) -> dict[str, str]:
    """The columns every allocated charge of ``line`` repeats from the origin charge."""
    first, nxt = month_bounds(line.date)
    service = service_of(line.product_category, line.product_type)
    kind = charge_kind(
        line.product_type, line.amount, line.quantity is not None, line.unit_price is not None
    )
    cells = {
        "BillingAccountId": ctx.billing_account_id,
        "BillingAccountName": ctx.billing_account_name,
        "BillingCurrency": ctx.currency,
        "BillingPeriodStart": iso_instant(first),
        "BillingPeriodEnd": iso_instant(nxt),
        "ChargeCategory": kind.category,
        "ChargeClass": "",
        "ChargeDescription": line.description or f"{service.name} {line.product_type}",
        "ChargeFrequency": kind.frequency,
        "ChargePeriodStart": iso_instant(line.date),
        "ChargePeriodEnd": iso_instant(line.date + dt.timedelta(days=1)),
        "ConsumedUnit": focus_unit(line.unit) if kind.priced else "",
        "InvoiceIssuerName": "Confluent",
        "ListUnitPrice": str(line.unit_price)
        if kind.priced and line.unit_price is not None
        else "",
        "PricingCategory": "Standard" if kind.priced else "",
        "PricingUnit": focus_unit(line.unit) if kind.priced else "",
        "ProviderName": "Confluent",
        "PublisherName": "Confluent",
        "ServiceCategory": service.category,
        "ServiceName": service.name,
        "ServiceSubcategory": service.subcategory,
        "SkuId": line.product_type,
        "Tags": _tags(line),
        "ServiceProviderName": "Confluent",
        "x_BillingPeriodStatus": ctx.month_status.get(first, "open"),
        "x_ChargePeriodStatus": ctx.day_status.get(line.date, "open"),
        "x_LineId": line.line_id,
        "x_LineType": line.product_type,
        "x_NetworkAccessType": line.attributes.get("network_access_type", ""),
        "x_Product": line.product_category,
        "x_Unit": line.unit or "",
    }
    cells.update(_resource_cells(ctx, line))
    return cells


def _tags(line: BillingLineItem) -> str:
    """The origin's ``Tags``: its line type, environment and tier dimensions."""
    tags = {f"{TAG_PREFIX}line_type": line.product_type}
    if line.env_id:
        tags[f"{TAG_PREFIX}environment"] = line.env_id
    tier = line.attributes.get("tier_dimensions")
    if tier:
        tags[f"{TAG_PREFIX}tier_dimensions"] = tier
    return compact_sorted(tags)


def _resource_cells(ctx: ExportContext, line: BillingLineItem) -> dict[str, str]:
    """The origin's resource, region, host and sub-account (environment) columns."""
    resource = ctx.resources.get(line.resource_id) if line.resource_id else None
    env = ctx.resources.get(line.env_id) if line.env_id else None
    region, cloud = _region(ctx, resource)
    resource_name = line.attributes.get("resource_name") or (
        resource.display_name if resource is not None and resource.display_name else ""
    )
    return {
        "RegionId": region,
        "RegionName": region,
        "ResourceId": line.resource_id or "",
        "ResourceName": (resource_name or line.resource_id or "") if line.resource_id else "",
        "ResourceType": resource_type_name(resource, line.resource_id) if line.resource_id else "",
        "SubAccountId": line.env_id or "",
        "SubAccountName": ((env.display_name if env else None) or line.env_id or "")
        if line.env_id
        else "",
        "SubAccountType": "Environment" if line.env_id else "",
        "HostProviderName": _HOSTS.get(cloud.lower(), cloud.upper()) if cloud else "",
    }


def _lookup_rows(
    lines: Sequence[BillingLineItem], rows: Sequence[ChargebackRow]
) -> dict[str, list[ChargebackRow]]:
    by_line: dict[str, list[ChargebackRow]] = defaultdict(list)
    for row in rows:
        by_line[row.line_id].append(row)
    known = {line.line_id for line in lines}
    stray = sorted(set(by_line) - known)
    if stray:
        raise MissingLineError(
            f"{len(stray)} chargeback row line id(s) have no stored billing line "
            f"(first: {stray[0]!r}); the date's lines and rows disagree"
        )
    return by_line


def _no_rows_part(tenant_id: str, line: BillingLineItem) -> ChargebackRow:
    return ChargebackRow(
        tenant_id, line.date, line.line_id, UNALLOCATED,
        line.product_type, line.product_category, line.resource_id, line.env_id,
        "unallocated", NO_ROWS_RULE, line.amount, "the line has no chargeback rows",
    )  # fmt: skip


def focus_rows(
    ctx: ExportContext,
    lines: Sequence[BillingLineItem],
    rows: Sequence[ChargebackRow],
    *,
    quoted: bool = False,
) -> Iterator[list[str]]:
    """Yield one date's FOCUS rows (cells in ``ctx.columns`` order, ``""`` = null).

    Lines come in ``line_id`` order, the parts of a line in commit order. ``quoted``:
    each cell is a CSV field already (see :class:`~.parts.PartWriter`).

    Raises:
        MissingLineError: a row's line is not among ``lines``.
    """
    by_line = _lookup_rows(lines, rows)
    writer = ctx.part_writer(quoted=quoted)
    for line in sorted(lines, key=lambda item: item.line_id):
        parts = by_line.get(line.line_id) or [_no_rows_part(ctx.tenant_id, line)]
        origin = _origin_cells(ctx, line)
        yield from writer.rows(
            line, parts, writer.base(origin), priced=origin["PricingCategory"] != ""
        )
