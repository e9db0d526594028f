"""Teams and human names: the ownership signals of the generated organization.

:func:`assign` runs after the structural generator (``_generate.py``) and renames
every object from its own random stream (so ids, lifetimes and usage are those of
the structure, whatever the names), following conventions an operator can write
ownership rules for:

* environments ``shared-prod`` / ``shared-dev`` and ``<team>-prod|dev|staging``;
* clusters ``<team>-<app>-<stage>`` (or ``shared-<purpose>-<stage>`` for shared ones);
* service accounts, by convention: ``<team>-<app>-<role>`` with the description
  ``Owned by team <team>; cost centre <CC-nnnn>`` (most), ``svc-<team>-<app>-<role>``
  with ``<Role> for <app> (<team> team)``, ``<app>-<role>`` whose description alone
  names the team, and a minority with no usable signal (``legacy-app-7``, empty or
  unhelpful descriptions); a few say ``; moved from team <old> on <date>``;
* users ``First Last`` / ``first.last@example.com`` (IAM carries no team for a
  person): their API keys say ``Personal key of <First Last> (<team> team)``;
* API keys ``Owned by team <team>; <kind> key for <owner>``; identity pools
  ``<team>-apps``; connectors ``<team>-<app>-<class>``, ksqlDB ``ksql-<team>-<app>``,
  Flink pools ``<team>-flink-<n>`` and statements ``<team>-<app>-enrich-<nnn>``
  after the team of their owner.

The :class:`Catalogue` is the ground truth: every identity's and resource's real
team, where a rule can read it (``signal``), and teams that changed hands.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from ccloud_sim._det import rng

if TYPE_CHECKING:
    from ccloud_sim._generate import Inventory

__all__ = ["TEAMS", "Catalogue", "Ownership", "Team", "assign"]


@dataclass(frozen=True, slots=True)
class Team:
    """A team of the catalogue, its cost centre and the applications it runs."""

    name: str
    cost_centre: str
    apps: tuple[str, ...]


TEAMS = (
    Team("payments", "CC-1100", ("ledger", "checkout", "refunds", "settlement")),
    Team("orders", "CC-1200", ("orders", "cart", "fulfilment", "returns")),
    Team("fraud", "CC-1300", ("scoring", "rules", "alerts")),
    Team("search", "CC-1400", ("indexer", "query", "ranking")),
    Team("analytics", "CC-2100", ("clickstream", "reports", "dashboards")),
    Team("platform", "CC-2200", ("cdc", "lake", "ingest", "etl")),
    Team("ml", "CC-2300", ("features", "training", "inference")),
    Team("growth", "CC-3100", ("campaigns", "referrals", "notifications")),
    Team("logistics", "CC-3200", ("shipping", "tracking", "stock")),
    Team("identity", "CC-4100", ("auth", "profiles", "sessions")),
    Team("risk", "CC-4200", ("limits", "exposure", "audit")),
    Team("support", "CC-5100", ("tickets", "crm", "feedback")),
)
_ROLES = ("producer", "consumer", "streams", "connector", "processor", "reader", "writer", "etl")
_NO_SIGNAL_NAMES = ("legacy-app", "test-sa", "tmp-migration", "kafka-client", "jenkins", "svc")
_NO_SIGNAL_DESCRIPTIONS = ("", "created by terraform", "temporary", "do not delete", "TODO owner?")
_FIRST = (
    "Ana", "Bo", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lea", "Mia",
    "Nils", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Viktor", "Wen", "Yusuf",
)  # fmt: skip
_LAST = (
    "Smith", "Ng", "Garcia", "Muller", "Rossi", "Kim", "Silva", "Novak", "Haas", "Ito", "Okafor",
    "Larsen", "Patel", "Dubois", "Kowalski", "Moreau", "Santos", "Berg", "Costa", "Fischer",
)  # fmt: skip
_PURPOSES = ("events", "logs", "integration", "streaming", "cdc", "analytics")
_P_NO_SIGNAL = 0.07
_P_MOVED = 0.03


@dataclass(frozen=True, slots=True)
class Ownership:
    """The real owner of an identity or resource.

    ``team`` is ``None`` for shared resources. ``signal`` names where a rule can read
    the team (``display_name``, ``description``, ``api_key_description``, ``name``),
    ``None`` when nothing the APIs show says it. ``previous_team`` owned it until
    ``moved_on`` (exclusive).
    """

    team: str | None
    signal: str | None
    previous_team: str | None = None
    moved_on: date | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        out: dict[str, Any] = {"team": self.team, "signal": self.signal}
        if self.previous_team is not None and self.moved_on is not None:
            out["previous_team"] = self.previous_team
            out["moved_on"] = self.moved_on.isoformat()
        return out


@dataclass(slots=True)
class Catalogue:
    """The teams in use and the owner of every identity and resource (ground truth)."""

    teams: tuple[Team, ...]
    owners: dict[str, Ownership] = field(default_factory=dict)

    def team_of(self, object_id: str, on: date | None = None) -> str | None:
        """The team owning *object_id* (on date *on*, if it changed hands)."""
        o = self.owners.get(object_id)
        if o is None:
            return None
        if on is not None and o.moved_on is not None and on < o.moved_on:
            return o.previous_team
        return o.team

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (``ccloud-sim truth --teams``)."""
        return {
            "teams": [
                {"team": t.name, "cost_centre": t.cost_centre, "apps": list(t.apps)}
                for t in self.teams
            ],
            "owners": {k: v.to_json() for k, v in sorted(self.owners.items())},
        }


