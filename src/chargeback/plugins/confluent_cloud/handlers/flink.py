"""Flink compute pools: CFU per statement owner."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chargeback.core.models import BillingLineItem, IdentityResolution, Resource
from chargeback.core.plugin.protocols import ResolveContext
from chargeback.core.rules import RuleSpec
from chargeback.plugins.confluent_cloud.handlers.base import BaseHandler
from chargeback.plugins.confluent_cloud.inventory import Inventory

__all__ = ["FlinkHandler"]

_CFU = RuleSpec(kind="usage", name="flink_statement_cfu", metrics=("cfu",))


class FlinkHandler(BaseHandler):
    """``FLINK_NUM_CFU(S)`` lines of a compute pool.

    Split by the CFU-minutes each statement consumed (metric grouped by statement
    name), statements mapped to their ``spec.principal``; with no usage, evenly over
    the owners of the pool's statements active that day. Usage by statements not in
    the inventory goes to UNALLOCATED.
    """

    service_type_name = "flink"
    DEFAULTS = {"FLINK_NUM_CFUS": _CFU, "FLINK_NUM_CFU": _CFU}
    UNKNOWN_TO_UNALLOCATED = True

    async def gather_resources(self, tenant_id: str, shared: Any) -> Sequence[Resource]:
        """The compute pools and their statements."""
        if not isinstance(shared, Inventory):
            return ()
        return (*shared.flink_pools, *shared.flink_statements)

    def resolve_identities(
        self, line: BillingLineItem, context: ResolveContext | None = None
    ) -> IdentityResolution:
        """The owners of the pool's statements; statement names map to owners."""
        idx = self._index.get(context, line.date)
        by_name = idx.statements(line.date).get(line.resource_id or "", {})
        owners = set(by_name.values())
        reason = None if owners else f"no statements known on compute pool {line.resource_id}"
        return IdentityResolution(idx.identity_set(owners), by_name, reason)
