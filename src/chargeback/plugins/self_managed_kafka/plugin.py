"""The self-managed Kafka ecosystem plugin (DESIGN §19): wiring, one instance per tenant.

No bill exists: the cost input prices Prometheus quantities with the rate card, and
the handler splits the lines by the principals' bytes.
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
from chargeback.plugins.self_managed_kafka.config import SelfManagedKafkaSettings
from chargeback.plugins.self_managed_kafka.cost_input import KafkaCostInput
from chargeback.plugins.self_managed_kafka.handler import Discovered, KafkaHandler
from chargeback.plugins.self_managed_kafka.usage import PrincipalBytesSource

__all__ = ["NAME", "SelfManagedKafkaPlugin"]

NAME = "self_managed_kafka"


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class SelfManagedKafkaPlugin:
    """Self-managed Kafka clusters scraped by one Prometheus.

    Args:
        transport: an httpx transport for every request (default: the network).
        today: the current UTC day (the principal listing looks back from it).
    """

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        today: Callable[[], dt.date] = _today,
    ) -> None:
        self._transport = transport
        self._today = today
        self._settings: SelfManagedKafkaSettings | None = None
        self._client: HttpClient | None = None
        self._query: DayRangeQuery | None = None
        self._handler: KafkaHandler | None = None
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
        settings = SelfManagedKafkaSettings.model_validate(dict(config))
        server = settings.prometheus
        self._settings = settings
        self._client, self._query = server.connect(settings.http, transport=self._transport)
        self._handler = KafkaHandler(settings, self._query)

    def _ready(self) -> tuple[SelfManagedKafkaSettings, DayRangeQuery, KafkaHandler]:
        if self._settings is None or self._query is None or self._handler is None:
            raise PluginError("the plugin is not initialized; call initialize() first", plugin=NAME)
        return self._settings, self._query, self._handler

    def get_service_handlers(self) -> Mapping[str, KafkaHandler]:
        """The one handler."""
        return {"kafka": self._ready()[2]}

    def get_cost_input(self) -> KafkaCostInput:
        """Lines from the rate card x Prometheus quantities."""
        settings, query, _ = self._ready()
        return KafkaCostInput(query, settings)

    def get_metrics_source(self) -> PrincipalBytesSource:
        """Bytes per principal from Prometheus."""
        return PrincipalBytesSource(self._ready()[1])

    def get_storage_module(self) -> None:
        """No tables of its own."""

    def get_fallback_allocator(self) -> FallbackAllocator:
        """Warning + UNALLOCATED for product types no handler claims."""
        return self._fallback

    async def build_shared_context(self, tenant_id: str) -> Discovered:
        """List the principals per cluster once for this run."""
        return await self._ready()[2].discover(self._today())

    async def close(self) -> None:
        """Close the HTTP client. Idempotent."""
        if self._client is not None:
            await self._client.aclose()