class _Namer:
    """Unique names per kind, drawing from the naming stream."""

    def __init__(self, r: random.Random, teams: tuple[Team, ...]) -> None:
        self.r = r
        self.teams = teams
        self.by_name = {t.name: t for t in teams}
        self._seen: dict[str, set[str]] = {}

    def unique(self, kind: str, name: str) -> str:
        seen = self._seen.setdefault(kind, set())
        candidate, n = name, 2
        while candidate in seen:
            candidate, n = f"{name}-{n}", n + 1
        seen.add(candidate)
        return candidate

    def team(self) -> Team:
        return self.r.choice(self.teams)

    def app(self, team: str) -> str:
        return self.r.choice(self.by_name[team].apps)


def assign(inv: Inventory, seed: int, scale_name: str, service_accounts: int) -> Catalogue:
    """Rename every object of *inv* in place and return the ownership catalogue."""
    n_teams = min(len(TEAMS), max(3, round(service_accounts**0.5)))
    r = rng("names", seed, scale_name, inv.anchor.isoformat())
    namer = _Namer(r, TEAMS[:n_teams])
    cat = Catalogue(namer.teams)
    _environments(inv, namer, cat)
    _clusters(inv, namer, cat)
    _identities(inv, namer, cat)
    _api_keys(inv, namer, cat)
    _workloads(inv, namer, cat)
    return cat


def _environments(inv: Inventory, nm: _Namer, cat: Catalogue) -> None:
    names: list[tuple[str, str | None]] = [("shared-prod", None), ("shared-dev", None)]
    for stage in ("prod", "dev", "staging"):
        names += [(f"{t.name}-{stage}", t.name) for t in nm.teams]
    for i, e in enumerate(inv.environments):
        if i < len(names):
            name, team = names[i]
        else:
            team = nm.team().name
            name = f"{team}-sandbox-{i}"
        inv.environments[i] = replace(e, display_name=nm.unique("env", name))
        cat.owners[e.id] = Ownership(team, "display_name" if team else None)


def _clusters(inv: Inventory, nm: _Namer, cat: Catalogue) -> None:
    envs = {e.id: e for e in inv.environments}
    for i, c in enumerate(inv.clusters):
        env_team = cat.team_of(c.env_id)
        stage = envs[c.env_id].display_name.rsplit("-", 1)[-1]
        stage = stage if stage in ("prod", "dev", "staging") else "dev"
        team = (
            env_team if env_team is not None else (nm.team().name if nm.r.random() < 0.5 else None)
        )
        if team is None:
            name = f"shared-{nm.r.choice(_PURPOSES)}-{stage}"
        else:
            name = f"{team}-{nm.app(team)}-{stage}"
        inv.clusters[i] = replace(c, display_name=nm.unique("cluster", name))
        cat.owners[c.id] = Ownership(team, "display_name" if team else None)
    for i, sr in enumerate(inv.schema_registries):
        inv.schema_registries[i] = replace(sr, display_name=f"sr-{envs[sr.env_id].display_name}")
        cat.owners[sr.id] = cat.owners[sr.env_id]


def _identities(inv: Inventory, nm: _Namer, cat: Catalogue) -> None:
    r = nm.r
    key_clusters: dict[str, str] = {}
    keyed_users: set[str] = set()
    for k in inv.api_keys:
        if k.resource_kind == "Cluster":
            key_clusters.setdefault(k.owner_id, k.resource_id)
        keyed_users.add(k.owner_id)
    total = len(inv.service_accounts) + len(inv.users) + len(inv.pools)
    silent_users = sum(1 for u in inv.users if u.id not in keyed_users)
    silent_sas = max(1, round(_P_NO_SIGNAL * total) - silent_users)
    silent = set(
        r.sample(range(len(inv.service_accounts)), min(silent_sas, len(inv.service_accounts)))
    )
    for i, sa in enumerate(inv.service_accounts):
        home = cat.team_of(key_clusters.get(sa.id, ""))
        team = home if home is not None and r.random() < 0.6 else nm.team().name
        name, description, ownership = _service_account(nm, team, i in silent, inv.anchor)
        inv.service_accounts[i] = replace(
            sa, display_name=nm.unique("sa", name), description=description
        )
        cat.owners[sa.id] = ownership
    for i, u in enumerate(inv.users):
        first, last = r.choice(_FIRST), r.choice(_LAST)
        email = nm.unique("email", f"{first.lower()}.{last.lower()}")
        inv.users[i] = replace(u, full_name=f"{first} {last}", email=f"{email}@example.com")
        signal = "api_key_description" if u.id in keyed_users else None
        cat.owners[u.id] = Ownership(nm.team().name, signal)
    for i, p in enumerate(inv.pools):
        team = nm.teams[i % len(nm.teams)].name
        inv.pools[i] = replace(
            p,
            display_name=nm.unique("pool", f"{team}-apps"),
            description=f"OAuth clients of the {team} team",
            filter=f'claims.team == "{team}"',
        )
        cat.owners[p.id] = Ownership(team, "display_name")


