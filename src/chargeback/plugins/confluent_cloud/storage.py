"""The plugin's own table: Confluent billing rows with ``env_id`` in the key (DESIGN §7).

The core storage applies :meth:`CCloudStorageModule.migrations` once and, in each
date's commit, replaces the date's ``ccloud_billing`` rows with
:meth:`CCloudStorageModule.billing_rows`. ``env_id`` is ``''`` for rows without an
environment, so it can be part of the primary key. ``price`` and ``quantity`` are
stored as exact decimal text, amounts as integer minor units.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from chargeback.core.models import BillingLineItem
from chargeback.core.plugin.protocols import Migration, PluginRows

__all__ = ["COLUMNS", "TABLE", "CCloudStorageModule"]

TABLE = "ccloud_billing"
COLUMNS = (
    "tenant_id", "date", "env_id", "line_id", "resource_id", "product", "line_type",
    "network_access_type", "price", "quantity", "unit", "original_amount",
    "discount_amount", "amount", "description", "tier_dimensions",
)  # fmt: skip

_CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    tenant_id TEXT NOT NULL,
    date TEXT NOT NULL,
    env_id TEXT NOT NULL DEFAULT '',
    line_id TEXT NOT NULL,
    resource_id TEXT,
    product TEXT,
    line_type TEXT NOT NULL,
    network_access_type TEXT,
    price TEXT,
    quantity TEXT,
    unit TEXT,
    original_amount INTEGER,
    discount_amount INTEGER,
    amount INTEGER NOT NULL,
    description TEXT,
    tier_dimensions JSON,
    PRIMARY KEY (tenant_id, date, env_id, line_id)
);
CREATE INDEX IF NOT EXISTS ix_{TABLE}_resource ON {TABLE} (tenant_id, resource_id, date);
"""


class CCloudStorageModule:
    """The Confluent Cloud :class:`~chargeback.core.plugin.protocols.StorageModule`."""

    @property
    def namespace(self) -> str:
        """The migration namespace."""
        return "confluent_cloud"

    def migrations(self) -> Sequence[Migration]:
        """The ordered schema steps."""
        return (Migration(1, "create ccloud_billing", _CREATE),)

    def billing_rows(
        self, tenant_id: str, day: dt.date, lines: Sequence[BillingLineItem]
    ) -> Sequence[PluginRows]:
        """Return one date's billing rows for ``ccloud_billing``."""
        iso = day.isoformat()
        rows = [
            (
                tenant_id, iso, line.env_id or "", line.line_id, line.resource_id,
                line.product_category or None, line.product_type,
                line.attributes.get("network_access_type"),
                None if line.unit_price is None else str(line.unit_price),
                None if line.quantity is None else str(line.quantity),
                line.unit, line.original_amount, line.discount_amount, line.amount,
                line.description, line.attributes.get("tier_dimensions"),
            )
            for line in lines
        ]  # fmt: skip
        return (PluginRows(TABLE, COLUMNS, rows),)
