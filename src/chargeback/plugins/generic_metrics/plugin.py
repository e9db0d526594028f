"""The generic metrics ecosystem plugin (DESIGN §19): wiring, one instance per tenant.

No bill exists: the cost input prices Prometheus quantities with each cost type's
rates, and the handler splits the lines by a usage selector grouped by a label, or
evenly over the identities found by discovery selectors or listed in the settings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from chargeback.core.rules import FallbackAllocator
from chargeback.core.sources import HttpClient
from chargeback.core.sources.day_range import DayRangeQuery
from chargeback.errors import PluginError
from chargeback.plugins.generic_metrics.config import GenericMetricsSettings
from chargeback.plugins.generic_metrics.cost_input import MetricsCostInput
from chargeback.plugins.generic_metrics.handler import SERVICE, Discovered, MetricsHandler
from chargeback.plugins.generic_metrics.usage import LabelUsageSource

__all__ = ["NAME", "GenericMetricsPlugin"]

NAME = "generic_metrics"


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class GenericMetricsPlugin:
    """Any shared platform whose cost follows its Prometheus metrics.

    Args:
        transport: an httpx transport for every request (default: the network).
        today: the current UTC day (the identity listing looks back from it).
    """

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        today: Callable[[], dt.date] = _today,
    ) -> None:
        self._transport = transport
        self._today = today
        self._settings: GenericMetricsSettings | None = None
        self._client: HttpClient | None = None
        self._query: DayRangeQuery | None = None
        self._handler: MetricsHandler | None = None
        self._fallback = FallbackAllocator()

    @property
    def name(self) -> str:
        """The ecosystem name."""
        return NAME

    def initialize(self, config: Mapping[str, Any]) -> None:
        """Validate ``plugin_settings`` and create the client and the handler.

        Raises:
            pydantic.ValidationError: the settings are invalid.
        """
        settings = GenericMetricsSettings.model_validate(dict(config))
        server = settings.prometheus
        self._settings = settings
        self._client, self._query = server.connect(settings.http, transport=self._transport)
        self._handler = MetricsHandler(settings, self._query)

    def _ready(self) -> tuple[GenericMetricsSettings, DayRangeQuery, MetricsHandler]:
        if self._settings is None or self._query is None or self._handler is None:
            raise PluginError("the plugin is not initialized; call initialize() first", plugin=NAME)
        return self._settings, self._query, self._handler

    def get_service_handlers(self) -> Mapping[str, MetricsHandler]:
        """The one handler."""
        return {SERVICE: self._ready()[2]}

    def get_cost_input(self) -> MetricsCostInput:
        """Lines from each cost type's rates x Prometheus quantities."""
        settings, query, _ = self._ready()
        return MetricsCostInput(query, settings)

    def get_metrics_source(self) -> LabelUsageSource:
        """Usage per label value from Prometheus."""
        settings, query, _ = self._ready()
        return LabelUsageSource(query, {c.name: c for c in settings.cost_types})

    def get_storage_module(self) -> None:
        """No tables of its own."""

    def get_fallback_allocator(self) -> FallbackAllocator:
        """Warning + UNALLOCATED for product types no handler claims."""
        return self._fallback

    async def build_shared_context(self, tenant_id: str) -> Discovered:
        """List the identities per day once for this run."""
        return await self._ready()[2].discover(self._today())

    async def close(self) -> None:
        """Close the HTTP client. Idempotent."""
        if self._client is not None:
            await self._client.aclose()
