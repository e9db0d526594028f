"""Gather the inventory once per run and detect deletions safely (seed step 8).

Every handler lists its resources and identities; the lists are synced into storage,
which marks what is no longer listed as deleted. An unreliable listing must never
mass-delete, so a type is deletable this run only when:

- no handler's listing raised (a failed listing makes nothing deletable), and
- the listing returned at least one item of the type while storage knows some, and
- it would not delete more than ``guard_ratio`` of the type's known, live items.

Each suppressed type is logged with its counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from chargeback.core.models import Identity, Resource
from chargeback.core.plugin.protocols import ServiceHandler
from chargeback.core.storage.backend import StorageBackend

__all__ = ["Inventory", "deletable_types", "gather_inventory"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Inventory:
    """Everything known after a sync (deleted items included) and its fingerprint."""

    resources: list[Resource]
    identities: list[Identity]
    fingerprint: str
    created: int = 0
    deleted: int = 0
    deletion_suppressed: int = 0


def _ids_by_type(
    resources: list[Resource], identities: list[Identity], *, live_only: bool
) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in resources:
        if not live_only or r.deleted_at is None:
            out.setdefault(r.resource_type, set()).add(r.resource_id)
    for i in identities:
        if not live_only or i.deleted_at is None:
            out.setdefault(i.identity_type, set()).add(i.identity_id)
    return out


def deletable_types(
    known: Mapping[str, set[str]],
    listed: Mapping[str, set[str]],
    guard_ratio: float,
) -> frozenset[str]:
    """Return the types whose listing is trusted to delete what it no longer lists.

    Args:
        known: live ids in storage, by type.
        listed: ids listed this run, by type.
        guard_ratio: largest fraction of a type's known items one sync may delete.
    """
    ok: set[str] = set()
    for type_name in set(known) | set(listed):
        known_ids = known.get(type_name, set())
        listed_ids = listed.get(type_name, set())
        gone = len(known_ids - listed_ids)
        if known_ids and not listed_ids:
            log.warning("deletion suppressed: empty listing", type=type_name, known=len(known_ids))
            continue
        if known_ids and gone / len(known_ids) > guard_ratio:
            log.warning(
                "deletion suppressed: too many missing",
                type=type_name,
                known=len(known_ids),
                missing=gone,
                guard_ratio=guard_ratio,
            )
            continue
        ok.add(type_name)
    return frozenset(ok)


async def _list_all(
    tenant_id: str, handlers: Mapping[str, ServiceHandler], shared: Any
) -> tuple[list[Resource], list[Identity], list[str]]:
    """Every handler's listing: the resources, the identities, the handlers that failed."""
    resources: list[Resource] = []
    identities: list[Identity] = []
    failed: list[str] = []
    for service_type in sorted(handlers):
        handler = handlers[service_type]
        try:
            resources.extend(await handler.gather_resources(tenant_id, shared))
            identities.extend(await handler.gather_identities(tenant_id, shared))
        except Exception as exc:  # plugin code may raise anything; keep what storage knows
            failed.append(service_type)
            log.warning(
                "inventory listing failed",
                service_type=service_type,
                error=f"{type(exc).__name__}: {exc}",
            )
    return resources, identities, failed


async def gather_inventory(
    tenant_id: str,
    handlers: Mapping[str, ServiceHandler],
    shared: Any,
    storage: StorageBackend,
    *,
    seen_at: dt.datetime,
    guard_ratio: float,
    previous: Inventory | None = None,
) -> Inventory:
    """List every handler's inventory, sync it with the deletion guard, and reload it.

    A handler whose listing raises is logged and skipped; then nothing is deleted
    this run (its items may share types with other handlers).

    ``previous``: this runtime's inventory after its last sync. The daemon is the
    tenant's only writer, so it stands for what storage knows, and when the sync
    creates and deletes nothing and the stored fingerprint is unchanged it is
    returned again instead of reloading (~10k items decoded from SQLite per run).
    """
    resources, identities, failed = await _list_all(tenant_id, handlers, shared)
    if previous is None:
        known_resources, known_identities = await storage.load_inventory(tenant_id)
    else:
        known_resources, known_identities = previous.resources, previous.identities
    known = _ids_by_type(known_resources, known_identities, live_only=True)
    deletable = frozenset[str]()
    if not failed:
        listed = _ids_by_type(resources, identities, live_only=False)
        deletable = deletable_types(known, listed, guard_ratio)
    elif known:
        log.warning("deletion suppressed: a listing failed", failed=failed)
    delta = await storage.sync_inventory(
        tenant_id, resources, identities, seen_at, deletable_types=deletable
    )
    if (
        previous is not None
        and delta.created == 0
        and delta.deleted == 0
        and delta.fingerprint == previous.fingerprint
    ):
        all_resources, all_identities = previous.resources, previous.identities
    else:
        all_resources, all_identities = await storage.load_inventory(tenant_id)
    log.info(
        "inventory synced",
        created=delta.created,
        deleted=delta.deleted,
        deletion_suppressed=delta.deletion_suppressed,
        resources=len(all_resources),
        identities=len(all_identities),
    )
    return Inventory(
        resources=all_resources,
        identities=all_identities,
        fingerprint=delta.fingerprint,
        created=delta.created,
        deleted=delta.deleted,
        deletion_suppressed=delta.deletion_suppressed,
    )
