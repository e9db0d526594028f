"""Replicas share tenants through lease rows (DESIGN §18).

With PostgreSQL several daemons may run against one database. Before a tenant runs,
its replica claims the tenant's row of ``tenant_leases``:

- **claim**: ``SELECT ... FOR UPDATE SKIP LOCKED`` on the row, taken only if it is free
  (released), expired, or already ours; a row another replica is claiming right now is
  skipped, not waited for. Taking it from another owner bumps ``epoch`` and marks that
  owner's runs of the tenant still ``running`` as interrupted (it died).
- **heartbeat**: every ``ttl / 3`` the replica renews ``expires_at`` of the leases it
  holds; a lease it finds no longer its own is *lost* and its commits are refused.
- **expiry**: a replica that dies (SIGKILL) stops renewing; ``ttl`` later its lease
  is expired, and the heartbeat of any other replica sees an *orphan* (owner set,
  expired) and starts a run of that tenant, which claims it.
- **fencing**: every date commit locks the lease row ``FOR SHARE`` and needs our owner
  id, our epoch and an unexpired row (:mod:`._commit`), so a replica that was paused
  past its expiry and resumes can never commit over newer work; a claim by another
  replica waits for a commit in flight, never overlaps it.
- **release**: after the run the row is freed (owner ``NULL``), so any replica may run
  the tenant next; pending rerun requests of a free tenant are picked up by the next
  heartbeat of any replica (``chargeback rerun`` works from any replica).

Times are the database server's ``now()``, so replicas' clocks do not matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from chargeback.core.storage.postgres._commit import Conn, Fence
from chargeback.core.storage.postgres.backend import PostgresBackend
from chargeback.errors import StorageError

__all__ = ["LeaseManager", "LeaseState", "new_owner_id"]

log = structlog.get_logger(__name__)

_CLAIM = """
SELECT owner_id, epoch, expires_at > now() AS live FROM tenant_leases
WHERE tenant_id = %(tenant)s
  AND (owner_id IS NULL OR owner_id = %(owner)s OR expires_at <= now())
FOR UPDATE SKIP LOCKED
"""
_TAKE = """
UPDATE tenant_leases SET owner_id = %(owner)s, epoch = %(epoch)s, acquired_at = now(),
    heartbeat_at = now(), expires_at = now() + make_interval(secs => %(ttl)s)
WHERE tenant_id = %(tenant)s
"""
_INTERRUPT = """
UPDATE runs SET status = 'interrupted', finished_at = now(),
    error = 'the replica running it stopped renewing its lease (it died or was cut off)'
WHERE tenant_id = %s AND status = 'running'
"""
_RENEW = """
UPDATE tenant_leases SET heartbeat_at = now(), expires_at = now() + make_interval(secs => %s)
WHERE owner_id = %s AND tenant_id = ANY(%s) AND expires_at > now()
RETURNING tenant_id, epoch
"""
_RELEASE = """
UPDATE tenant_leases SET owner_id = NULL, expires_at = '-infinity'
WHERE tenant_id = %s AND owner_id = %s AND epoch = %s
"""
_WANTED = """
SELECT tenant_id FROM tenant_leases
WHERE tenant_id = ANY(%(tenants)s) AND owner_id IS NOT NULL AND expires_at <= now()
UNION
SELECT r.tenant_id FROM rerun_requests AS r
WHERE r.tenant_id = ANY(%(tenants)s) AND r.completed_at IS NULL AND NOT EXISTS (
    SELECT 1 FROM tenant_leases AS l WHERE l.tenant_id = r.tenant_id AND l.expires_at > now())
"""


def new_owner_id() -> str:
    """A replica's owner id: host, pid and a random part (unique across restarts)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class LeaseState:
    """What ``/readyz`` and ``/healthz`` say about this replica's leases."""

    owner_id: str
    held: tuple[str, ...]
    last_renewal_age_s: float | None
    problem: str | None


