"""Kafka clusters: network by bytes per principal, capacity by a usage/shared ratio."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from chargeback.core.models import BillingLineItem, IdentityResolution, Resource
from chargeback.core.plugin.protocols import ResolveContext
from chargeback.core.rules import RuleSpec
from chargeback.plugins.confluent_cloud.handlers.base import BaseHandler
from chargeback.plugins.confluent_cloud.inventory import Inventory

__all__ = ["KafkaHandler"]

_BOTH = ("request_bytes", "response_bytes")
_REQ = ("request_bytes",)
_RESP = ("response_bytes",)
_NET = "kafka_network_usage"
_CAP = "kafka_capacity_usage_shared"
_SHARED = Fraction(7, 10)


class KafkaHandler(BaseHandler):
    """``KAFKA_*`` lines of a cluster.

    Defaults: ``KAFKA_NETWORK_WRITE`` by request bytes, ``KAFKA_NETWORK_READ`` by
    response bytes, ``KAFKA_REST_PRODUCE`` by request bytes (all 100% usage);
    ``KAFKA_NUM_CKU(S)``, ``KAFKA_BASE``, ``KAFKA_PARTITION``, ``KAFKA_STREAMS`` 70%
    by request+response bytes and 30% evenly over the active principals;
    ``KAFKA_STORAGE`` 70% by request (written) bytes, 30% shared. The active
    principals of a cluster on a date are the owners of the API keys on it plus the
    principals its metrics show.
    """

    service_type_name = "kafka"
    DEFAULTS = {
        "KAFKA_NETWORK_READ": RuleSpec(kind="usage", name=_NET, metrics=_RESP),
        "KAFKA_NETWORK_WRITE": RuleSpec(kind="usage", name=_NET, metrics=_REQ),
        "KAFKA_REST_PRODUCE": RuleSpec(kind="usage", name=_NET, metrics=_REQ),
        "KAFKA_NUM_CKUS": RuleSpec(kind="usage", name=_CAP, ratio=_SHARED, metrics=_BOTH),
        "KAFKA_NUM_CKU": RuleSpec(kind="usage", name=_CAP, ratio=_SHARED, metrics=_BOTH),
        "KAFKA_BASE": RuleSpec(kind="usage", name=_CAP, ratio=_SHARED, metrics=_BOTH),
        "KAFKA_PARTITION": RuleSpec(kind="usage", name=_CAP, ratio=_SHARED, metrics=_BOTH),
        "KAFKA_STREAMS": RuleSpec(kind="usage", name=_CAP, ratio=_SHARED, metrics=_BOTH),
        "KAFKA_STORAGE": RuleSpec(
            kind="usage", name="kafka_storage_usage_shared", ratio=_SHARED, metrics=_REQ
        ),
    }

    async def gather_resources(self, tenant_id: str, shared: Any) -> Sequence[Resource]:
        """The tenant's Kafka clusters."""
        return shared.clusters if isinstance(shared, Inventory) else ()

    def resolve_identities(
        self, line: BillingLineItem, context: ResolveContext | None = None
    ) -> IdentityResolution:
        """The owners of the API keys on the line's cluster; keys map to owners."""
        idx = self._index.get(context, line.date)
        owners = idx.owners_on(line.resource_id)
        reason = None if owners else f"no active API key owners on cluster {line.resource_id}"
        return IdentityResolution(owners, idx.key_owner, reason)
