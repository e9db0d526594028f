"""The Confluent Cloud ecosystem plugin (DESIGN §10): wiring, one instance per tenant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import structlog

from chargeback.core.ledger import UsagePolicy
from chargeback.core.rules import FallbackAllocator
from chargeback.core.sources import (
    Credentials,
    HttpClient,
    PrometheusSource,
    RateLimit,
    SharedRatePool,
)
from chargeback.errors import PluginError
from chargeback.plugins.confluent_cloud.config import CCloudSettings
from chargeback.plugins.confluent_cloud.cost_input import CCloudCostInput
from chargeback.plugins.confluent_cloud.handlers import HANDLER_CLASSES, BaseHandler, IndexCache
from chargeback.plugins.confluent_cloud.inventory import SENTINELS, Inventory, gather_inventory
from chargeback.plugins.confluent_cloud.metrics import (
    RATE_POOL,
    MetricsApiSource,
    prometheus_source,
)
from chargeback.plugins.confluent_cloud.storage import CCloudStorageModule

__all__ = ["NAME", "ConfluentCloudPlugin"]

NAME = "confluent_cloud"

_log = structlog.get_logger(__name__)

AUTH_HINT = (
    "check the API key and secret of this tenant and the key's role "
    "(OrganizationAdmin/BillingAdmin/MetricsViewer)"
)
"""What a 401/403 tells the operator to check."""


class ConfluentCloudPlugin:
    """One Confluent Cloud organization: clients, handlers, billing and usage sources.

    Args:
        transport: an httpx transport for every request (tests pass
            ``httpx.ASGITransport(app=ccloud_sim_app)``); default: the network.
        client: a ready ``httpx.AsyncClient`` instead (not closed by :meth:`close`).
        sleep: awaited for backoff waits (tests pass a fast fake).
    """

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        sleep: Any = None,
    ) -> None:
        self._transport = transport
        self._http = client
        self._sleep = sleep
        self._settings: CCloudSettings | None = None
        self._client: HttpClient | None = None
        self._handlers: dict[str, BaseHandler] = {}
        self._index = IndexCache()
        self._fallback = FallbackAllocator()
        self._storage = CCloudStorageModule()
        self._inventory: Inventory | None = None

    @property
    def name(self) -> str:
        """The ecosystem name."""
        return NAME

    @property
    def settings(self) -> CCloudSettings:
        """The validated settings (after :meth:`initialize`)."""
        if self._settings is None:
            raise PluginError("the plugin is not initialized; call initialize() first", plugin=NAME)
        return self._settings

    @property
    def client(self) -> HttpClient:
        """The tenant's HTTP client (after :meth:`initialize`)."""
        if self._client is None:
            raise PluginError("the plugin is not initialized; call initialize() first", plugin=NAME)
        return self._client

    @property
    def inventory(self) -> Inventory | None:
        """The latest crawl, if any."""
        return self._inventory

    def initialize(self, config: Mapping[str, Any]) -> None:
        """Validate ``plugin_settings`` and create the client and handlers.

        Raises:
            pydantic.ValidationError: the settings are invalid.
        """
        settings = CCloudSettings.model_validate(dict(config))
        self._settings = settings
        extra: dict[str, Any] = {} if self._sleep is None else {"sleep": self._sleep}
        self._client = HttpClient(
            Credentials(settings.api_key, settings.api_secret),
            settings.http,
            client=self._http,
            transport=self._transport,
            auth_hint=AUTH_HINT,
            rate_pools=_rate_pools(settings),
            **extra,
        )
        self._handlers = {
            cls.service_type_name: cls(settings, self._index) for cls in HANDLER_CLASSES
        }
        unknown = set(settings.allocation) - {
            pt for h in self._handlers.values() for pt in h.handles_product_types
        }
        if unknown:
            _log.warning("allocation settings for unhandled product types", types=sorted(unknown))

    def get_service_handlers(self) -> Mapping[str, BaseHandler]:
        """The handlers by service type."""
        return dict(self._handlers)

    def get_cost_input(self) -> CCloudCostInput:
        """The ``/billing/v1/costs`` reader."""
        return CCloudCostInput(self.client, self.settings.base_url, self.settings.billing)

    def get_metrics_source(self) -> MetricsApiSource | PrometheusSource:
        """The Metrics API, or the configured Prometheus."""
        metrics = self.settings.metrics
        if metrics.source == "prometheus" and metrics.prometheus is not None:
            return prometheus_source(self.client, metrics.prometheus)
        return MetricsApiSource(
            self.client,
            self.settings.telemetry_url,
            metrics.limit,
            resources_per_query=metrics.resources_per_query,
        )

    def get_usage_policy(self) -> UsagePolicy:
        """The usage source's name and retention, for the usage ledger (DESIGN §13)."""
        metrics = self.settings.metrics
        if metrics.source == "prometheus":
            return UsagePolicy(
                source="prometheus", fallback=metrics.when_unavailable, label="Prometheus"
            )
        return UsagePolicy(
            source="metrics_api",
            retention_days=metrics.retention_days,
            fallback=metrics.when_unavailable,
            label="the Metrics API",
        )

    def get_storage_module(self) -> CCloudStorageModule:
        """The ``ccloud_billing`` table."""
        return self._storage

    def get_fallback_allocator(self) -> FallbackAllocator:
        """Warning + UNALLOCATED for product types no handler claims."""
        return self._fallback

    async def build_shared_context(self, tenant_id: str) -> Inventory:
        """Crawl the tenant's inventory once for this run."""
        inventory = await gather_inventory(self.client, self.settings)
        self._inventory = inventory
        self._index.set_inventory(inventory, SENTINELS)
        return inventory

    async def close(self) -> None:
        """Close the HTTP client. Idempotent."""
        if self._client is not None:
            await self._client.aclose()


_METRICS_POOLS: dict[int, SharedRatePool] = {}
"""The Metrics API's pools by ``metrics.requests_per_minute``: its limit is per IP, so
the tenants of one process with the same setting share one pool."""


def _rate_pools(settings: CCloudSettings) -> dict[str, SharedRatePool]:
    """The Metrics API's rate pool: ``metrics.requests_per_minute`` in any minute, for
    every tenant of this process together (none: its requests are paced by their
    host's ``http.requests_per_second``)."""
    per_minute = settings.metrics.requests_per_minute
    if per_minute is None:
        return {}
    pool = _METRICS_POOLS.get(per_minute)
    if pool is None:
        pool = _METRICS_POOLS[per_minute] = SharedRatePool(
            RateLimit(requests=per_minute, per_s=60.0)
        )
    return {RATE_POOL: pool}
