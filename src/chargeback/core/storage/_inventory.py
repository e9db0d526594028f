"""Inventory sync: resources and identities, with deletion detection and a fingerprint.

The inventory fingerprint is a SHA-256 over a canonical snapshot of the tenant's
*active* items (``deleted_at IS NULL``) after the sync, sorted by id:

- resources: ``("r", resource_id, resource_type, env_id, parent_id, owner_id)``
- identities: ``("i", identity_id, identity_type, owner_id, resource_id)``

That is exactly what allocation depends on (who exists, what kind, who owns what,
which API key belongs to which resource). Display names, attributes and timestamps
are left out, so renaming a service account does not trigger recalculations.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aiosqlite

from chargeback.core.models import Identity, Resource
from chargeback.core.storage._util import (
    attrs_from_text,
    attrs_to_text,
    datetime_to_text,
    opt_datetime_from_text,
    opt_datetime_to_text,
)
from chargeback.core.storage.backend import InventoryDelta

__all__ = ["load_inventory", "sync_inventory"]

_UPSERT_RESOURCE = """
INSERT INTO resources (tenant_id, resource_id, resource_type, display_name, env_id,
    parent_id, owner_id, created_at, deleted_at, first_seen_at, last_seen_at, attributes)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant_id, resource_id) DO UPDATE SET
    resource_type = excluded.resource_type,
    display_name = excluded.display_name,
    env_id = excluded.env_id,
    parent_id = excluded.parent_id,
    owner_id = excluded.owner_id,
    created_at = COALESCE(excluded.created_at, resources.created_at),
    deleted_at = excluded.deleted_at,
    last_seen_at = excluded.last_seen_at,
    attributes = excluded.attributes
"""

_UPSERT_IDENTITY = """
INSERT INTO identities (tenant_id, identity_id, identity_type, display_name, owner_id,
    resource_id, created_at, deleted_at, first_seen_at, last_seen_at, attributes)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant_id, identity_id) DO UPDATE SET
    identity_type = excluded.identity_type,
    display_name = excluded.display_name,
    owner_id = excluded.owner_id,
    resource_id = excluded.resource_id,
    created_at = COALESCE(excluded.created_at, identities.created_at),
    deleted_at = excluded.deleted_at,
    last_seen_at = excluded.last_seen_at,
    attributes = excluded.attributes
