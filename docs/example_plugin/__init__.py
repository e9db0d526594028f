"""An example ecosystem plugin: a shared platform's daily bill, split by team weights.

This is the worked example of "Writing a plugin" in the README. Copy the folder into
your ``plugins_path`` directory and configure a tenant::

    plugins_path: ./plugins
    tenants:
      platform:
        ecosystem: shared_platform
        plugin_settings:
          daily_cost: "120.00"
          teams: {payments: 3, search: 1}

Every day then has one billing line of ``daily_cost``; it is split among the teams in
proportion to their weights, exactly (the parts always add up to the line).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chargeback.core.models import (
    Allocation,
    AllocationContext,
    AllocationResult,
    BillingLineItem,
    CostType,
    Identity,
    IdentityResolution,
    IdentitySet,
    MetricQuery,
    Resource,
)
from chargeback.core.money import split, to_minor
from chargeback.core.plugin.protocols import (
    CostAllocator,
    CostInput,
    MetricsSource,
    PluginFactory,
    ResolveContext,
    ServiceHandler,
    StorageModule,
)

PRODUCT_TYPE = "PLATFORM"
RESOURCE_ID = "platform"


class Settings(BaseModel):
    """The tenant's ``plugin_settings``, validated on the first line of ``initialize``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    daily_cost: Decimal = Field(gt=0)
    teams: dict[str, int] = Field(min_length=1)
    # The engine reads these two itself; a plugin must accept them.
    allocator_overrides: dict[str, str] = Field(default_factory=dict)
    identity_resolver_overrides: dict[str, str] = Field(default_factory=dict)


class DailyCost:
    """CostInput: one billing line per day."""

    def __init__(self, amount: int) -> None:
        self._amount = amount

    async def gather(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> AsyncIterator[BillingLineItem]:
        """Yield the line of every day ``start <= day < end``."""
        day = start
        while day < end:
            yield BillingLineItem(
                line_id=f"platform-{day.isoformat()}",
                date=day,
                product_type=PRODUCT_TYPE,
                product_category="platform",
                amount=self._amount,
                resource_id=RESOURCE_ID,
            )
            day += dt.timedelta(days=1)


class TeamWeights:
    """CostAllocator: split a line among the resolved teams by their weights."""

    def __init__(self, weights: Mapping[str, int]) -> None:
        self._weights = dict(weights)

    def __call__(self, ctx: AllocationContext, /) -> AllocationResult:
        """Return one part per team; ``split`` makes them sum to the line exactly."""
        teams = ctx.identities.ids  # sorted: the same remainders every time
        if not teams:
            return AllocationResult.unallocated(ctx.line, "team_weights", "no teams configured")
        parts = split(ctx.line.amount, [self._weights[t] for t in teams])
        return AllocationResult(
            [
                Allocation(t, p, CostType.USAGE, "team_weights")
                for t, p in zip(teams, parts, strict=True)
            ]
        )


class PlatformHandler:
    """ServiceHandler: the platform's one resource and the teams that pay for it."""

    service_type = "platform"
    handles_product_types: Sequence[str] = (PRODUCT_TYPE,)

    def __init__(self, settings: Settings) -> None:
        self._teams = [Identity(team, "team") for team in sorted(settings.teams)]
        self._allocator = TeamWeights(settings.teams)

    async def gather_resources(self, tenant_id: str, shared: Any) -> Sequence[Resource]:
        """The one billed resource."""
        return [Resource(RESOURCE_ID, "platform")]

    async def gather_identities(self, tenant_id: str, shared: Any) -> Sequence[Identity]:
        """The configured teams."""
        return self._teams

    def get_metrics_for_product_type(self, product_type: str) -> Sequence[MetricQuery]:
        """No usage metrics: the weights are configuration."""
        return ()

    def resolve_identities(
        self, line: BillingLineItem, context: ResolveContext | None = None
    ) -> IdentityResolution:
        """Every team active on the line's day may be charged."""
        if context is not None:
            teams = context["cached_identities"].of_type("team")
        else:
            teams = IdentitySet(self._teams)
        return IdentityResolution(teams.active_on(line.date))

    def get_allocator(self, product_type: str) -> CostAllocator:
        """The weights allocator."""
        return self._allocator


class SharedPlatformPlugin:
    """EcosystemPlugin ``shared_platform``."""

    name = "shared_platform"

    def __init__(self) -> None:
        self._settings: Settings | None = None

    def initialize(self, config: Mapping[str, Any]) -> None:
        """Validate ``plugin_settings``; a ValidationError names the bad field."""
        self._settings = Settings.model_validate(dict(config))

    def _typed(self) -> Settings:
        if self._settings is None:
            raise RuntimeError("initialize() was not called")
        return self._settings

    def get_service_handlers(self) -> Mapping[str, ServiceHandler]:
        """One handler."""
        return {"platform": PlatformHandler(self._typed())}

    def get_cost_input(self) -> CostInput:
        """The daily line."""
        return DailyCost(to_minor(self._typed().daily_cost))

    def get_metrics_source(self) -> MetricsSource | None:
        """No usage source."""
        return None

    def get_storage_module(self) -> StorageModule | None:
        """No tables of its own."""
        return None

    def get_fallback_allocator(self) -> CostAllocator | None:
        """None: the engine's default sends unclaimed lines to UNALLOCATED."""
        return None

    async def build_shared_context(self, tenant_id: str) -> Any:
        """Nothing shared between handlers."""
        return None

    async def close(self) -> None:
        """No connections to close."""


def register() -> tuple[str, PluginFactory]:
    """Tell chargeback the plugin's name and how to make one instance per tenant."""
    return SharedPlatformPlugin.name, SharedPlatformPlugin
