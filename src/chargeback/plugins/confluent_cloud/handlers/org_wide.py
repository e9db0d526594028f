"""Org-wide lines (support, audit log, promotions) and the org-level inventory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chargeback.core.models import BillingLineItem, Identity, IdentityResolution, Resource
from chargeback.core.plugin.protocols import ResolveContext
from chargeback.core.rules import RuleSpec
from chargeback.plugins.confluent_cloud.handlers.base import BaseHandler
from chargeback.plugins.confluent_cloud.inventory import Inventory

__all__ = ["OrgWideHandler"]

_EVEN = RuleSpec(kind="even", name="org_wide_even")


class OrgWideHandler(BaseHandler):
    """``SUPPORT``, ``AUDIT_LOG_READ`` and ``PROMO_CREDIT`` lines; owns the IAM inventory.

    Split evenly over the tenant's identities active on the date, of the types in
    ``org_wide.identity_types`` (service accounts and users by default). A
    ``PROMO_CREDIT`` tied to a resource goes evenly to the owners of the API keys on
    that resource when there are any.
    """

    service_type_name = "org_wide"
    DEFAULTS = {"SUPPORT": _EVEN, "AUDIT_LOG_READ": _EVEN, "PROMO_CREDIT": _EVEN}

    async def gather_resources(self, tenant_id: str, shared: Any) -> Sequence[Resource]:
        """Environments and identity providers."""
        if not isinstance(shared, Inventory):
            return ()
        return (*shared.environments, *shared.identity_providers)

    async def gather_identities(self, tenant_id: str, shared: Any) -> Sequence[Identity]:
        """Service accounts, users, identity pools and API keys."""
        if not isinstance(shared, Inventory):
            return ()
        return (*shared.service_accounts, *shared.users, *shared.identity_pools, *shared.api_keys)

    def resolve_identities(
        self, line: BillingLineItem, context: ResolveContext | None = None
    ) -> IdentityResolution:
        """The active identities of the configured types (or a promo's resource owners)."""
        idx = self._index.get(context, line.date)
        if line.resource_id:
            owners = idx.owners_on(line.resource_id)
            if owners:
                return IdentityResolution(owners, idx.key_owner)
        types = tuple(self._settings.org_wide.identity_types)
        found = idx.of_types(types)
        reason = None if found else f"no active identities of types {list(types)}"
        return IdentityResolution(found, idx.key_owner, reason)
