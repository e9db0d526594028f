"""Generate the inventory of an organization from ``(seed, scale, anchor)``.

Objects live over the ~400 days before ``anchor``: most exist the whole time, a
few percent are created or deleted on the way. Children never outlive their
parents (deleting an owner deletes its API keys; deleting a cluster deletes its
keys, connectors and ksqlDB clusters).

This module draws the structure (ids, lifetimes, who owns what, usage sources);
:mod:`ccloud_sim.names` then gives everything its human names and teams, and
:mod:`ccloud_sim.topics` the clusters' topics, each from its own random stream.
The placeholder names drawn here are kept only so the structural stream (hence
every id and usage figure) stays what it was before names had their own module.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ccloud_sim import names
from ccloud_sim._det import day_start, digest_hex, rng, short_id
from ccloud_sim.inventory import (
    ApiKey,
    Connector,
    Environment,
    FlinkPool,
    FlinkStatement,
    IdentityPool,
    IdentityProvider,
    KafkaCluster,
    KsqlCluster,
    Lifetime,
    SchemaRegistry,
    ServiceAccount,
    UsageSource,
    User,
)
from ccloud_sim.scales import Scale
from ccloud_sim.topics import Topic, add_topics

__all__ = ["HISTORY_DAYS", "Inventory", "generate", "org_uuid"]

HISTORY_DAYS = 400
_P_LATE = 0.05
_P_DELETED = 0.04

_REGIONS = {
    "AWS": ("us-east-1", "us-west-2", "eu-west-1"),
    "GCP": ("us-central1", "europe-west1"),
    "AZURE": ("eastus", "westeurope"),
}
_NETWORKS = ("INTERNET", "INTERNET", "INTERNET", "PRIVATE_LINK", "PEERED_VPC", "TRANSIT_GATEWAY")
_WORDS = (
    "orders", "payments", "billing", "search", "ledger", "fraud", "inventory", "shipping",
    "analytics", "clicks", "audit", "profile", "pricing", "catalog", "alerts", "events",
)  # fmt: skip
_TEAMS = ("core", "data", "platform", "growth", "risk", "ops", "ml", "web")
_FIRST = ("ana", "bo", "chen", "dara", "eli", "fay", "gus", "hana", "ivo", "jo", "kai", "lea")
_LAST = ("smith", "ng", "garcia", "muller", "rossi", "kim", "silva", "novak", "haas", "ito")
_MANAGED_CLASSES = (
    ("S3_SINK", "sink"),
    ("BigQuerySink", "sink"),
    ("PostgresCdcSource", "source"),
    ("DatagenSource", "source"),
    ("ElasticsearchSink", "sink"),
    ("MongoDbAtlasSource", "source"),
)


@dataclass(slots=True)
class Inventory:
    """Every object of the organization, in generation order, plus indexes."""

    org_id: str
    anchor: date
    support_product: str
    discount_rate: str
    environments: list[Environment] = field(default_factory=list)
    clusters: list[KafkaCluster] = field(default_factory=list)
    service_accounts: list[ServiceAccount] = field(default_factory=list)
    users: list[User] = field(default_factory=list)
    api_keys: list[ApiKey] = field(default_factory=list)
    providers: list[IdentityProvider] = field(default_factory=list)
    pools: list[IdentityPool] = field(default_factory=list)
    connectors: list[Connector] = field(default_factory=list)
    ksql: list[KsqlCluster] = field(default_factory=list)
    schema_registries: list[SchemaRegistry] = field(default_factory=list)
    flink_pools: list[FlinkPool] = field(default_factory=list)
    statements: list[FlinkStatement] = field(default_factory=list)
    usage_sources: dict[str, tuple[UsageSource, ...]] = field(default_factory=dict)
    catalogue: names.Catalogue = field(default_factory=lambda: names.Catalogue(()))
    topics: dict[str, tuple[Topic, ...]] = field(default_factory=dict)


def org_uuid(seed: int) -> str:
    """The organization id (a UUID) derived from *seed*."""
    return str(uuid.UUID(hex=digest_hex("org", seed, size=16), version=4))


class _Ids:
    """Unique id factory per prefix."""

    def __init__(self, r: random.Random) -> None:
        self._r = r
        self._seen: set[str] = set()

    def make(self, prefix: str, length: int = 6, *, upper: bool = False) -> str:
        while True:
            candidate = prefix + short_id(self._r, length, upper=upper)
            if candidate not in self._seen:
                self._seen.add(candidate)
                return candidate


class _Lives:
    """Draws lifetimes within ``[anchor - HISTORY_DAYS, anchor)``."""

    def __init__(self, r: random.Random, anchor: date) -> None:
        self._r = r
        self.end = day_start(anchor)
        self.start = self.end - timedelta(days=HISTORY_DAYS)

    def _at(self, lo: datetime, hi: datetime) -> datetime:
        span = max(int((hi - lo).total_seconds()), 1)
        return lo + timedelta(seconds=self._r.randrange(span))

    def draw(
        self, parent: Lifetime | None = None, *, p_late: float = _P_LATE, p_del: float = _P_DELETED
    ) -> Lifetime:
        r = self._r
        lo = self.start if parent is None else parent.created_at
        if r.random() < p_late:
            created = self._at(lo, self.end - timedelta(days=3))
        else:
            created = self._at(lo, lo + timedelta(days=5))
        deleted: datetime | None = None
        if r.random() < p_del and created < self.end - timedelta(days=2):
            deleted = self._at(created + timedelta(days=1), self.end - timedelta(hours=1))
        if parent is not None and parent.deleted_at is not None:
            if created >= parent.deleted_at:
                created = parent.created_at + (parent.deleted_at - parent.created_at) / 2
            if deleted is None or deleted > parent.deleted_at:
                deleted = parent.deleted_at
        return Lifetime(created.replace(microsecond=0), deleted and deleted.replace(microsecond=0))

    def deleted_days_ago(self, days: int) -> Lifetime:
        """A lifetime from the beginning of history until *days* before the anchor."""
        return Lifetime(self.start + timedelta(hours=7), self.end - timedelta(days=days, hours=5))


def generate(seed: int, scale: Scale, anchor: date) -> Inventory:
    """Build the whole inventory; cheap even for ``xlarge`` (no billing here)."""
    r = rng("inventory", seed, scale.name, anchor.isoformat())
    ids = _Ids(r)
    lives = _Lives(r, anchor)
    inv = Inventory(
        org_id=org_uuid(seed),
        anchor=anchor,
        support_product=r.choice(("SUPPORT_CLOUD_BUSINESS", "SUPPORT_CLOUD_PREMIER")),
        discount_rate=r.choice(("0", "0.1", "0.15")),
    )
    _environments(inv, scale, r, ids, lives)
    _clusters(inv, scale, r, ids, lives)
    _identities(inv, scale, r, ids, lives)
    _platform(inv, scale, r, ids, lives)
    _api_keys(inv, scale, r, ids, lives)
    _connectors(inv, scale, r, ids, lives)
    _usage(inv, scale, r, ids)
    inv.catalogue = names.assign(inv, seed, scale.name, scale.service_accounts)
    add_topics(inv)
    return inv


def _environments(inv: Inventory, s: Scale, r: random.Random, ids: _Ids, lv: _Lives) -> None:
    for i in range(s.environments):
        life = lv.draw(p_late=0.0, p_del=0.0) if i < 2 else lv.draw(p_del=0.0)
        name = ("prod", "staging", "dev")[i] if i < 3 else f"{r.choice(_TEAMS)}-{i}"
        pkg = "ADVANCED" if i == 0 else r.choice(("ESSENTIALS", "ADVANCED"))
        inv.environments.append(Environment(ids.make("env-"), name, pkg, life))


def _clusters(inv: Inventory, s: Scale, r: random.Random, ids: _Ids, lv: _Lives) -> None:
    n = s.kafka_clusters
    for i in range(n):
        env = inv.environments[i % len(inv.environments)]
        if n >= 3 and i == n - 1:
            life = lv.deleted_days_ago(20)  # deleted mid-period, still billed before
        elif i == 1 and n >= 3:
            life = Lifetime(lv.end - timedelta(days=45, hours=3))  # created recently
        else:
            life = lv.draw(env.life, p_del=0.02)
        kind = "Dedicated" if i == 0 or r.random() < 0.3 else r.choice(("Basic", "Standard"))
        if i == 1:
            kind = "Standard"
        cloud = r.choice(tuple(_REGIONS))
        features = {f for f, p in _CLUSTER_FEATURES.items() if r.random() < p}
        features.update(_FORCED_FEATURES.get(i, ()))
        inv.clusters.append(
            KafkaCluster(
                id=ids.make("lkc-"),
                env_id=env.id,
                display_name=f"{r.choice(_WORDS)}-{r.choice(_TEAMS)}-{i}",
                kind=kind,
                cku=r.choice((1, 2, 2, 4)) if kind == "Dedicated" else 0,
                cloud=cloud,
                region=r.choice(_REGIONS[cloud]),
                availability=r.choice(("SINGLE_ZONE", "MULTI_ZONE")),
                network_access_type=r.choice(_NETWORKS),
                partitions=r.randrange(20, 600),
                life=life,
                features=frozenset(features),
            )
        )


_CLUSTER_FEATURES = {
    "rest_produce": 0.2,
    "streams": 0.15,
    "tiered_network": 0.3,
    "cluster_link": 0.08,
    "tableflow": 0.06,
    "usm": 0.05,
    "zero_days": 0.3,
}
_FORCED_FEATURES = {
    0: ("tiered_network", "cluster_link", "rest_produce", "zero_days"),
    1: ("tableflow", "usm", "streams"),
}


def _identities(inv: Inventory, s: Scale, r: random.Random, ids: _Ids, lv: _Lives) -> None:
    for i in range(s.service_accounts):
        life = lv.deleted_days_ago(10) if i == 3 else lv.draw(p_del=0.0 if i < 3 else _P_DELETED)
        name = f"{r.choice(_WORDS)}-{r.choice(_TEAMS)}-svc-{i}"
        inv.service_accounts.append(
            ServiceAccount(ids.make("sa-"), name, f"service account for {name}", life)
        )
    for i in range(s.users):
        first, last = r.choice(_FIRST), r.choice(_LAST)
        inv.users.append(
            User(
                id=ids.make("u-"),
                email=f"{first}.{last}{i}@example.com",
                full_name=f"{first.title()} {last.title()}",
                auth_type=r.choice(("AUTH_TYPE_LOCAL", "AUTH_TYPE_SSO")),
                life=lv.draw(),
            )
        )
    for i in range(s.identity_providers):
        pid = ids.make("op-", 5)
        inv.providers.append(
            IdentityProvider(
                id=pid,
                display_name=f"idp-{i}",
                description="corporate OAuth provider",
                issuer=f"https://login.example.com/{pid}/v2.0",
                jwks_uri=f"https://login.example.com/{pid}/keys",
                life=lv.draw(p_late=0.0, p_del=0.0),
            )
        )
        for j in range(s.pools_per_provider):
            team = _TEAMS[(i + j) % len(_TEAMS)]
            inv.pools.append(
                IdentityPool(
                    id=ids.make("pool-", 4),
                    provider_id=pid,
                    display_name=f"{team}-apps",
                    description=f"OAuth clients of the {team} team",
                    identity_claim="claims.sub",
                    filter=f'claims.team == "{team}"',
                    life=lv.draw(p_del=0.0),
                )
            )


def _owner(inv: Inventory, r: random.Random) -> tuple[str, str, Lifetime]:
    if inv.users and r.random() < 0.1:
        u = r.choice(inv.users)
        return u.id, "User", u.life
    sa = r.choice(inv.service_accounts)
    return sa.id, "ServiceAccount", sa.life


def _api_keys(inv: Inventory, s: Scale, r: random.Random, ids: _Ids, lv: _Lives) -> None:
    forced_sa = inv.service_accounts[3] if len(inv.service_accounts) > 3 else None
    for i in range(s.api_keys):
        owner_id, owner_kind, owner_life = _owner(inv, r)
        if forced_sa is not None and i < 2:  # the deleted service account had keys
            owner_id, owner_kind, owner_life = forced_sa.id, "ServiceAccount", forced_sa.life
        roll = r.random()
        env_id: str | None
        parent: Lifetime | None
        if roll < 0.84 or i < 2:
            c = r.choice(inv.clusters) if i >= 2 else inv.clusters[0]
            kind, res_id, env_id, parent = "Cluster", c.id, c.env_id, c.life
        elif roll < 0.89:
            kind, res_id, env_id, parent = "Cloud", "cloud", None, None
        elif roll < 0.95 and inv.schema_registries:
            sr = r.choice(inv.schema_registries)
            kind, res_id, env_id, parent = "SchemaRegistry", sr.id, sr.env_id, sr.life
        elif roll < 0.98 or not inv.ksql:
            env = r.choice(inv.environments)
            cloud = r.choice(tuple(_REGIONS))
            kind, res_id, env_id = "Region", f"{cloud.lower()}.{r.choice(_REGIONS[cloud])}", env.id
            parent = env.life
        else:
            k = r.choice(inv.ksql)
            kind, res_id, env_id, parent = "ksqlDB", k.id, k.env_id, k.life
        life = lv.draw(parent)
        life = _clip(life, owner_life)
        key_id = ids.make("", 16, upper=True)
        inv.api_keys.append(
            ApiKey(
                id=key_id,
                display_name=f"{kind.lower()}-key-{i}",
                description=f"{kind} key of {owner_id}",
                owner_id=owner_id,
                owner_kind=owner_kind,
                resource_kind=kind,
                resource_id=res_id,
                env_id=env_id,
                life=life,
            )
        )


def _clip(life: Lifetime, parent: Lifetime) -> Lifetime:
    created = max(life.created_at, parent.created_at)
    deleted = life.deleted_at
    if parent.deleted_at is not None and (deleted is None or deleted > parent.deleted_at):
        deleted = parent.deleted_at
    if deleted is not None and created >= deleted:
        created = parent.created_at
    return Lifetime(created, deleted)


def _platform(inv: Inventory, s: Scale, r: random.Random, ids: _Ids, lv: _Lives) -> None:
    envs = inv.environments
    for i in range(s.schema_registries):
        env = envs[i % len(envs)]
        cloud = r.choice(tuple(_REGIONS))
        inv.schema_registries.append(
            SchemaRegistry(
                id=ids.make("lsrc-"),
                env_id=env.id,
                display_name=f"sr-{env.display_name}",
                package=env.governance_package,
                cloud=cloud,
                region=r.choice(_REGIONS[cloud]),
                life=lv.draw(env.life, p_late=0.02, p_del=0.0),
            )
        )
    live_clusters = [c for c in inv.clusters if c.life.deleted_at is None] or inv.clusters
    for i in range(s.ksql_clusters):
        c = live_clusters[i % len(live_clusters)]
        sa = inv.service_accounts[0] if i == 0 else r.choice(inv.service_accounts)
        inv.ksql.append(
            KsqlCluster(
                id=ids.make("lksqlc-", 5),
                env_id=c.env_id,
                display_name=f"ksql-{r.choice(_WORDS)}-{i}",
                csu=r.choice((1, 2, 4, 8)),
                kafka_cluster_id=c.id,
                credential_identity=sa.id,
                life=_clip(lv.draw(c.life, p_del=0.0 if i == 0 else _P_DELETED), sa.life),
            )
        )
    for i in range(s.flink_pools):
        env = envs[i % len(envs)]
        cloud = r.choice(tuple(_REGIONS))
        inv.flink_pools.append(
            FlinkPool(
                id=ids.make("lfcp-", 5),
                env_id=env.id,
                display_name=f"pool-{r.choice(_TEAMS)}-{i}",
                cloud=cloud,
                region=r.choice(_REGIONS[cloud]),
                max_cfu=r.choice((5, 10, 20, 50)),
                life=lv.draw(env.life, p_del=0.0 if i == 0 else 0.02),
            )
        )
    for i in range(s.flink_statements if inv.flink_pools else 0):
        pool = inv.flink_pools[i % len(inv.flink_pools)]
        owner_id, _, owner_life = _owner(inv, r)
        if i < 2:
            owner_id, owner_life = inv.service_accounts[i].id, inv.service_accounts[i].life
        life = _clip(lv.draw(pool.life, p_late=0.1, p_del=0.05 if i >= 2 else 0.0), owner_life)
        phase = "RUNNING" if i < 2 or r.random() < 0.8 else r.choice(_ENDED_PHASES)
        ended = None
        if phase != "RUNNING":
            hi = life.deleted_at or lv.end
            ended = life.created_at + (hi - life.created_at) * r.uniform(0.3, 0.9)
            ended = ended.replace(microsecond=0)
        word = r.choice(_WORDS)
        inv.statements.append(
            FlinkStatement(
                name=f"{word}-enrich-{i:03d}",
                uid=str(uuid.UUID(int=r.getrandbits(128), version=4)),
                env_id=pool.env_id,
                pool_id=pool.id,
                principal=owner_id,
                statement=f"INSERT INTO {word}_enriched SELECT * FROM {word};",
                phase=phase,
                ended_at=ended,
                life=life,
            )
        )


_ENDED_PHASES = ("COMPLETED", "STOPPED", "FAILED")


def _connectors(inv: Inventory, s: Scale, r: random.Random, ids: _Ids, lv: _Lives) -> None:
    sa_keys: dict[str, list[ApiKey]] = {}
    for k in inv.api_keys:
        if k.resource_kind == "Cluster" and k.owner_kind == "ServiceAccount":
            sa_keys.setdefault(k.resource_id, []).append(k)
    for i in range(s.connectors):
        c = inv.clusters[i % len(inv.clusters)]
        custom = i == 3 or (i > 4 and r.random() < 0.1)
        keys = [k for k in sa_keys.get(c.id, []) if k.life.deleted_at is None]
        use_key = bool(keys) and (i in (1, 3) or (i > 4 and r.random() < 0.35))
        if use_key:
            key = r.choice(keys)
            mode, principal, owner, parent = "KAFKA_API_KEY", key.id, key.owner_id, key.life
        else:
            sa = r.choice(inv.service_accounts)
            mode, principal, owner, parent = "SERVICE_ACCOUNT", sa.id, sa.id, sa.life
        masked = use_key and (i == 3 or r.random() < 0.3)
        if custom:
            cls, ctype = f"custom-plugin-{short_id(r, 5)}", r.choice(("source", "sink"))
        else:
            cls, ctype = r.choice(_MANAGED_CLASSES)
        features = {"capacity"} if i == 0 or r.random() < 0.3 else set()
        if i == 1 or r.random() < 0.1:
            features.add("records")
        name = f"{r.choice(_WORDS)}-{cls.lower().replace('_', '-')}-{i}"
        inv.connectors.append(
            Connector(
                id=ids.make("lcc-"),
                name=name,
                env_id=c.env_id,
                cluster_id=c.id,
                connector_class=cls,
                type=ctype,
                custom=custom,
                auth_mode=mode,
                principal_id=principal,
                owner_id=owner,
                masked=masked,
                tasks=r.choice((1, 1, 2, 4)),
                features=frozenset(features),
                life=_clip(lv.draw(c.life), parent),
            )
        )


def _usage(inv: Inventory, s: Scale, r: random.Random, ids: _Ids) -> None:
    keys_by_cluster: dict[str, list[ApiKey]] = {}
    for k in inv.api_keys:
        if k.resource_kind == "Cluster":
            keys_by_cluster.setdefault(k.resource_id, []).append(k)
    for c in inv.clusters:
        keys = keys_by_cluster.get(c.id, [])
        n = min(len(keys), max(1, round(s.principals_per_cluster * r.uniform(0.8, 1.2))))
        sources: list[UsageSource] = []
        for k in r.sample(keys, n):
            as_key = r.random() < 0.2
            sources.append(
                UsageSource(
                    principal_id=k.id if as_key else k.owner_id,
                    owner_id=k.owner_id,
                    key_id=k.id,
                    write_mb=_heavy_tail(r),
                    read_mb=0,
                    life=k.life,
                )
            )
        if inv.pools and r.random() < 0.3:
            pool = r.choice(inv.pools)
            sources.append(UsageSource(pool.id, pool.id, None, _heavy_tail(r), 0, pool.life))
        if c is inv.clusters[0] or r.random() < 0.1:
            ghost = ids.make("sa-zz", 4)  # a principal IAM does not know
            sources.append(UsageSource(ghost, None, None, _heavy_tail(r) // 10 + 1, 0, c.life))
        with_reads = [
            UsageSource(
                u.principal_id,
                u.owner_id,
                u.key_id,
                u.write_mb,
                max(1, round(u.write_mb * r.uniform(0.5, 3.0))),
                u.life,
            )
            for u in sources
        ]
        inv.usage_sources[c.id] = tuple(sorted(with_reads, key=lambda u: u.principal_id))


def _heavy_tail(r: random.Random) -> int:
    """A mean daily write volume in MB: a few principals dominate."""
    return max(1, int(r.paretovariate(1.2) * 800))
