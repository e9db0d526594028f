"""FOCUS columns: which ones each version has, and what a Confluent Cloud line maps to.

Column order follows the FOCUS guidance (FOCUS columns alphabetically, then the custom
``x_`` columns alphabetically). Every column's source, and what stays null and why, is
documented in README.md ("FOCUS export").
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COLUMNS",
    "VERSIONS",
    "ChargeKind",
    "ServiceInfo",
    "charge_kind",
    "service_of",
]

VERSIONS = ("1.2", "1.3")
"""The FOCUS versions the emitter writes."""

_FOCUS_12 = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountStatus",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
)
_FOCUS_13_ONLY = (
    "AllocatedMethodDetails",
    "AllocatedMethodId",
    "AllocatedResourceId",
    "AllocatedResourceName",
    "AllocatedTags",
    "HostProviderName",
    "ServiceProviderName",
)
_CUSTOM = (
    "x_AllocationReason",
    "x_AllocationRule",
    "x_BillingPeriodStatus",
    "x_ChargePeriodStatus",
    "x_CostType",
    "x_DiscountAmount",
    "x_IdentityId",
    "x_IdentityType",
    "x_LineId",
    "x_LineType",
    "x_NetworkAccessType",
    "x_Product",
    "x_Unit",
)

COLUMNS: dict[str, tuple[str, ...]] = {
    "1.2": (*_FOCUS_12, *_CUSTOM),
    "1.3": (*sorted((*_FOCUS_12, *_FOCUS_13_ONLY)), *_CUSTOM),
}
"""The columns of each version, in file order."""


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """``ServiceName``, ``ServiceCategory`` and ``ServiceSubcategory`` of a Confluent product."""

    name: str
    category: str
    subcategory: str


_KAFKA = ServiceInfo("Confluent Cloud Kafka", "Integration", "Messaging")
_CONNECT = ServiceInfo("Confluent Cloud Connect", "Integration", "Other (Integration)")
_GOVERNANCE = ServiceInfo(
    "Confluent Cloud Stream Governance", "Management and Governance", "Data Governance"
)
_LINKING = ServiceInfo("Confluent Cloud Cluster Linking", "Integration", "Messaging")
_SERVICES: dict[str, ServiceInfo] = {
    "KAFKA": _KAFKA,
    "CONNECT": _CONNECT,
    "KSQL": ServiceInfo("Confluent Cloud ksqlDB", "Analytics", "Streaming Analytics"),
    "FLINK": ServiceInfo("Confluent Cloud for Apache Flink", "Analytics", "Streaming Analytics"),
    "SCHEMA_REGISTRY": _GOVERNANCE,
    "STREAM_GOVERNANCE": _GOVERNANCE,
    "GOVERNANCE": _GOVERNANCE,
    "CLUSTER_LINK": _LINKING,
    "CLUSTER_LINKING": _LINKING,
    "TABLEFLOW": ServiceInfo("Confluent Cloud Tableflow", "Analytics", "Data Processing"),
    "AUDIT_LOG": ServiceInfo("Confluent Cloud Audit Logs", "Security", "Other (Security)"),
    "SUPPORT": ServiceInfo("Confluent Cloud Support", "Management and Governance", "Support"),
    "USM": ServiceInfo(
        "Confluent Unified Stream Manager",
        "Management and Governance",
        "Other (Management and Governance)",
    ),
}
_BY_LINE_PREFIX: tuple[tuple[str, str], ...] = (
    ("KAFKA_", "KAFKA"),
    ("CONNECT_", "CONNECT"),
    ("CUSTOM_CONNECT_", "CONNECT"),
    ("KSQL_", "KSQL"),
    ("FLINK_", "FLINK"),
    ("SCHEMA_REGISTRY", "SCHEMA_REGISTRY"),
    ("GOVERNANCE_", "STREAM_GOVERNANCE"),
    ("NUM_RULES", "STREAM_GOVERNANCE"),
    ("CLUSTER_LINKING_", "CLUSTER_LINK"),
    ("TABLEFLOW_", "TABLEFLOW"),
    ("AUDIT_LOG_", "AUDIT_LOG"),
    ("SUPPORT", "SUPPORT"),
    ("USM_", "USM"),
)
_OTHER = ServiceInfo("Confluent Cloud", "Other", "Other (Other)")


def service_of(product: str, line_type: str) -> ServiceInfo:
    """The service of a line: by its ``product``, else by its line type's prefix.

    A product this table does not know keeps its own name (``Confluent Cloud <PRODUCT>``)
    in category ``Other``; a line with neither (an org-wide credit) is ``Confluent Cloud``.
    """
    known = _SERVICES.get(product.upper()) if product else None
    if known is not None:
        return known
    for prefix, key in _BY_LINE_PREFIX:
        if line_type.startswith(prefix):
            return _SERVICES[key]
    if product:
        return ServiceInfo(f"Confluent Cloud {product}", "Other", "Other (Other)")
    return _OTHER


@dataclass(frozen=True, slots=True)
class ChargeKind:
    """``ChargeCategory``, ``ChargeFrequency`` and whether the line prices a quantity."""

    category: str
    frequency: str
    priced: bool


_CREDIT = ChargeKind("Credit", "One-Time", priced=False)
_USAGE = ChargeKind("Usage", "Usage-Based", priced=True)
_UNPRICED = ChargeKind("Adjustment", "Usage-Based", priced=False)


def charge_kind(line_type: str, amount: int, quantity_known: bool, price_known: bool) -> ChargeKind:
    """Credits (``*CREDIT*`` line types, or a negative line without a price) are
    ``Credit``; a line with a quantity and a price is ``Usage`` (Confluent bills daily
    usage of provisioned or consumed units); any other line (no quantity or no price,
    e.g. a malformed source row) is an ``Adjustment``, since FOCUS requires a usage
    charge to carry both."""
    if "CREDIT" in line_type or (amount < 0 and not price_known):
        return _CREDIT
    if quantity_known and price_known:
        return _USAGE
    return _UNPRICED
