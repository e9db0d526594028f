# mypy: allow-untyped-defs
"""Realistic names: teams an ownership rule can find, a small minority it cannot."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest

from ccloud_sim import TEAMS, Organization
from ccloud_sim.cli import main
from ccloud_sim.inventory import ApiKey

# What an operator would write after reading the sim's README (names.py conventions).
NAME_RULE = re.compile(r"^(?:svc-)?(?P<team>[a-z]+)-")
DESCRIPTION_RULE = re.compile(r"Owned by team (?P<team>[a-z]+)|\((?P<team2>[a-z]+) team\)")


def _team_in(text: str, teams: set[str], rule: re.Pattern[str]) -> str | None:
    m = rule.search(text)
    if m is None:
        return None
    found = next(g for g in m.groups() if g)
    return found if found in teams else None


def _rule_team(org: Organization, identity_id: str, keys_by_owner) -> str | None:
    """The team a rule set over names, descriptions and API-key descriptions finds."""
    teams = {t.name for t in org.catalogue.teams}
    inv = org.inventory
    sa = next((s for s in inv.service_accounts if s.id == identity_id), None)
    pool = next((p for p in inv.pools if p.id == identity_id), None)
    if sa is not None:
        return _team_in(sa.description, teams, DESCRIPTION_RULE) or _team_in(
            sa.display_name, teams, NAME_RULE
        )
    if pool is not None:
        return _team_in(pool.display_name, teams, NAME_RULE)
    for k in keys_by_owner.get(identity_id, ()):
        found = _team_in(k.description, teams, DESCRIPTION_RULE)
        if found:
            return found
    return None


ANCHOR = date(2026, 3, 15)
"""Every organization here ends its history on this day: the inventory (who has API
keys, who exists) depends on the anchor, and the tests must not change with the date."""


@pytest.fixture(scope="module")
def medium() -> Organization:
    """The medium organization (600 service accounts)."""
    return Organization(1, "medium", ANCHOR)


class TestSignals:
    def test_rules_find_the_real_team_or_nothing(self, medium):
        """Where the catalogue says there is a signal, simple rules find exactly the real
        team; where it says there is none, they find no team."""
        keys_by_owner: dict[str, list[ApiKey]] = {}
        for k in medium.inventory.api_keys:
            keys_by_owner.setdefault(k.owner_id, []).append(k)
        inv = medium.inventory
        ids = [x.id for x in inv.service_accounts] + [x.id for x in inv.users]
        for i in ids + [x.id for x in inv.pools]:
            owner = medium.catalogue.owners[i]
            assert _rule_team(medium, i, keys_by_owner) == (owner.team if owner.signal else None)

    @pytest.mark.parametrize(("seed", "scale"), [(1, "medium"), (1, "large")])
    def test_a_small_minority_has_no_signal(self, seed, scale):
        """5-10 % of the identities of a medium or large organization carry no usable
        ownership signal."""
        org = Organization(seed, scale, ANCHOR)
        inv = org.inventory
        ids = [x.id for x in inv.service_accounts] + [x.id for x in inv.users]
        ids += [x.id for x in inv.pools]
        silent = [i for i in ids if org.catalogue.owners[i].signal is None]
        assert 0.05 <= len(silent) / len(ids) <= 0.10
        assert any(i.startswith("sa-") for i in silent)

    def test_in_a_small_organization_the_silent_are_keyless_users_and_a_few_accounts(self):
        """A small organization's silent identities are its users without an API key (a user
        has no description; only their keys can name a team) and at least one service
        account, so their share moves with the inventory (8-17 % over a month of anchors)."""
        org = Organization(0, "small", ANCHOR)
        inv = org.inventory
        keyed = {k.owner_id for k in inv.api_keys}
        silent_users = {u.id for u in inv.users if org.catalogue.owners[u.id].signal is None}
        assert silent_users == {u.id for u in inv.users if u.id not in keyed}
        assert any(org.catalogue.owners[s.id].signal is None for s in inv.service_accounts)

    def test_moved_service_accounts_say_so(self, medium):
        """A service account that changed teams says when, and the catalogue dates it."""
        moved = [
            (s, medium.catalogue.owners[s.id])
            for s in medium.inventory.service_accounts
            if medium.catalogue.owners[s.id].moved_on is not None
        ]
        assert moved
        for sa, owner in moved:
            assert f"moved from team {owner.previous_team} on {owner.moved_on}" in sa.description
            before = owner.moved_on - timedelta(days=1)
            assert medium.catalogue.team_of(sa.id, before) == owner.previous_team
            assert medium.catalogue.team_of(sa.id, owner.moved_on) == owner.team


class TestConventions:
    def test_environment_and_cluster_names(self, org_for):
        """Environments are shared-prod/shared-dev or <team>-<stage>; clusters name a team
        or say shared, and end in their stage."""
        org = org_for(1, "small")
        teams = {t.name for t in TEAMS}
        envs = [e.display_name for e in org.inventory.environments]
        assert envs[:2] == ["shared-prod", "shared-dev"]
        assert all(e.split("-")[0] in teams for e in envs[2:])
        for c in org.inventory.clusters:
            team = org.catalogue.team_of(c.id)
            prefix = c.display_name.split("-")[0]
            assert prefix == (team if team is not None else "shared")
            assert re.search(r"-(prod|dev|staging)(-\d+)?$", c.display_name)

    def test_workloads_named_after_their_owners_team(self, org_for):
        """Connectors, ksqlDB clusters and Flink statements carry their owner's team."""
        org = org_for(1, "small")
        cat = org.catalogue
        inv = org.inventory
        for cn in inv.connectors:
            if cat.owners[cn.id].signal is not None:
                assert cn.name.startswith(f"{cat.team_of(cn.owner_id)}-")
        for k in inv.ksql:
            assert k.display_name.startswith(f"ksql-{cat.team_of(k.credential_identity)}-")
        for st in inv.statements:
            assert st.name.startswith(f"{cat.team_of(st.principal)}-")

    def test_names_unique_where_the_api_needs_it(self, org_for):
        """Service accounts, users' emails and a cluster's connector names are unique."""
        inv = org_for(1, "medium").inventory
        assert len({s.display_name for s in inv.service_accounts}) == len(inv.service_accounts)
        assert len({u.email for u in inv.users}) == len(inv.users)
        per_cluster = [(c.cluster_id, c.name) for c in inv.connectors]
        assert len(set(per_cluster)) == len(per_cluster)
        assert len({s.name for s in inv.statements}) == len(inv.statements)

    def test_same_seed_same_names(self):
        """Names and the catalogue are a function of the seed."""
        a, b = Organization(4, "tiny", ANCHOR), Organization(4, "tiny", ANCHOR)
        assert a.inventory.service_accounts == b.inventory.service_accounts
        assert a.catalogue.to_json() == b.catalogue.to_json()
        c = Organization(5, "tiny", ANCHOR)
        assert [s.display_name for s in a.inventory.service_accounts] != [
            s.display_name for s in c.inventory.service_accounts
        ]


