"""Leases on a real PostgreSQL: one owner at a time, expiry, takeover, fencing (DESIGN §18)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from tests.storage_targets import POSTGRESQL

from chargeback.core.storage.factory import open_backend
from chargeback.core.storage.postgres import PostgresBackend
from chargeback.core.storage.postgres._commit import LeaseLostError
from chargeback.core.storage.postgres.leases import LeaseManager
from chargeback.settings import StorageSettings

DAY = dt.date(2024, 5, 1)
NOW = dt.datetime(2024, 5, 4, tzinfo=dt.UTC)

Replica = Callable[..., "asyncio.Future[LeaseManager]"]


@pytest.fixture
def pg_settings(tmp_path: Path) -> StorageSettings:
    """A fresh PostgreSQL database."""
    return POSTGRESQL.make(tmp_path)


@pytest.fixture
async def replica(pg_settings: StorageSettings) -> AsyncIterator[Callable[..., object]]:
    """``await replica(name, ttl_s=)``: a lease manager on its own backend (a replica)."""
    stores: list[PostgresBackend] = []
    wanted: dict[str, list[str]] = {}

    async def make(name: str, *, ttl_s: float = 30.0, tenants: tuple[str, ...] = ("t1",)):
        assert pg_settings.url is not None
        store = PostgresBackend(pg_settings.url)
        await store.open()
        stores.append(store)
        calls = wanted.setdefault(name, [])
        return LeaseManager(store, list(tenants), calls.append, ttl_s=ttl_s, owner_id=name)

    yield make
    for store in stores:
        await store.close()


async def commit(leases: LeaseManager, tenant: str = "t1", fingerprint: str = "b") -> int:
    state = await leases.storage.commit_date(
        tenant, DAY, lines=[], rows=[], plugin_rows=[], billing_fingerprint=fingerprint,
        settings_fingerprint="s", inventory_fingerprint="i", calculated_at=NOW,
    )  # fmt: skip
    return state.calc_seq


class TestOneOwner:
    async def test_a_held_lease_is_refused_to_others_until_released(self, replica) -> None:
        """One replica holds a tenant; another is refused, then gets it after the release."""
        a, b = await replica("a"), await replica("b")
        assert await a.claim("t1")
        assert not await b.claim("t1")
        assert await commit(a) == 1
        await a.release("t1")
        assert await b.claim("t1")
        assert b.held == ["t1"]
        assert await commit(b) == 2

    async def test_concurrent_claims_give_the_lease_to_exactly_one(self, replica) -> None:
        """Eight replicas claiming one free tenant at once: SKIP LOCKED, one winner."""
        managers = [await replica(f"r{i}") for i in range(8)]
        results = await asyncio.gather(*(m.claim("t1") for m in managers))
        assert sum(results) == 1

    async def test_without_the_lease_a_commit_is_refused(self, replica) -> None:
        """Once leases are required, a tenant's commit needs its lease; nothing is written."""
        a = await replica("a")
        with pytest.raises(LeaseLostError, match="does not hold the tenant's lease"):
            await commit(a)
        assert await a.storage.get_date_states("t1", DAY, DAY + dt.timedelta(days=1)) == {}
        assert await a.claim("t1")
        await a.release("t1")
        with pytest.raises(LeaseLostError):
            await commit(a)


