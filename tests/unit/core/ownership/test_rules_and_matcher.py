"""Ownership rules: matching, precedence, conflicts and validity periods (DESIGN §14)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from chargeback.core.models import UNALLOCATED, Identity, Resource
from chargeback.core.ownership import (
    UNASSIGNED,
    Directory,
    Key,
    Matcher,
    OwnershipSettings,
    compile_rules,
)


def own(**data: Any) -> OwnershipSettings:
    """Ownership settings from plain data, as the YAML file gives them."""
    return OwnershipSettings.model_validate(data)


DAY = dt.date(2026, 3, 10)

RESOURCES = [
    Resource("env-prod", "environment", "payments-prod", "env-prod"),
    Resource("env-shared", "environment", "shared-prod", "env-shared"),
    Resource("lkc-pay", "kafka_cluster", "payments-ledger-prod", "env-prod"),
    Resource("lkc-shared", "kafka_cluster", "shared-events-prod", "env-shared"),
    Resource("lcc-1", "connector", "orders-cdc-sink", "env-shared", parent_id="lkc-shared"),
]
IDENTITIES = [
    Identity(
        "sa-1",
        "service_account",
        "payments-ledger-writer",
        attributes={"description": "Owned by team payments; cost centre CC-1100"},
    ),
    Identity("sa-2", "service_account", "legacy-app-7", attributes={"description": ""}),
    Identity("sa-3", "service_account", "svc-fraud-scoring-reader"),
    Identity("u-1", "user", "Ada Lovelace"),
    Identity(
        "KEY1",
        "api_key",
        "k",
        owner_id="u-1",
        attributes={"description": "Personal key of Ada Lovelace (ml team)"},
    ),
]


def matcher(*rules: dict[str, Any], dimensions: list[str] | None = None) -> Matcher:
    settings = own(dimensions=dimensions or [], rules=list(rules))
    return Matcher(compile_rules(settings, "t"), Directory.of(RESOURCES, IDENTITIES))


class TestMatching:
    def test_exact_identity_id(self) -> None:
        """An identity_id rule gives its team to rows of that identity only."""
        m = matcher({"team": "payments", "match": {"identity_id": "sa-1"}})
        assert m.decide(Key("sa-1", "lkc-pay", "env-prod"), DAY).team == "payments"
        assert m.decide(Key("sa-2", "lkc-pay", "env-prod"), DAY).team == UNASSIGNED

    def test_description_regex_fills_team_and_dimensions(self) -> None:
        """Named groups of a description regex become the team and a dimension."""
        m = matcher(
            {
                "team": "{team}",
                "dimensions": {"cost_centre": "{cc}"},
                "match": {
                    "identity_description": (
                        r"Owned by team (?P<team>\w+); cost centre (?P<cc>CC-\d+)"
                    )
                },
            },
            dimensions=["cost_centre"],
        )
        d = m.decide(Key("sa-1", "lkc-pay", "env-prod"), DAY)
        assert (d.team, d.dimensions) == ("payments", (("cost_centre", "CC-1100"),))

    def test_display_name_and_api_key_description(self) -> None:
        """A display-name regex and a regex on an owned API key's description both match."""
        m = matcher(
            {"team": "{t}", "match": {"identity_name": r"^svc-(?P<t>[a-z]+)-"}},
            {"team": "{t}", "match": {"api_key_description": r"\((?P<t>[a-z]+) team\)"}},
        )
        assert m.decide(Key("sa-3", "", ""), DAY).team == "fraud"
        assert m.decide(Key("u-1", "", ""), DAY).team == "ml"

    def test_resource_cluster_and_environment(self) -> None:
        """Resource rules see the row's resource, the cluster a connector belongs to and the env."""
        m = matcher(
            {"team": "orders", "match": {"resource_name": "^orders-"}},
            {"team": "events", "match": {"cluster": "lkc-shared"}},
            {"team": "{t}", "match": {"environment_name": r"^(?P<t>[a-z]+)-prod$"}},
        )
        assert m.decide(Key(UNALLOCATED, "lcc-1", "env-shared"), DAY).team == "orders"
        assert m.decide(Key(UNALLOCATED, "lkc-shared", "env-shared"), DAY).team == "events"
        assert m.decide(Key(UNALLOCATED, "lkc-pay", "env-prod"), DAY).team == "payments"

    def test_all_conditions_of_a_rule_must_hold(self) -> None:
        """A rule with an identity and an environment condition needs both."""
        m = matcher({"team": "x", "match": {"identity_id": "sa-2", "environment": "env-prod"}})
        assert m.decide(Key("sa-2", "lkc-pay", "env-prod"), DAY).team == "x"
        assert m.decide(Key("sa-2", "lkc-shared", "env-shared"), DAY).team == UNASSIGNED

    def test_unallocated_has_no_identity_facts(self) -> None:
        """UNALLOCATED matches no name or description rule, only resource-side rules."""
        m = matcher({"team": "x", "match": {"identity_name": ".*"}})
        assert m.decide(Key(UNALLOCATED, "lkc-pay", "env-prod"), DAY).team == "x"  # empty name
        m = matcher({"team": "x", "match": {"identity_name": ".+"}})
        assert m.decide(Key(UNALLOCATED, "lkc-pay", "env-prod"), DAY).team == UNASSIGNED