class TestServed:
    async def test_iam_lists_show_the_names(self, client, org, get_all):
        """The IAM endpoints serve the generated names and descriptions."""
        sas = await get_all(client, "/iam/v2/service-accounts", page_size=100)
        by_id = {s.id: s for s in org.inventory.service_accounts}
        for item in sas:
            assert item["display_name"] == by_id[item["id"]].display_name
            assert item["description"] == by_id[item["id"]].description
        users = await get_all(client, "/iam/v2/users", page_size=100)
        assert all(re.fullmatch(r"[a-z]+\.[a-z]+(-\d+)?@example\.com", u["email"]) for u in users)
        assert all(" " in u["full_name"] for u in users)

    async def test_connector_config_names_a_topic_of_its_cluster(self, client, org):
        """A connector's config 'topics' is one of its cluster's user topics."""
        cn = next(c for c in org.inventory.connectors if c.life.deleted_at is None)
        path = f"/connect/v1/environments/{cn.env_id}/clusters/{cn.cluster_id}/connectors"
        body = (await client.get(path, params={"expand": "info"})).json()
        topic = body[cn.name]["info"]["config"]["topics"]
        assert topic in {t.name for t in org.topics(cn.cluster_id) if not t.internal}


class TestCatalogueTruth:
    def test_truth_teams_command(self, capsys):
        """`ccloud-sim truth --teams` prints the teams and every owner."""
        assert (
            main(["truth", "--seed", "2", "--scale", "tiny", "--teams", "--anchor", str(ANCHOR)])
            == 0
        )
        out = json.loads(capsys.readouterr().out)
        org = Organization(2, "tiny", ANCHOR)
        assert out == org.catalogue.to_json()
        assert {t["team"] for t in out["teams"]} <= {t.name for t in TEAMS}
        assert all(t["cost_centre"].startswith("CC-") for t in out["teams"])
        sa = org.inventory.service_accounts[0].id
        assert out["owners"][sa]["team"] in {t["team"] for t in out["teams"]}

    def test_truth_needs_a_date_without_teams(self, capsys):
        """`truth` without --date nor --teams is a usage error (exit 2)."""
        assert main(["truth"]) == 2
        assert "--date" in capsys.readouterr().err
