"""The API's answers as pydantic models: they serialize the JSON and generate the schema.

Money is a decimal string with nine places (exact minor units, DESIGN §5), in the
bill's currency (``currency`` of each answer). Dates are ``YYYY-MM-DD``, times
ISO-8601 UTC. Every window shows both its days inclusive.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AllocationAnswer",
    "AllocationEntryModel",
    "AllocationSetModel",
    "AmountsModel",
    "DateModel",
    "DatesAnswer",
    "ErrorAnswer",
    "ExplainAnswer",
    "IdentitiesAnswer",
    "IdentityModel",
    "IndexAnswer",
    "LineModel",
    "PartModel",
    "ResourceModel",
    "ResourcesAnswer",
    "RunModel",
    "RunsAnswer",
    "TenantModel",
    "WindowModel",
]

Money = str


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorAnswer(_Model):
    """A refused request: what was wrong and how to ask instead."""

    status: str = Field(description="`bad request`, `unauthorized`, `forbidden`, `not found`")
    error: str
    parameter: str | None = Field(None, description="the query parameter at fault")


class TenantModel(_Model):
    tenant: str
    latest_date: str | None


class IndexAnswer(_Model):
    api: str
    chargeback: str
    tenants: list[TenantModel]


class WindowModel(_Model):
    start: str = Field(description="first day, inclusive")
    end: str = Field(description="last day, inclusive")


class AmountsModel(_Model):
    cost: Money = Field(description="usage + shared + unallocated + other, exactly")
    usage: Money
    shared: Money
    unallocated: Money
    other: Money = Field(description="cost types beyond usage, shared and unallocated")


class AllocationEntryModel(_Model):
    key: dict[str, str] = Field(description="the aggregate's dimension values ('' = none)")
    names: dict[str, str | None] = Field(
        description="display names of identity, resource and environment keys"
    )
    cost: Money
    usage: Money
    shared: Money
    unallocated: Money
    other: Money


class AllocationSetModel(_Model):
    window: WindowModel
    billed: Money = Field(description="the billing lines' total of the set's calculated days")
    allocated: Money = Field(description="the chargeback rows' total of those days")
    unallocated: Money = Field(description="the part of allocated charged to UNALLOCATED")
    reconciled: bool = Field(description="allocated == billed")
    selected: AmountsModel = Field(description="the sum of every entry the filters kept")
    total_entries: int
    calculated_days: int
    missing_days: list[str] = Field(description="days of the window not calculated yet")
    entries: list[AllocationEntryModel]


class AllocationAnswer(_Model):
    tenant: str
    currency: str
    window: WindowModel
    aggregate: list[str]
    step: str | None
    accumulate: bool
    filter: list[str]
    sort: str
    limit: int | None
    offset: int
    billed: Money = Field(description="the whole window's billed total")
    allocated: Money
    unallocated: Money
    reconciled: bool
    missing_days: list[str]
    sets: list[AllocationSetModel]


class IdentityModel(_Model):
    identity_id: str
    identity_type: str
    name: str | None
    owner_id: str | None
    resource_id: str | None
    created_at: str | None
    deleted_at: str | None


class IdentitiesAnswer(_Model):
    tenant: str
    total: int
    identities: list[IdentityModel]


class ResourceModel(_Model):
    resource_id: str
    resource_type: str
    name: str | None
    env_id: str | None
    parent_id: str | None
    owner_id: str | None
    created_at: str | None
    deleted_at: str | None


class ResourcesAnswer(_Model):
    tenant: str
    total: int
    resources: list[ResourceModel]


class DateModel(_Model):
    date: str
    calculated: bool
    status: str = Field(description="`open` while the bill may still change, then `closed`")
    calc_seq: int | None
    calculated_at: str | None
    billing_fingerprint: str | None
    settings_fingerprint: str | None
    inventory_fingerprint: str | None
    line_count: int | None
    row_count: int | None
    billed: Money | None
    allocated: Money | None
    unallocated: Money | None
    reconciled: bool | None


class DatesAnswer(_Model):
    tenant: str
    currency: str
    window: WindowModel
    open_days: int = Field(description="days before today whose bill may still change")
    last_run: RunModel | None
    dates: list[DateModel]


class RunModel(_Model):
    run_id: str
    trigger: str
    status: str
    started_at: str
    finished_at: str | None
    counts: dict[str, int]
    error: str | None


class RunsAnswer(_Model):
    tenant: str
    runs: list[RunModel]


class LineModel(_Model):
    date: str
    line_id: str
    product_type: str
    product_category: str
    resource_id: str | None
    resource_name: str | None
    env_id: str | None
    environment_name: str | None
    amount: Money
    quantity: str | None
    unit: str | None
    unit_price: str | None
    original_amount: Money | None
    discount_amount: Money | None
    description: str | None
    error: str | None


class PartModel(_Model):
    identity_id: str
    identity_name: str | None
    cost_type: str
    rule: str
    reason: str | None
    amount: Money
    share: str | None = Field(description="amount / line amount, 9 places (none for a 0 line)")


class ExplainAnswer(_Model):
    tenant: str
    currency: str
    line: LineModel
    allocated: Money = Field(description="the parts' sum")
    reconciled: bool = Field(description="allocated == the line's amount")
    parts: list[PartModel]
    usage: str = Field(description="where the usage figures behind the split are")


DatesAnswer.model_rebuild()