"""


async def _mark_missing(
    conn: aiosqlite.Connection,
    *,
    table: str,
    id_column: str,
    type_column: str,
    tenant_id: str,
    listed: set[str],
    seen: str,
    deletable_types: frozenset[str] | None,
) -> tuple[int, int, int]:
    """Return ``(created, deleted, suppressed)``; mark unlisted active items deleted."""
    existing = await conn.execute_fetchall(
        f"SELECT {id_column}, {type_column}, deleted_at IS NULL FROM {table} WHERE tenant_id = ?",
        (tenant_id,),
    )
    known: set[str] = set()
    to_delete: list[tuple[str, str, str]] = []
    suppressed = 0
    for item_id, item_type, active in existing:
        known.add(item_id)
        if not active or item_id in listed:
            continue
        if deletable_types is None or item_type in deletable_types:
            to_delete.append((seen, tenant_id, item_id))
        else:
            suppressed += 1
    if to_delete:
        await conn.executemany(
            f"UPDATE {table} SET deleted_at = ? WHERE tenant_id = ? AND {id_column} = ?",
            to_delete,
        )
    return len(listed - known), len(to_delete), suppressed


def _resource_params(tenant_id: str, r: Resource, seen: str) -> tuple[object, ...]:
    """The values of :data:`_UPSERT_RESOURCE` for one listed resource."""
    return (
        tenant_id,
        r.resource_id,
        r.resource_type,
        r.display_name,
        r.env_id,
        r.parent_id,
        r.owner_id,
        opt_datetime_to_text(r.created_at),
        opt_datetime_to_text(r.deleted_at),
        seen,
        seen,
        attrs_to_text(r.attributes),
    )


def _identity_params(tenant_id: str, i: Identity, seen: str) -> tuple[object, ...]:
    """The values of :data:`_UPSERT_IDENTITY` for one listed identity."""
    return (
        tenant_id,
        i.identity_id,
        i.identity_type,
        i.display_name,
        i.owner_id,
        i.resource_id,
        opt_datetime_to_text(i.created_at),
        opt_datetime_to_text(i.deleted_at),
        seen,
        seen,
        attrs_to_text(i.attributes),
    )


async def sync_inventory(
    conn: aiosqlite.Connection,
    *,
    tenant_id: str,
    resources: Sequence[Resource],
    identities: Sequence[Identity],
    seen_at: dt.datetime,
    deletable_types: frozenset[str] | None,
) -> InventoryDelta:
    """Upsert the listing and mark what is missing deleted, inside the caller's transaction.

    Listed items take the API's ``deleted_at`` (usually ``None``, which undeletes an
    item that reappears) and its ``created_at`` when given (else the stored one is kept).
    """
    seen = datetime_to_text(seen_at)
    by_resource = {r.resource_id: r for r in resources}  # last listing of an id wins
    by_identity = {i.identity_id: i for i in identities}
    r_created, r_deleted, r_suppressed = await _mark_missing(
        conn,
        table="resources",
        id_column="resource_id",
        type_column="resource_type",
        tenant_id=tenant_id,
        listed=set(by_resource),
        seen=seen,
        deletable_types=deletable_types,
    )
    i_created, i_deleted, i_suppressed = await _mark_missing(
        conn,
        table="identities",
        id_column="identity_id",
        type_column="identity_type",
        tenant_id=tenant_id,
        listed=set(by_identity),
        seen=seen,
        deletable_types=deletable_types,
    )
    if by_resource:
        await conn.executemany(
            _UPSERT_RESOURCE, [_resource_params(tenant_id, r, seen) for r in by_resource.values()]
        )
    if by_identity:
        await conn.executemany(
            _UPSERT_IDENTITY, [_identity_params(tenant_id, i, seen) for i in by_identity.values()]
        )
    return InventoryDelta(
        created=r_created + i_created,
        deleted=r_deleted + i_deleted,
        deletion_suppressed=r_suppressed + i_suppressed,
        fingerprint=await inventory_fingerprint(conn, tenant_id),
    )


async def inventory_fingerprint(conn: aiosqlite.Connection, tenant_id: str) -> str:
    """Return the SHA-256 of the tenant's active inventory (see the module docstring)."""
    digest = hashlib.sha256()
    resources = await conn.execute_fetchall(
        "SELECT resource_id, resource_type, env_id, parent_id, owner_id FROM resources "
        "WHERE tenant_id = ? AND deleted_at IS NULL ORDER BY resource_id",
        (tenant_id,),
    )
    for row in resources:
        digest.update(json.dumps(["r", *row]).encode())
        digest.update(b"\n")
    identities = await conn.execute_fetchall(
        "SELECT identity_id, identity_type, owner_id, resource_id FROM identities "
        "WHERE tenant_id = ? AND deleted_at IS NULL ORDER BY identity_id",
        (tenant_id,),
    )
    for row in identities:
        digest.update(json.dumps(["i", *row]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


_RESOURCE_COLUMNS = tuple(f.name for f in dataclasses.fields(Resource))
_IDENTITY_COLUMNS = tuple(f.name for f in dataclasses.fields(Identity))
"""The stored columns of resources and identities: their types' fields."""
_DECODE: dict[str, Callable[[Any], Any]] = {
    "created_at": opt_datetime_from_text,
    "deleted_at": opt_datetime_from_text,
    "attributes": attrs_from_text,
}
"""How the stored columns that are not plain text are read back."""


def _decoded(columns: tuple[str, ...], row: Iterable[Any]) -> dict[str, Any]:
    """One stored row as its type's keyword arguments."""
    values = dict(zip(columns, row, strict=True))
    for name, decode in _DECODE.items():
        values[name] = decode(values[name])
    return values


async def load_inventory(
    conn: aiosqlite.Connection, tenant_id: str
) -> tuple[list[Resource], list[Identity]]:
    """Return every resource and identity ever seen for the tenant, sorted by id."""
    resource_rows = await conn.execute_fetchall(
        f"SELECT {', '.join(_RESOURCE_COLUMNS)} FROM resources WHERE tenant_id = ? "
        "ORDER BY resource_id",
        (tenant_id,),
    )
    resources = [Resource(**_decoded(_RESOURCE_COLUMNS, r)) for r in resource_rows]
    identity_rows = await conn.execute_fetchall(
        f"SELECT {', '.join(_IDENTITY_COLUMNS)} FROM identities WHERE tenant_id = ? "
        "ORDER BY identity_id",
        (tenant_id,),
    )
    identities = [Identity(**_decoded(_IDENTITY_COLUMNS, i)) for i in identity_rows]
    return resources, identities
