"""Managed and custom connectors: charged to the connector's owner."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chargeback.core.models import (
    BillingLineItem,
    Identity,
    IdentityResolution,
    IdentitySet,
    Resource,
)
from chargeback.core.plugin.protocols import ResolveContext
from chargeback.core.rules import RuleSpec
from chargeback.plugins.confluent_cloud.handlers.base import BaseHandler
from chargeback.plugins.confluent_cloud.inventory import (
    CONNECTOR_OWNER_UNKNOWN,
    SENTINELS,
    Inventory,
)

__all__ = ["ConnectorHandler"]

_OWNER = RuleSpec(kind="owner", name="connector_owner")


class ConnectorHandler(BaseHandler):
    """``CONNECT_*`` and ``CUSTOM_CONNECT_*`` lines: the connector's owner pays.

    The owner comes from the connector's auth mode (``SERVICE_ACCOUNT`` -> the
    service account, ``KAFKA_API_KEY`` -> the key's owner); masked or unknown
    credentials are charged to the sentinel identities
    ``CONNECTOR_CREDENTIALS_MASKED`` / ``CONNECTOR_OWNER_UNKNOWN``, so the cost stays
    visible.
    """

    service_type_name = "connectors"
    DEFAULTS = dict.fromkeys(
        (
            "CONNECT_CAPACITY", "CONNECT_NUM_TASKS", "CONNECT_THROUGHPUT",
            "CONNECT_NUM_RECORDS", "CUSTOM_CONNECT_NUM_TASKS", "CUSTOM_CONNECT_THROUGHPUT",
            "CUSTOM_CONNECT_PLUGIN",
        ),
        _OWNER,
    )  # fmt: skip

    async def gather_resources(self, tenant_id: str, shared: Any) -> Sequence[Resource]:
        """The connectors of every cluster."""
        return shared.connectors if isinstance(shared, Inventory) else ()

    async def gather_identities(self, tenant_id: str, shared: Any) -> Sequence[Identity]:
        """The sentinel owners of connectors with masked or unknown credentials."""
        return SENTINELS

    def resolve_identities(
        self, line: BillingLineItem, context: ResolveContext | None = None
    ) -> IdentityResolution:
        """The connector's owner (an API key resolves to its owner)."""
        res = self._index.get(context, line.date).resources.get(line.resource_id or "")
        if (
            res is not None
            and res.attributes.get("auth_mode") == "KAFKA_API_KEY"
            and res.owner_id == res.attributes.get("kafka_api_key")
        ):
            idx = self._index.get(context, line.date)
            if res.owner_id not in idx.key_owner:
                unknown = idx.identity(CONNECTOR_OWNER_UNKNOWN)
                return IdentityResolution(IdentitySet([unknown]), idx.key_owner)
        return self.owner_resolution(line, context, "connector")