class TestExpiry:
    async def test_a_dead_replicas_lease_expires_and_is_taken_over(self, replica) -> None:
        """No heartbeat past the TTL: another replica sees the orphan and takes it, with a
        new epoch; the dead owner's running run is marked interrupted."""
        a, b = await replica("a", ttl_s=0.3), await replica("b", ttl_s=0.3)
        assert await a.claim("t1")
        await a.storage.start_run("t1", "run-a", "schedule", NOW)
        assert await b.wanted() == []
        await asyncio.sleep(0.5)
        assert await b.wanted() == ["t1"]
        await b.tick()
        assert b._on_wanted.__self__ == ["t1"]  # the list the fixture collects calls in
        assert await b.claim("t1")
        assert (b.takeovers, b._held["t1"]) == (1, 2)
        [run] = await b.storage.list_runs("t1")
        assert (run.run_id, run.status) == ("run-a", "interrupted")

    async def test_a_paused_replica_cannot_commit_after_losing_its_lease(self, replica) -> None:
        """Fencing: the old owner resumes after the takeover; its commit is refused and the
        new owner's work stays; its next heartbeat reports the lease lost."""
        a, b = await replica("a", ttl_s=0.3), await replica("b", ttl_s=30)
        assert await a.claim("t1")
        assert await commit(a, fingerprint="old") == 1
        await asyncio.sleep(0.5)  # a is "paused": no heartbeat
        assert await b.claim("t1")
        assert await commit(b, fingerprint="new") == 2
        with pytest.raises(LeaseLostError, match="no longer holds the tenant's lease at epoch 1"):
            await commit(a, fingerprint="stale")
        states = await b.storage.get_date_states("t1", DAY, DAY + dt.timedelta(days=1))
        assert (states[DAY].calc_seq, states[DAY].billing_fingerprint) == (2, "new")
        assert await a.renew() == ["t1"]
        assert (a.held, a.losses) == ([], 1)

    async def test_heartbeats_keep_a_lease_past_its_ttl(self, replica) -> None:
        """A replica that renews keeps its tenant however long the run takes."""
        a, b = await replica("a", ttl_s=0.4), await replica("b", ttl_s=0.4)
        assert await a.claim("t1")
        for _ in range(4):
            await asyncio.sleep(0.15)
            assert await a.renew() == []
        assert not await b.claim("t1")
        assert await b.wanted() == []
        assert await commit(a) == 1

    async def test_a_free_tenant_with_a_pending_rerun_is_wanted(
        self, replica, pg_settings: StorageSettings
    ) -> None:
        """chargeback rerun on any replica: the request is in the database, and the next
        heartbeat of any replica starts the tenant if nobody runs it."""
        async with open_backend(pg_settings) as store:
            await store.request_rerun("t1", DAY, DAY, NOW)
        b = await replica("b")
        assert await b.wanted() == ["t1"]
        a = await replica("a")
        assert await a.claim("t1")
        assert await b.wanted() == []  # a runs it: it will pick the request up


class TestReplicasStartingOneTenant:
    async def test_ownership_rules_are_recorded_once_by_concurrent_replicas(
        self, pg_settings: StorageSettings
    ) -> None:
        """Six replicas starting one tenant at once agree on one rule version (no
        unique-key failure: the read-then-insert is serialised per tenant)."""
        from chargeback.core.ownership import OwnershipSettings, compile_rules  # noqa: PLC0415
        from chargeback.core.storage.ownership import ownership_store  # noqa: PLC0415

        settings = OwnershipSettings.model_validate(
            {"rules": [{"team": "a", "match": {"identity_id": "sa-1"}}]}
        )
        rules = compile_rules(settings, "t1")
        assert pg_settings.url is not None
        stores = [PostgresBackend(pg_settings.url) for _ in range(6)]
        await asyncio.gather(*(s.open() for s in stores))
        try:
            versions = await asyncio.gather(
                *(ownership_store(s).rule_version("t1", rules, NOW) for s in stores)
            )
        finally:
            await asyncio.gather(*(s.close() for s in stores))
        assert versions == [1] * 6


class TestLeaseState:
    async def test_a_failing_heartbeat_is_reported_then_cleared(self, replica) -> None:
        """A heartbeat that cannot reach the database sets the problem /readyz reports
        (the leases are not renewed, so they will expire); the next good one clears it."""
        a = await replica("a")
        assert await a.claim("t1")
        await a.tick()
        assert a.problem is None
        state = a.state()
        assert (state.owner_id, state.held) == ("a", ("t1",))
        assert state.last_renewal_age_s is not None
        await a.storage.close()
        await a.tick()
        failing = a.state().problem
        assert failing is not None
        assert failing.startswith("lease heartbeat failed")
        await a.storage.open()
        await a.tick()
        assert a.state().problem is None
