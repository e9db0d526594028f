"""Inventory sync on PostgreSQL: the same upserts, deletion marks and fingerprint as SQLite's.

The fingerprint is byte-for-byte the one :mod:`chargeback.core.storage._inventory`
computes (the same canonical rows, ordered by id in code-point order), so a tenant's
dates calculated on SQLite and copied here (``chargeback copy-db``) are not recalculated
just because the backend changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import psycopg

from chargeback.core.models import Identity, Resource
from chargeback.core.storage._util import attrs_from_text, attrs_to_text
from chargeback.core.storage.backend import InventoryDelta

__all__ = ["inventory_fingerprint", "load_inventory", "sync_inventory"]

Conn = psycopg.AsyncConnection[tuple[Any, ...]]

_UPSERT_RESOURCE = """
INSERT INTO resources AS t (tenant_id, resource_id, resource_type, display_name, env_id,
    parent_id, owner_id, created_at, deleted_at, first_seen_at, last_seen_at, attributes)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant_id, resource_id) DO UPDATE SET
    resource_type = excluded.resource_type,
    display_name = excluded.display_name,
    env_id = excluded.env_id,
    parent_id = excluded.parent_id,
    owner_id = excluded.owner_id,
    created_at = COALESCE(excluded.created_at, t.created_at),
    deleted_at = excluded.deleted_at,
    last_seen_at = excluded.last_seen_at,
    attributes = excluded.attributes
"""

_UPSERT_IDENTITY = """
INSERT INTO identities AS t (tenant_id, identity_id, identity_type, display_name, owner_id,
    resource_id, created_at, deleted_at, first_seen_at, last_seen_at, attributes)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant_id, identity_id) DO UPDATE SET
    identity_type = excluded.identity_type,
    display_name = excluded.display_name,
    owner_id = excluded.owner_id,
    resource_id = excluded.resource_id,
    created_at = COALESCE(excluded.created_at, t.created_at),
    deleted_at = excluded.deleted_at,
    last_seen_at = excluded.last_seen_at,
    attributes = excluded.attributes
"""

_EXISTING = {
    "resources": "SELECT resource_id, resource_type, deleted_at IS NULL FROM resources "
    "WHERE tenant_id = %s",
    "identities": "SELECT identity_id, identity_type, deleted_at IS NULL FROM identities "
    "WHERE tenant_id = %s",
}
_MARK_DELETED = {
    "resources": "UPDATE resources SET deleted_at = %s WHERE tenant_id = %s AND resource_id = %s",
    "identities": "UPDATE identities SET deleted_at = %s WHERE tenant_id = %s AND identity_id = %s",
}


async def _mark_missing(
    conn: Conn,
    table: str,
    *,
    tenant_id: str,
    listed: set[str],
    seen: dt.datetime,
    deletable_types: frozenset[str] | None,
) -> tuple[int, int, int]:
    """Return ``(created, deleted, suppressed)``; mark unlisted active items deleted."""
    cur = await conn.execute(_EXISTING[table], (tenant_id,))
    known: set[str] = set()
    to_delete: list[tuple[object, ...]] = []
    suppressed = 0
    for item_id, item_type, active in await cur.fetchall():
        known.add(item_id)
        if not active or item_id in listed:
            continue
        if deletable_types is None or item_type in deletable_types:
            to_delete.append((seen, tenant_id, item_id))
        else:
            suppressed += 1
    if to_delete:
        async with conn.cursor() as c:
            await c.executemany(_MARK_DELETED[table], to_delete)
    return len(listed - known), len(to_delete), suppressed


async def sync_inventory(
    conn: Conn,
    *,
    tenant_id: str,
    resources: Sequence[Resource],
    identities: Sequence[Identity],
    seen_at: dt.datetime,
    deletable_types: frozenset[str] | None,
) -> InventoryDelta:
    """Upsert the listing and mark what is missing deleted, inside the caller's transaction."""
    seen = seen_at if seen_at.tzinfo is not None else seen_at.replace(tzinfo=dt.UTC)
    by_resource = {r.resource_id: r for r in resources}  # last listing of an id wins
    by_identity = {i.identity_id: i for i in identities}
    r_counts = await _mark_missing(
        conn, "resources", tenant_id=tenant_id, listed=set(by_resource), seen=seen,
        deletable_types=deletable_types,
    )  # fmt: skip
    i_counts = await _mark_missing(
        conn, "identities", tenant_id=tenant_id, listed=set(by_identity), seen=seen,
        deletable_types=deletable_types,
    )  # fmt: skip
    async with conn.cursor() as cur:
        if by_resource:
            await cur.executemany(
                _UPSERT_RESOURCE,
                [
                    (tenant_id, r.resource_id, r.resource_type, r.display_name, r.env_id,
                     r.parent_id, r.owner_id, r.created_at, r.deleted_at, seen, seen,
                     attrs_to_text(r.attributes))
                    for r in by_resource.values()
                ],
            )  # fmt: skip
        if by_identity:
            await cur.executemany(
                _UPSERT_IDENTITY,
                [
                    (tenant_id, i.identity_id, i.identity_type, i.display_name, i.owner_id,
                     i.resource_id, i.created_at, i.deleted_at, seen, seen,
                     attrs_to_text(i.attributes))
                    for i in by_identity.values()
                ],
            )  # fmt: skip
    return InventoryDelta(
        created=r_counts[0] + i_counts[0],
        deleted=r_counts[1] + i_counts[1],
        deletion_suppressed=r_counts[2] + i_counts[2],
        fingerprint=await inventory_fingerprint(conn, tenant_id),
    )


