# mypy: allow-untyped-defs
"""The generated organization: determinism, lifetimes, billing invariants, truth, late data."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from ccloud_sim import LINE_TYPES, SCALES, Organization
from ccloud_sim.billing import SETTLE_HOURS

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)

SETTLED = NOW.date() - timedelta(days=5)


def _days(n: int, last: date = SETTLED) -> list[date]:
    return [last - timedelta(days=i) for i in range(n)]


class TestGeneration:
    def test_same_seed_same_org(self):
        """Two organizations from the same seed, scale and anchor are identical."""
        a, b = Organization(3, "tiny", NOW.date()), Organization(3, "tiny", NOW.date())
        assert a.org_id == b.org_id
        assert a.inventory.api_keys == b.inventory.api_keys
        assert [x.to_json() for x in a.billing_lines(SETTLED)] == [
            x.to_json() for x in b.billing_lines(SETTLED)
        ]

    def test_different_seed_differs(self, org_for):
        """Another seed gives another organization id and other objects."""
        a, b = org_for(1), org_for(2)
        assert a.org_id != b.org_id
        assert {c.id for c in a.inventory.clusters} != {c.id for c in b.inventory.clusters}

    def test_scale_sizes(self, org_for):
        """The small preset produces the counts it declares."""
        org = org_for(1, "small")
        s = SCALES["small"]
        assert len(org.inventory.clusters) == s.kafka_clusters
        assert len(org.inventory.service_accounts) == s.service_accounts
        assert len(org.inventory.api_keys) == s.api_keys
        assert len(org.inventory.statements) == s.flink_statements

    def test_ids_unique_and_prefixed(self, org):
        """Every id is unique and carries the documented prefix."""
        inv = org.inventory
        for items, prefix in (
            (inv.environments, "env-"),
            (inv.clusters, "lkc-"),
            (inv.service_accounts, "sa-"),
            (inv.users, "u-"),
            (inv.connectors, "lcc-"),
            (inv.ksql, "lksqlc-"),
            (inv.schema_registries, "lsrc-"),
            (inv.flink_pools, "lfcp-"),
        ):
            ids = [x.id for x in items]
            assert len(set(ids)) == len(ids)
            assert all(i.startswith(prefix) for i in ids)

    def test_children_die_with_parents(self, org):
        """API keys never outlive their owner, connectors never outlive their cluster."""
        lives = {x.id: x.life for x in [*org.inventory.service_accounts, *org.inventory.users]}
        for k in org.inventory.api_keys:
            owner = lives[k.owner_id]
            if owner.deleted_at is not None:
                assert k.life.deleted_at is not None
                assert k.life.deleted_at <= owner.deleted_at
        for c in org.inventory.connectors:
            cl = org.clusters[c.cluster_id].life
            if cl.deleted_at is not None:
                assert c.life.deleted_at is not None
                assert c.life.deleted_at <= cl.deleted_at

    def test_some_objects_deleted_and_created_late(self, org):
        """The tiny org has a deleted cluster and a recently created one."""
        lives = [c.life for c in org.inventory.clusters]
        assert any(x.deleted_at is not None for x in lives)
        assert any(x.created_at.date() > NOW.date() - timedelta(days=60) for x in lives)


class TestBillingLines:
    def test_every_line_type_in_two_weeks(self, org):
        """The tiny org emits every reference line_type over two settled weeks."""
        seen = {x.line_type for d in _days(14) for x in org.billing_lines(d)}
        assert seen == set(LINE_TYPES)

    def test_amounts_add_up_exactly(self, org):
        """amount == original - discount, and original == price * quantity, exactly."""
        for d in _days(14):
            for x in org.billing_lines(d):
                assert x.amount == x.original_amount - x.discount_amount
                if x.price is not None and x.quantity is not None:
                    assert x.original_amount == x.price * x.quantity

    def test_json_numbers_round_trip(self, org):
        """Every number survives JSON float encoding via Decimal(str(x))."""
        for d in _days(7):
            for x in org.billing_lines(d):
                j = json.loads(x.to_json_text())
                assert j == x.to_json()
                for field, value in (
                    ("amount", x.amount),
                    ("original_amount", x.original_amount),
                    ("discount_amount", x.discount_amount),
                    ("quantity", x.quantity),
                    ("price", x.price),
                ):
                    if value is not None:
                        assert Decimal(str(j[field])) == value
                        assert -value.as_tuple().exponent <= 6

    def test_ids_unique_per_day_and_stable(self, org):
        """Line ids are unique within a day and differ between days."""
        a = [x.id for x in org.billing_lines(SETTLED)]
        b = [x.id for x in org.billing_lines(SETTLED - timedelta(days=1))]
        assert len(set(a)) == len(a)
        assert not set(a) & set(b)

    def test_tiered_rows_share_key(self, org):
        """Some resource has several rows for one line_type and day (tiers)."""
        found = False
        for d in _days(30):
            keys = [(x.resource_id, x.line_type) for x in org.billing_lines(d) if x.resource_id]
            if len(keys) != len(set(keys)):
                found = True
        assert found

    def test_promo_and_org_wide_rows(self, org):
        """PROMO_CREDIT is negative with null unit; SUPPORT has no resource."""
        lines = [x for d in _days(14) for x in org.billing_lines(d)]
        promos = [x for x in lines if x.line_type == "PROMO_CREDIT"]
        assert promos
        assert all(p.amount < 0 and p.unit is None and p.quantity is None for p in promos)
        support = [x.to_json() for x in lines if x.line_type == "SUPPORT"]
        assert all("resource" not in s for s in support)

    def test_deleted_cluster_billed_until_deletion(self, org):
        """A deleted cluster is billed for the days it existed and not after."""
        c = next(c for c in org.inventory.clusters if c.life.deleted_at is not None)
        gone = c.life.deleted_at.date()
        assert any(x.resource_id == c.id for x in org.billing_lines(gone))
        assert not any(x.resource_id == c.id for x in org.billing_lines(gone + timedelta(days=1)))


class TestTruth:
    def test_network_truth_matches_quantity(self, org):
        """Network rows: truth bytes sum to the tier group's quantity in GB."""
        checked = 0
        for d in _days(10):
            for x in org.billing_lines(d):
                if x.line_type not in ("KAFKA_NETWORK_READ", "KAFKA_NETWORK_WRITE"):
                    continue
                t = org.truth(d, x.id)
                total = sum(t["principals"].values())
                assert Decimal(total) / 10**9 == Decimal(t["details"]["group_quantity"])
                assert sum(t["owners"].values()) == total
                checked += 1
        assert checked > 10

    def test_flink_truth_matches_quantity(self, org):
        """FLINK_NUM_CFUS quantity equals the statements' CFU-minutes / 60."""
        for d in _days(5):
            for x in org.billing_lines(d):
                if x.line_type == "FLINK_NUM_CFUS":
                    t = org.truth(d, x.id)
                    assert Decimal(sum(t["principals"].values())) / 60 == x.quantity
                    assert t["details"]["statements"]

    def test_api_key_principals_map_to_owners(self, org_for):
        """Principals that are API key ids are mapped to the key owner in 'owners'."""
        org = org_for(1, "small")
        for x in org.billing_lines(SETTLED):
            if x.line_type == "KAFKA_NETWORK_WRITE":
                t = org.truth(SETTLED, x.id)
                for p in t["principals"]:
                    if p in org.api_keys:
                        assert org.api_keys[p].owner_id in t["owners"]
                        assert p not in t["owners"]
                        return
        pytest.fail("no API-key principal found in the small org")

    def test_unknown_principal_present(self, org):
        """Some cluster reports a principal IAM does not know."""
        truths = org.truth(SETTLED)
        assert any(t["unknown_principals"] for t in truths)

    def test_unknown_line_raises(self, org):
        """Asking for a line that does not exist raises KeyError."""
        with pytest.raises(KeyError):
            org.truth(SETTLED, "cost-nope")


class TestLateData:
    def test_future_and_today_empty(self, org):
        """Today and later have no rows."""
        assert org.billing_lines(NOW.date(), NOW) == []
        assert org.billing_lines(NOW.date() + timedelta(days=3), NOW) == []

    def test_recent_days_partial_then_settle(self, org):
        """Yesterday is partial and grows as time passes; after 72 h it is final."""
        d = NOW.date() - timedelta(days=1)
        final = org.billing_lines(d)
        early = org.billing_lines(d, NOW)
        later = org.billing_lines(d, NOW + timedelta(hours=30))
        settled = org.billing_lines(d, NOW + timedelta(hours=SETTLE_HOURS))
        assert len(early) <= len(later) <= len(final)
        assert len(early) < len(final)
        assert sum(x.amount for x in early) < sum(x.amount for x in final)
        assert settled == final
        for x in early:
            assert x.amount == x.original_amount - x.discount_amount

    def test_late_rows_keep_ids(self, org):
        """A row keeps its id while it changes."""
        d = NOW.date() - timedelta(days=2)
        final_ids = {x.id for x in org.billing_lines(d)}
        assert {x.id for x in org.billing_lines(d, NOW)} <= final_ids