def _service_account(
    nm: _Namer, team: str, silent: bool, anchor: date
) -> tuple[str, str, Ownership]:
    r = nm.r
    app, role = nm.app(team), r.choice(_ROLES)
    cc = nm.by_name[team].cost_centre
    if silent:
        name = f"{r.choice(_NO_SIGNAL_NAMES)}-{r.randint(1, 99)}"
        return name, r.choice(_NO_SIGNAL_DESCRIPTIONS), Ownership(team, None)
    roll = r.random()
    if roll < 0.17:
        return (
            f"svc-{team}-{app}-{role}",
            f"{role.title()} for {app} ({team} team)",
            Ownership(team, "display_name"),
        )
    name = f"{team}-{app}-{role}" if roll < 0.75 else f"{app}-{role}"
    description = f"Owned by team {team}; cost centre {cc}"
    ownership = Ownership(team, "display_name" if roll < 0.75 else "description")
    if r.random() < _P_MOVED:
        previous = r.choice([t.name for t in nm.teams if t.name != team])
        moved = anchor - timedelta(days=r.randint(5, 60))
        description += f"; moved from team {previous} on {moved.isoformat()}"
        ownership = replace(ownership, previous_team=previous, moved_on=moved)
    return name, description, ownership


def _api_keys(inv: Inventory, nm: _Namer, cat: Catalogue) -> None:
    names = {s.id: s.display_name for s in inv.service_accounts}
    names.update({u.id: u.full_name for u in inv.users})
    clusters = {c.id: c.display_name for c in inv.clusters}
    for i, k in enumerate(inv.api_keys):
        owner = cat.owners[k.owner_id]
        target = clusters.get(k.resource_id, k.resource_id)
        display = nm.unique("key", f"{names[k.owner_id]}-{k.resource_kind.lower()}")
        if owner.signal is None:
            description = nm.r.choice(_NO_SIGNAL_DESCRIPTIONS)
        elif k.owner_kind == "User":
            description = f"Personal key of {names[k.owner_id]} ({owner.team} team)"
        else:
            description = f"Owned by team {owner.team}; {k.resource_kind} key for {target}"
        inv.api_keys[i] = replace(k, display_name=display, description=description)
        cat.owners[k.id] = Ownership(owner.team, "description" if owner.signal else None)


def _workloads(inv: Inventory, nm: _Namer, cat: Catalogue) -> None:
    """Connectors, ksqlDB, Flink pools and statements, named after their owner's team."""
    r = nm.r
    for i, cn in enumerate(inv.connectors):
        owner = cat.owners[cn.owner_id]
        team = owner.team or nm.team().name
        cls = cn.connector_class.lower().replace("_", "-")
        if owner.signal is None:
            name = f"{r.choice(_PURPOSES)}-{cls}"
        else:
            name = f"{team}-{nm.app(team)}-{cls}"
        inv.connectors[i] = replace(cn, name=nm.unique(f"connector:{cn.cluster_id}", name))
        cat.owners[cn.id] = Ownership(team, "name" if owner.signal else None)
    for i, k in enumerate(inv.ksql):
        team = cat.team_of(k.credential_identity) or nm.team().name
        inv.ksql[i] = replace(k, display_name=nm.unique("ksql", f"ksql-{team}-{nm.app(team)}"))
        cat.owners[k.id] = Ownership(team, "display_name")
    for i, p in enumerate(inv.flink_pools):
        team = cat.team_of(p.env_id) or nm.team().name
        inv.flink_pools[i] = replace(p, display_name=nm.unique("flink", f"{team}-flink-{i}"))
        cat.owners[p.id] = Ownership(team, "display_name")
    for i, st in enumerate(inv.statements):
        team = cat.team_of(st.principal) or nm.team().name
        app = nm.app(team)
        name = f"{team}-{app}-enrich-{i:03d}"
        inv.statements[i] = replace(
            st,
            name=name,
            statement=f"INSERT INTO {team}_{app}_enriched SELECT * FROM {team}_{app};",
        )
        cat.owners[name] = Ownership(team, "name")
