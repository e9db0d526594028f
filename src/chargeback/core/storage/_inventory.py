"""Inventory sync: resources and identities, with deletion detection and a fingerprint.

One implementation for both core backends: the statements are SQLite's, and a
:class:`~chargeback.core.storage._dialect.Dialect` runs them on either backend's
connection, inside the caller's transaction (the backend opens it and translates errors).

The inventory fingerprint is a SHA-256 over a canonical snapshot of the tenant's
*active* items (``deleted_at IS NULL``) after the sync, sorted by id in code-point
order (sorted here, not by the database, so both backends give the same bytes and a
tenant copied with ``chargeback copy-db`` is not recalculated):

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from chargeback.core.models import Identity, Resource
from chargeback.core.storage._dialect import Dialect
from chargeback.core.storage._util import attrs_from_text, attrs_to_text
from chargeback.core.storage.backend import InventoryDelta

__all__ = ["inventory_fingerprint", "load_inventory", "sync_inventory"]


@dataclass(frozen=True, slots=True)
class _Table:
    """One inventory table: its columns (its type's fields) and statements."""

    name: str
    id_column: str
    type_column: str
    columns: tuple[str, ...]
    fingerprinted: tuple[str, ...]
    """The columns the fingerprint covers, the id first."""

    def upsert(self) -> str:
        """Insert a listed item, or update the stored one (``created_at`` kept if unlisted)."""
        updated = [c for c in self.columns if c != self.id_column]
        sets = [
            f"{c} = COALESCE(excluded.{c}, t.{c})" if c == "created_at" else f"{c} = excluded.{c}"
            for c in updated
        ]
        return (
            f"INSERT INTO {self.name} AS t (tenant_id, {', '.join(self.columns)}, "
            f"first_seen_at, last_seen_at) VALUES ({', '.join('?' * (len(self.columns) + 3))}) "
            f"ON CONFLICT (tenant_id, {self.id_column}) DO UPDATE SET "
            f"{', '.join(sets)}, last_seen_at = excluded.last_seen_at"
        )

    def select(self, columns: Sequence[str], *, active_only: bool = False) -> str:
        """Select ``columns`` of the tenant's items (optionally only the active ones)."""
        where = " AND deleted_at IS NULL" if active_only else ""
        return f"SELECT {', '.join(columns)} FROM {self.name} WHERE tenant_id = ?{where}"

    def mark_deleted(self) -> str:
        """Mark one item deleted."""
        return f"UPDATE {self.name} SET deleted_at = ? WHERE tenant_id = ? AND {self.id_column} = ?"


def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


_RESOURCES = _Table(
    "resources", "resource_id", "resource_type", _fields(Resource),
    ("resource_id", "resource_type", "env_id", "parent_id", "owner_id"),
)  # fmt: skip
_IDENTITIES = _Table(
    "identities", "identity_id", "identity_type", _fields(Identity),
    ("identity_id", "identity_type", "owner_id", "resource_id"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Missing:
    """What a listing changes in one table: new ids, ids to mark deleted, deletions held."""

    created: int
    to_delete: list[str]
    suppressed: int


def _plan_missing(
    existing: Iterable[tuple[Any, ...]], listed: set[str], deletable: frozenset[str] | None
) -> _Missing:
    """Decide, from the stored ``(id, type, active)`` rows, what the listing changes."""
    known: set[str] = set()
    to_delete: list[str] = []
    suppressed = 0
    for item_id, item_type, active in existing:
        known.add(item_id)
        if not active or item_id in listed:
            continue
        if deletable is None or item_type in deletable:
            to_delete.append(item_id)
        else:
            suppressed += 1
    return _Missing(len(listed - known), to_delete, suppressed)


async def _sync_table(
    conn: Any,
    d: Dialect,
    table: _Table,
    *,
    tenant_id: str,
    items: Sequence[Resource] | Sequence[Identity],
    seen: Any,
    deletable: frozenset[str] | None,
) -> _Missing:
    """Mark this table's unlisted active items deleted, then upsert the listed ones."""
    by_id = {getattr(i, table.id_column): i for i in items}  # the last listing of an id wins
    existing = await d.fetch(
        conn,
        d.sql(table.select((table.id_column, table.type_column, "deleted_at IS NULL"))),
        (tenant_id,),
    )
    missing = _plan_missing(existing, set(by_id), deletable)
    if missing.to_delete:
        rows = [(seen, tenant_id, item_id) for item_id in missing.to_delete]
        await d.executemany(conn, d.sql(table.mark_deleted()), rows)
    if by_id:
        values = [(tenant_id, *_stored(d, table, item), seen, seen) for item in by_id.values()]
        await d.executemany(conn, d.sql(table.upsert()), values)
    return missing


def _stored(d: Dialect, table: _Table, item: Resource | Identity) -> list[Any]:
    """An item's column values as the backend stores them."""
    values: list[Any] = []
    for column in table.columns:
        value = getattr(item, column)
        if column in ("created_at", "deleted_at"):
            value = d.opt_time(value)
        elif column == "attributes":
            value = attrs_to_text(value)
        values.append(value)
    return values


async def sync_inventory(
    conn: Any,
    d: Dialect,
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
    seen = d.time(seen_at)
    common = {"tenant_id": tenant_id, "seen": seen, "deletable": deletable_types}
    r = await _sync_table(conn, d, _RESOURCES, items=resources, **common)
    i = await _sync_table(conn, d, _IDENTITIES, items=identities, **common)
    return InventoryDelta(
        created=r.created + i.created,
        deleted=len(r.to_delete) + len(i.to_delete),
        deletion_suppressed=r.suppressed + i.suppressed,
        fingerprint=await inventory_fingerprint(conn, d, tenant_id),
    )


async def inventory_fingerprint(conn: Any, d: Dialect, tenant_id: str) -> str:
    """Return the SHA-256 of the tenant's active inventory (see the module docstring)."""
    digest = hashlib.sha256()
    for tag, table in (("r", _RESOURCES), ("i", _IDENTITIES)):
        sql = d.sql(table.select(table.fingerprinted, active_only=True))
        for row in sorted(await d.fetch(conn, sql, (tenant_id,)), key=itemgetter(0)):
            digest.update(json.dumps([tag, *row]).encode())
            digest.update(b"\n")
    return digest.hexdigest()


def _decoded(d: Dialect, columns: tuple[str, ...], row: Iterable[Any]) -> dict[str, Any]:
    """One stored row as its type's keyword arguments."""
    values = dict(zip(columns, row, strict=True))
    values["created_at"] = d.read_time(values["created_at"])
    values["deleted_at"] = d.read_time(values["deleted_at"])
    values["attributes"] = attrs_from_text(values["attributes"])
    return values


async def load_inventory(
    conn: Any, d: Dialect, tenant_id: str
) -> tuple[list[Resource], list[Identity]]:
    """Return every resource and identity ever seen for the tenant, sorted by id."""
    loaded: list[list[dict[str, Any]]] = []
    for table in (_RESOURCES, _IDENTITIES):
        rows = await d.fetch(conn, d.sql(table.select(table.columns)), (tenant_id,))
        loaded.append([_decoded(d, table.columns, r) for r in sorted(rows, key=itemgetter(0))])
    resources, identities = loaded
    return [Resource(**r) for r in resources], [Identity(**i) for i in identities]