class TestPrecedence:
    def test_identity_rule_beats_resource_rule_whatever_the_order(self) -> None:
        """An identity rule decides over a resource rule listed before it."""
        m = matcher(
            {"name": "cluster", "team": "platform", "match": {"cluster": "lkc-pay"}},
            {"name": "sa", "team": "payments", "match": {"identity_name": "^payments-"}},
        )
        d = m.decide(Key("sa-1", "lkc-pay", "env-prod"), DAY)
        assert (d.team, d.rule, d.conflicts) == ("payments", "sa", ())

    def test_exact_id_beats_pattern(self) -> None:
        """An identity_id rule beats a name pattern listed first."""
        m = matcher(
            {"name": "pattern", "team": "a", "match": {"identity_name": "payments"}},
            {"name": "exact", "team": "b", "match": {"identity_id": "sa-1"}},
        )
        assert m.decide(Key("sa-1", "", ""), DAY).rule == "exact"

    def test_narrower_beats_broader_at_the_same_level(self) -> None:
        """With equal levels, the rule with more conditions wins."""
        m = matcher(
            {"name": "broad", "team": "a", "match": {"environment": "env-prod"}},
            {
                "name": "narrow",
                "team": "b",
                "match": {"environment": "env-prod", "environment_name": "prod"},
            },
        )
        assert m.decide(Key("sa-2", "lkc-pay", "env-prod"), DAY).rule == "narrow"

    def test_conflict_is_reported_and_first_in_order_decides(self) -> None:
        """Two equal rules disagree: the first decides, the second is named as a conflict."""
        m = matcher(
            {"name": "first", "team": "a", "match": {"identity_id": "sa-1"}},
            {"name": "second", "team": "b", "match": {"identity_id": "sa-1"}},
        )
        d = m.decide(Key("sa-1", "", ""), DAY)
        assert (d.team, d.rule, d.conflicts) == ("a", "first", ("second",))

    def test_agreeing_rules_are_no_conflict(self) -> None:
        """Equal rules that give the same team and dimensions do not conflict."""
        m = matcher(
            {"name": "first", "team": "a", "match": {"identity_id": "sa-1"}},
            {"name": "second", "team": "a", "match": {"identity_id": ["sa-1", "sa-2"]}},
        )
        assert m.decide(Key("sa-1", "", ""), DAY).conflicts == ()


class TestValidity:
    def test_identity_moving_teams_mid_month(self) -> None:
        """valid_until/valid_from charge each team for its own days, bounds inclusive."""
        m = matcher(
            {
                "name": "old",
                "team": "orders",
                "valid_until": "2026-03-14",
                "match": {"identity_id": "sa-2"},
            },
            {
                "name": "new",
                "team": "search",
                "valid_from": "2026-03-15",
                "match": {"identity_id": "sa-2"},
            },
        )
        key = Key("sa-2", "", "")
        teams = {d: m.decide(key, dt.date(2026, 3, d)).team for d in (1, 14, 15, 31)}
        assert teams == {1: "orders", 14: "orders", 15: "search", 31: "search"}

    def test_rule_outside_its_period_falls_back(self) -> None:
        """Outside a rule's period the next rule in precedence decides, without a conflict."""
        m = matcher(
            {
                "name": "temp",
                "team": "x",
                "valid_from": "2026-03-20",
                "match": {"identity_id": "sa-1"},
            },
            {"name": "base", "team": "y", "match": {"identity_name": "payments"}},
        )
        assert m.decide(Key("sa-1", "", ""), DAY).team == "y"
        assert m.decide(Key("sa-1", "", ""), dt.date(2026, 3, 20)).team == "x"


class TestRuleVersion:
    def test_fingerprint_changes_with_rules_and_not_with_other_tenants(self) -> None:
        """The version digest follows the tenant's own rules only."""
        base = {"team": "a", "match": {"identity_id": "sa-1"}}
        other = {"team": "b", "tenants": ["other"], "match": {"identity_id": "sa-2"}}
        fp1 = compile_rules(own(rules=[base]), "t").fingerprint
        fp2 = compile_rules(own(rules=[base, other]), "t").fingerprint
        fp3 = compile_rules(own(rules=[{**base, "team": "c"}]), "t").fingerprint
        assert fp1 == fp2
        assert fp1 != fp3

    def test_tenant_scoped_rule_applies_to_its_tenant(self) -> None:
        """A rule with tenants: [x] is compiled for x only."""
        s = own(rules=[{"team": "a", "tenants": ["x"], "match": {"identity_id": "s"}}])
        assert len(compile_rules(s, "x").rules) == 1
        assert compile_rules(s, "y").empty
