"""Schema Registry / Stream Governance: even over the owners of the SR's API keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chargeback.core.models import BillingLineItem, IdentityResolution, Resource
from chargeback.core.plugin.protocols import ResolveContext
from chargeback.core.rules import RuleSpec
from chargeback.plugins.confluent_cloud.handlers.base import BaseHandler
from chargeback.plugins.confluent_cloud.inventory import Inventory

__all__ = ["SchemaRegistryHandler"]

_EVEN = RuleSpec(kind="even", name="schema_registry_key_owners_even")


class SchemaRegistryHandler(BaseHandler):
    """``SCHEMA_REGISTRY``, ``GOVERNANCE_BASE``, ``NUM_RULES`` lines.

    Evenly over the owners of API keys scoped to the line's Schema Registry; if it
    has none, over the owners of every API key in the line's environment.
    """

    service_type_name = "schema_registry"
    DEFAULTS = {"SCHEMA_REGISTRY": _EVEN, "GOVERNANCE_BASE": _EVEN, "NUM_RULES": _EVEN}

    async def gather_resources(self, tenant_id: str, shared: Any) -> Sequence[Resource]:
        """The Schema Registry clusters."""
        return shared.schema_registries if isinstance(shared, Inventory) else ()

    def resolve_identities(
        self, line: BillingLineItem, context: ResolveContext | None = None
    ) -> IdentityResolution:
        """The SR's key owners, else the environment's key owners."""
        idx = self._index.get(context, line.date)
        owners = idx.owners_on(line.resource_id)
        if not owners:
            env = line.env_id
            res = idx.resources.get(line.resource_id or "")
            if env is None and res is not None:
                env = res.env_id
            owners = idx.owners_in_env(env)
        reason = None
        if not owners:
            reason = f"no API key owners on {line.resource_id} or in environment {line.env_id}"
        return IdentityResolution(owners, idx.key_owner, reason)
