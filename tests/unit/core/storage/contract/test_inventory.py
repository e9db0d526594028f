"""Inventory sync and load: upsert, guarded deletion detection, undelete, fingerprint."""

from __future__ import annotations

import datetime as dt

from chargeback.core.models import Identity, Resource

T0 = dt.datetime(2024, 5, 1, 6, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(days=1)
T2 = T0 + dt.timedelta(days=2)

CLUSTER = Resource("lkc-1", "kafka_cluster", "orders", env_id="env-1")
CONNECTOR = Resource(
    "lcc-1", "connector", "sink", env_id="env-1", parent_id="lkc-1", owner_id="sa-1"
)
SA1 = Identity("sa-1", "service_account", "app one")
SA2 = Identity("sa-2", "service_account", "app two")
KEY = Identity("key-1", "api_key", owner_id="sa-1", resource_id="lkc-1")


def by_id(items):
    """Index resources or identities by their id."""
    return {i.resource_id if isinstance(i, Resource) else i.identity_id: i for i in items}


class TestSync:
    async def test_first_sync_creates_everything(self, backend):
        """Every listed item is new on the first sync and loads back unchanged."""
        delta = await backend.sync_inventory("t1", [CLUSTER, CONNECTOR], [SA1, SA2, KEY], T0)
        assert (delta.created, delta.deleted, delta.deletion_suppressed) == (5, 0, 0)
        resources, identities = await backend.load_inventory("t1")
        assert resources == sorted([CLUSTER, CONNECTOR], key=lambda r: r.resource_id)
        assert identities == sorted([SA1, SA2, KEY], key=lambda i: i.identity_id)

    async def test_unlisted_items_are_marked_deleted(self, backend):
        """An item missing from the next listing gets deleted_at = seen_at and stays loadable."""
        await backend.sync_inventory("t1", [CLUSTER, CONNECTOR], [SA1, SA2], T0)
        delta = await backend.sync_inventory("t1", [CLUSTER], [SA1], T1)
        assert (delta.created, delta.deleted) == (0, 2)
        resources, identities = await backend.load_inventory("t1")
        assert by_id(resources)["lcc-1"].deleted_at == T1
        assert by_id(identities)["sa-2"].deleted_at == T1
        assert by_id(identities)["sa-1"].deleted_at is None
        again = await backend.sync_inventory("t1", [CLUSTER], [SA1], T2)
        assert again.deleted == 0
        _, identities = await backend.load_inventory("t1")
        assert by_id(identities)["sa-2"].deleted_at == T1

    async def test_reappearing_item_is_undeleted(self, backend):
        """An item listed again after being marked deleted is active again."""
        await backend.sync_inventory("t1", [], [SA1, SA2], T0)
        await backend.sync_inventory("t1", [], [SA1], T1)
        delta = await backend.sync_inventory("t1", [], [SA1, SA2], T2)
        assert (delta.created, delta.deleted) == (0, 0)
        _, identities = await backend.load_inventory("t1")
        assert by_id(identities)["sa-2"].deleted_at is None

    async def test_guard_keeps_types_not_deletable(self, backend):
        """Only types in deletable_types are deleted; the others are counted as suppressed."""
        await backend.sync_inventory("t1", [CLUSTER, CONNECTOR], [SA1, SA2, KEY], T0)
        delta = await backend.sync_inventory(
            "t1", [], [], T1, deletable_types=frozenset({"connector", "api_key"})
        )
        assert (delta.deleted, delta.deletion_suppressed) == (2, 3)
        resources, identities = await backend.load_inventory("t1")
        assert by_id(resources)["lkc-1"].deleted_at is None
        assert by_id(resources)["lcc-1"].deleted_at == T1
        assert by_id(identities)["key-1"].deleted_at == T1
        assert by_id(identities)["sa-1"].deleted_at is None

    async def test_empty_deletable_types_deletes_nothing(self, backend):
        """An empty listing with no deletable types never mass-deletes."""
        await backend.sync_inventory("t1", [CLUSTER], [SA1], T0)
        delta = await backend.sync_inventory("t1", [], [], T1, deletable_types=frozenset())
        assert (delta.deleted, delta.deletion_suppressed) == (0, 2)

    async def test_api_timestamps_are_kept(self, backend):
        """created_at and deleted_at given by the API are stored; a later listing without
        created_at keeps the stored one."""
        created = dt.datetime(2023, 1, 1, 12, 30, tzinfo=dt.UTC)
        api_deleted = dt.datetime(2024, 4, 30, tzinfo=dt.UTC)
        sa = Identity("sa-9", "service_account", created_at=created)
        gone = Identity("sa-8", "service_account", deleted_at=api_deleted)
        await backend.sync_inventory("t1", [], [sa, gone], T0)
        await backend.sync_inventory("t1", [], [Identity("sa-9", "service_account"), gone], T1)
        _, identities = await backend.load_inventory("t1")
        assert by_id(identities)["sa-9"].created_at == created
        assert by_id(identities)["sa-8"].deleted_at == api_deleted

    async def test_changed_fields_are_updated(self, backend):
        """A listing with new owner or name replaces the stored values."""
        await backend.sync_inventory("t1", [CONNECTOR], [], T0)
        moved = Resource(
            "lcc-1",
            "connector",
            "renamed",
            env_id="env-1",
            parent_id="lkc-1",
            owner_id="sa-2",
            attributes={"k": "v"},
        )
        await backend.sync_inventory("t1", [moved], [], T1)
        resources, _ = await backend.load_inventory("t1")
        assert resources == [moved]

    async def test_tenants_are_separate(self, backend):
        """One tenant's sync never deletes another tenant's items."""
        await backend.sync_inventory("t1", [CLUSTER], [SA1], T0)
        await backend.sync_inventory("t2", [], [], T1)
        resources, identities = await backend.load_inventory("t1")
        assert resources[0].deleted_at is None
        assert identities[0].deleted_at is None
        assert await backend.tenants() == ["t1"]


class TestFingerprint:
    async def test_same_inventory_same_fingerprint(self, backend):
        """Re-listing the same items, in any order, keeps the fingerprint."""
        first = await backend.sync_inventory("t1", [CLUSTER, CONNECTOR], [SA1, KEY], T0)
        second = await backend.sync_inventory("t1", [CONNECTOR, CLUSTER], [KEY, SA1], T1)
        other_tenant = await backend.sync_inventory("t2", [CONNECTOR, CLUSTER], [KEY, SA1], T1)
        assert first.fingerprint == second.fingerprint == other_tenant.fingerprint

    async def test_display_name_does_not_change_fingerprint(self, backend):
        """Renaming an identity is not an inventory change for allocation."""
        first = await backend.sync_inventory("t1", [], [SA1], T0)
        renamed = await backend.sync_inventory(
            "t1", [], [Identity("sa-1", "service_account", "new name")], T1
        )
        assert first.fingerprint == renamed.fingerprint

    async def test_relevant_changes_change_fingerprint(self, backend):
        """Deletions, new items and new owners change the fingerprint."""
        prints = set()
        prints.add((await backend.sync_inventory("t1", [CONNECTOR], [SA1, SA2], T0)).fingerprint)
        prints.add((await backend.sync_inventory("t1", [CONNECTOR], [SA1], T1)).fingerprint)
        prints.add((await backend.sync_inventory("t1", [CONNECTOR], [SA1, KEY], T1)).fingerprint)
        moved = Resource(
            "lcc-1", "connector", "sink", env_id="env-1", parent_id="lkc-1", owner_id="sa-2"
        )
        prints.add((await backend.sync_inventory("t1", [moved], [SA1, KEY], T2)).fingerprint)
        assert len(prints) == 4