class LeaseManager:
    """This replica's leases on one PostgreSQL database.

    Args:
        storage: the open backend; its commits get fenced (``require_leases``).
        tenants: the tenants this replica may run (its settings' enabled tenants).
        on_wanted: called with a tenant whose lease is orphaned or that has pending
            reruns while free: the daemon starts a run of it (which claims it).
        ttl_s: how long a lease lives without a heartbeat.
        owner_id: this replica's id (default :func:`new_owner_id`).
    """

    def __init__(
        self,
        storage: PostgresBackend,
        tenants: Sequence[str],
        on_wanted: Callable[[str], object],
        *,
        ttl_s: float = 30.0,
        owner_id: str | None = None,
    ) -> None:
        self.storage = storage
        self.owner_id = owner_id or new_owner_id()
        self.ttl_s = ttl_s
        self.tenants = list(tenants)
        self._on_wanted = on_wanted
        self._held: dict[str, int] = {}
        self._last_renewal: float | None = None
        self.problem: str | None = None
        self.claims = self.takeovers = self.losses = 0
        storage.require_leases(self.owner_id)

    @property
    def held(self) -> list[str]:
        """The tenants whose lease this replica holds now."""
        return sorted(self._held)

    def state(self) -> LeaseState:
        """The lease state for the probes."""
        age = None if self._last_renewal is None else time.monotonic() - self._last_renewal
        return LeaseState(self.owner_id, tuple(self.held), age, self.problem)

    async def claim(self, tenant_id: str) -> bool:
        """Take the tenant's lease if it is free, expired or ours; return whether we hold it."""
        action = f"claiming the lease of {tenant_id!r}"
        async with self.storage.connection(action) as conn, conn.transaction():
            taken = await self._take(conn, tenant_id)
        if taken is None:
            return False
        previous, epoch = taken
        self.claims += 1
        if previous is not None and previous != self.owner_id:
            self.takeovers += 1
            log.warning("lease taken over", tenant_id=tenant_id, previous_owner=previous,
                        epoch=epoch)  # fmt: skip
        self._held[tenant_id] = epoch
        self.storage.set_fence(tenant_id, Fence(self.owner_id, epoch))
        return True

    async def _take(self, conn: Conn, tenant_id: str) -> tuple[str | None, int] | None:
        """In the caller's transaction: ``(previous owner, our epoch)``, or None if taken."""
        params = {"tenant": tenant_id, "owner": self.owner_id, "ttl": self.ttl_s}
        await conn.execute(
            "INSERT INTO tenant_leases (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING",
            (tenant_id,),
        )
        cur = await conn.execute(_CLAIM, params)
        row = await cur.fetchone()
        if row is None:  # live and another's, or being claimed right now
            return None
        owner, epoch, live = row
        ours = owner == self.owner_id and live and self._held.get(tenant_id) == epoch
        new_epoch = int(str(epoch)) + (0 if ours else 1)
        await conn.execute(_TAKE, {**params, "epoch": new_epoch})
        if owner is not None and owner != self.owner_id:
            await conn.execute(_INTERRUPT, (tenant_id,))  # the dead owner's run rows
        return (None if owner is None else str(owner)), new_epoch

    async def release(self, tenant_id: str) -> None:
        """Free the tenant's lease (after its run); its commits are refused from now on."""
        epoch = self._held.pop(tenant_id, None)
        self.storage.set_fence(tenant_id, None)
        if epoch is None:
            return
        async with self.storage.connection(f"releasing the lease of {tenant_id!r}") as conn:
            await conn.execute(_RELEASE, (tenant_id, self.owner_id, epoch))

    async def renew(self) -> list[str]:
        """Renew every held lease; return the tenants whose lease was lost."""
        if not self._held:
            self._last_renewal = time.monotonic()
            return []
        async with self.storage.connection("renewing leases") as conn:
            cur = await conn.execute(_RENEW, (self.ttl_s, self.owner_id, list(self._held)))
            kept = {str(t): int(e) for t, e in await cur.fetchall()}
        self._last_renewal = time.monotonic()
        lost = [t for t, e in self._held.items() if kept.get(t) != e]
        for tenant_id in lost:
            self.losses += 1
            del self._held[tenant_id]
            # The fence stays at the lost epoch: any commit still in flight is refused.
            log.warning("lease lost", tenant_id=tenant_id, owner_id=self.owner_id)
        return lost

    async def wanted(self) -> list[str]:
        """Tenants to start now: orphaned leases, and free tenants with pending reruns."""
        if not self.tenants:
            return []
        async with self.storage.connection("looking for orphaned leases") as conn:
            cur = await conn.execute(_WANTED, {"tenants": self.tenants})
            return sorted(str(r[0]) for r in await cur.fetchall())

    async def tick(self) -> None:
        """One heartbeat: renew, then start the tenants that are wanted."""
        try:
            await self.renew()
            for tenant_id in await self.wanted():
                if tenant_id not in self._held:
                    self._on_wanted(tenant_id)
            self.problem = None
        except StorageError as exc:
            self.problem = f"lease heartbeat failed: {exc}"
            log.warning("lease heartbeat failed", error=str(exc))

    async def run(self) -> None:
        """Heartbeat until cancelled (the daemon owns this task)."""
        interval = self.ttl_s / 3
        while True:
            await self.tick()
            await asyncio.sleep(interval)

    async def release_all(self) -> None:
        """Free every held lease (shutdown), so another replica may start at once."""
        for tenant_id in list(self._held):
            with contextlib.suppress(StorageError):
                await self.release(tenant_id)
