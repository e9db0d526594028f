"""ksqlDB clusters: charged to the cluster's credential identity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chargeback.core.models import BillingLineItem, IdentityResolution, Resource
from chargeback.core.plugin.protocols import ResolveContext
from chargeback.core.rules import RuleSpec
from chargeback.plugins.confluent_cloud.handlers.base import BaseHandler
from chargeback.plugins.confluent_cloud.inventory import Inventory

__all__ = ["KsqlHandler"]

_OWNER = RuleSpec(kind="owner", name="ksql_credential_identity")


class KsqlHandler(BaseHandler):
    """``KSQL_NUM_CSU(S)`` lines: the ksqlDB cluster's ``credential_identity`` pays."""

    service_type_name = "ksqldb"
    DEFAULTS = {"KSQL_NUM_CSUS": _OWNER, "KSQL_NUM_CSU": _OWNER}

    async def gather_resources(self, tenant_id: str, shared: Any) -> Sequence[Resource]:
        """The ksqlDB clusters."""
        return shared.ksql_clusters if isinstance(shared, Inventory) else ()

    def resolve_identities(
        self, line: BillingLineItem, context: ResolveContext | None = None
    ) -> IdentityResolution:
        """The credential identity of the line's ksqlDB cluster."""
        return self.owner_resolution(line, context, "ksqlDB cluster")