async def inventory_fingerprint(conn: Conn, tenant_id: str) -> str:
    """Return the SHA-256 of the tenant's active inventory (the same as SQLite's)."""
    digest = hashlib.sha256()
    for query, tag in (
        (
            "SELECT resource_id, resource_type, env_id, parent_id, owner_id FROM resources "
            'WHERE tenant_id = %s AND deleted_at IS NULL ORDER BY resource_id COLLATE "C"',
            "r",
        ),
        (
            "SELECT identity_id, identity_type, owner_id, resource_id FROM identities "
            'WHERE tenant_id = %s AND deleted_at IS NULL ORDER BY identity_id COLLATE "C"',
            "i",
        ),
    ):
        cur = await conn.execute(query, (tenant_id,))
        for row in await cur.fetchall():
            digest.update(json.dumps([tag, *row]).encode())
            digest.update(b"\n")
    return digest.hexdigest()


async def load_inventory(conn: Conn, tenant_id: str) -> tuple[list[Resource], list[Identity]]:
    """Return every resource and identity ever seen for the tenant, sorted by id."""
    cur = await conn.execute(
        "SELECT resource_id, resource_type, display_name, env_id, parent_id, owner_id, "
        "created_at, deleted_at, attributes FROM resources WHERE tenant_id = %s "
        'ORDER BY resource_id COLLATE "C"',
        (tenant_id,),
    )
    resources = [
        Resource(
            resource_id=r[0], resource_type=r[1], display_name=r[2], env_id=r[3],
            parent_id=r[4], owner_id=r[5], created_at=r[6], deleted_at=r[7],
            attributes=attrs_from_text(r[8]),
        )
        for r in await cur.fetchall()
    ]  # fmt: skip
    cur = await conn.execute(
        "SELECT identity_id, identity_type, display_name, owner_id, resource_id, "
        "created_at, deleted_at, attributes FROM identities WHERE tenant_id = %s "
        'ORDER BY identity_id COLLATE "C"',
        (tenant_id,),
    )
    identities = [
        Identity(
            identity_id=i[0], identity_type=i[1], display_name=i[2], owner_id=i[3],
            resource_id=i[4], created_at=i[5], deleted_at=i[6],
            attributes=attrs_from_text(i[7]),
        )
        for i in await cur.fetchall()
    ]  # fmt: skip
    return resources, identities
