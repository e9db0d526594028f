"""The tenant's inventory: one crawl of the org/IAM/cluster APIs per run (reference §3).

:func:`gather_inventory` lists everything the handlers need, concurrently (the
client bounds the concurrency per host), and returns an immutable
:class:`Inventory` that :meth:`ConfluentCloudPlugin.build_shared_context` hands to
every handler. The crawl goes in three waves, each needing the one before:

1. the environments;
2. the IAM listings (service accounts, users, API keys, identity providers) and,
   per environment, its Kafka, ksqlDB, Schema Registry clusters and Flink pools;
3. per Kafka cluster its connectors, per identity provider its identity pools, and
   per (regional host, org, environment) of the Flink pools their statements.

Each API item is parsed by :mod:`chargeback.plugins.confluent_cloud._items`, so the
handlers only slice and index.

Resource types: ``environment``, ``kafka_cluster``, ``connector``, ``ksqldb_cluster``,
``schema_registry``, ``flink_compute_pool``, ``flink_statement``,
``identity_provider``. Identity types: ``service_account``, ``user``,
``identity_pool``, ``api_key`` (with ``owner_id`` and ``resource_id``), ``sentinel``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from chargeback.core.models import Identity, Resource
from chargeback.core.sources import Credentials, HttpClient
from chargeback.errors import ChargebackError
from chargeback.plugins.confluent_cloud._items import (
    CONNECTOR_CREDENTIALS_MASKED,
    CONNECTOR_OWNER_UNKNOWN,
    SENTINELS,
    connector_owner,
    field_at,
    org_id_from_crn,
    parse_api_key,
    parse_cluster,
    parse_connector,
    parse_identity,
    parse_ksql,
    parse_pool,
    parse_registry,
    parse_resource,
    parse_statement,
    text,
)
from chargeback.plugins.confluent_cloud.config import CCloudSettings

__all__ = [
    "CONNECTOR_CREDENTIALS_MASKED",
    "CONNECTOR_OWNER_UNKNOWN",
    "SENTINELS",
    "Inventory",
    "connector_owner",
    "gather_inventory",
    "org_id_from_crn",
]

_log = structlog.get_logger(__name__)

Items = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Inventory:
    """Everything listed in one crawl of a tenant."""

    environments: tuple[Resource, ...] = ()
    clusters: tuple[Resource, ...] = ()
    connectors: tuple[Resource, ...] = ()
    ksql_clusters: tuple[Resource, ...] = ()
    schema_registries: tuple[Resource, ...] = ()
    flink_pools: tuple[Resource, ...] = ()
    flink_statements: tuple[Resource, ...] = ()
    identity_providers: tuple[Resource, ...] = ()
    service_accounts: tuple[Identity, ...] = ()
    users: tuple[Identity, ...] = ()
    identity_pools: tuple[Identity, ...] = ()
    api_keys: tuple[Identity, ...] = ()
    org_id: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)


_COUNTED = (
    "environments", "clusters", "connectors", "ksql_clusters", "schema_registries",
    "flink_pools", "flink_statements", "service_accounts", "users", "api_keys",
    "identity_pools",
)  # fmt: skip


async def gather_inventory(client: HttpClient, settings: CCloudSettings) -> Inventory:
    """List the whole inventory of one tenant.

    Listings run concurrently; when some fail, the first failure is raised itself
    (not the task group's ``ExceptionGroup``), so the run's error says what failed.

    Raises:
        SourceError: a listing failed after its retries (the run fails cleanly).
    """
    try:
        inventory = await _crawl(_Lister(client, settings))
    except ExceptionGroup as group:
        leaves = _leaves(group)
        first = next((e for e in leaves if isinstance(e, ChargebackError)), None)
        if first is None:
            raise
        if len(leaves) > 1:
            _log.warning("ccloud inventory listings failed", failed=len(leaves))
        raise first from group
    counts = {name: len(getattr(inventory, name)) for name in _COUNTED}
    _log.info("ccloud inventory gathered", **counts)
    return replace(inventory, counts=counts)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


class _Lister:
    """The listings of one crawl: the client, the base URL and the page size."""

    __slots__ = ("client", "settings")

    def __init__(self, client: HttpClient, settings: CCloudSettings) -> None:
        self.client = client
        self.settings = settings

    async def listing(self, path: str, **params: str) -> Items:
        """Every item of a paginated listing under the base URL (its path as endpoint)."""
        return await self.client.list_all(
            self.settings.base_url + path,
            endpoint=path,
            params={"page_size": self.settings.http.list_page_size, **params},
        )


@dataclass(frozen=True, slots=True)
class _EnvListings:
    """The listings of one environment (wave 2)."""

    clusters: asyncio.Task[Items]
    ksql: asyncio.Task[Items]
    registries: asyncio.Task[Items]
    pools: asyncio.Task[Items]

    @classmethod
    def start(cls, tg: asyncio.TaskGroup, lister: _Lister, env: str) -> _EnvListings:
        """Start the four listings of ``env``."""
        return cls(
            tg.create_task(lister.listing("/cmk/v2/clusters", environment=env)),
            tg.create_task(lister.listing("/ksqldbcm/v2/clusters", environment=env)),
            tg.create_task(lister.listing("/srcm/v3/clusters", environment=env)),
            tg.create_task(lister.listing("/fcpm/v2/compute-pools", environment=env)),
        )


@dataclass(slots=True)
class _Clusters:
    """The parsed clusters and pools of every environment, and the org id they name."""

    kafka: list[Resource] = field(default_factory=list)
    ksql: list[Resource] = field(default_factory=list)
    registries: list[Resource] = field(default_factory=list)
    pools: list[Resource] = field(default_factory=list)
    org_id: str | None = None

    def add(self, env: str, listings: _EnvListings) -> None:
        """Parse one environment's listings; the first org id seen (in a cluster's CRN,
        else a pool's) is the tenant's."""
        for item in listings.clusters.result():
            self.org_id = self.org_id or org_id_from_crn(
                text(field_at(item, "metadata", "resource_name"))
            )
        self.kafka.extend(
            r for r in (parse_cluster(i, env) for i in listings.clusters.result()) if r
        )
        self.ksql.extend(r for r in (parse_ksql(i, env) for i in listings.ksql.result()) if r)
        self.registries.extend(
            r for r in (parse_registry(i, env) for i in listings.registries.result()) if r
        )
        for item in listings.pools.result():
            pool = parse_pool(item, env)
            if pool is not None:
                self.pools.append(pool)
                self.org_id = self.org_id or pool.attributes.get("org_id")


async def _crawl(lister: _Lister) -> Inventory:
    """The three waves of the crawl (module docstring), parsed into an :class:`Inventory`."""
    envs_raw = await lister.listing("/org/v2/environments")
    environments = [
        r
        for r in (parse_resource(e, "environment", env_id=text(e.get("id"))) for e in envs_raw)
        if r
    ]
    async with asyncio.TaskGroup() as tg:
        t_sa = tg.create_task(lister.listing("/iam/v2/service-accounts"))
        t_users = tg.create_task(lister.listing("/iam/v2/users"))
        t_keys = tg.create_task(lister.listing("/iam/v2/api-keys"))
        t_idp = tg.create_task(lister.listing("/iam/v2/identity-providers"))
        per_env = {
            e.resource_id: _EnvListings.start(tg, lister, e.resource_id) for e in environments
        }
    api_keys = [k for k in (parse_api_key(i) for i in t_keys.result()) if k]
    found = _Clusters()
    for env, listings in per_env.items():
        found.add(env, listings)
    providers = t_idp.result()
    connectors, identity_pools, statements = await _third_wave(
        lister, found, providers, {k.identity_id: k.owner_id for k in api_keys if k.owner_id}
    )
    return Inventory(
        environments=tuple(environments),
        clusters=tuple(found.kafka),
        connectors=tuple(connectors),
        ksql_clusters=tuple(found.ksql),
        schema_registries=tuple(found.registries),
        flink_pools=tuple(found.pools),
        flink_statements=tuple(statements),
        identity_providers=tuple(
            r for r in (parse_resource(p, "identity_provider", env_id=None) for p in providers) if r
        ),
        service_accounts=_identities(t_sa.result(), "service_account"),
        users=_identities(t_users.result(), "user"),
        identity_pools=tuple(identity_pools),
        api_keys=tuple(api_keys),
        org_id=found.org_id,
    )


def _identities(items: Items, identity_type: str) -> tuple[Identity, ...]:
    return tuple(i for i in (parse_identity(x, identity_type) for x in items) if i)


async def _third_wave(
    lister: _Lister, found: _Clusters, providers: Items, key_owner: Mapping[str, str]
) -> tuple[list[Resource], list[Identity], list[Resource]]:
    """The connectors, identity pools and Flink statements, parsed."""
    client = lister.client
    async with asyncio.TaskGroup() as tg:
        t_conn = [(c, tg.create_task(_connectors(lister, c))) for c in found.kafka if c.env_id]
        t_pools = [
            (p, tg.create_task(_identity_pools(lister, p["id"])))
            for p in providers if text(p.get("id"))
        ]  # fmt: skip
        t_stmts = _statement_tasks(tg, client, lister.settings, found.pools)
    connectors = [
        conn
        for cluster, task in t_conn
        for name, item in task.result().items()
        if (conn := parse_connector(name, item, cluster, key_owner)) is not None
    ]
    identity_pools = [
        ident
        for provider, task in t_pools
        for ident in (
            parse_identity(i, "identity_pool", attrs={"provider_id": text(provider.get("id"))})
            for i in task.result()
        )
        if ident
    ]
    return connectors, identity_pools, [s for task in t_stmts for s in task.result()]


async def _identity_pools(lister: _Lister, provider_id: str) -> Items:
    """List an identity provider's pools (404: the provider is gone, no pools)."""
    return await lister.client.list_all(
        f"{lister.settings.base_url}/iam/v2/identity-providers/{provider_id}/identity-pools",
        endpoint="/iam/v2/identity-providers/{id}/identity-pools",
        params={"page_size": lister.settings.http.list_page_size},
        not_found_empty=True,
    )


async def _connectors(lister: _Lister, cluster: Resource) -> dict[str, Any]:
    """List a cluster's connectors (Connect v1: a map, not paginated; 404 -> none)."""
    base = lister.settings.base_url
    body = await lister.client.get_json(
        f"{base}/connect/v1/environments/{cluster.env_id}/clusters/{cluster.resource_id}/connectors",
        endpoint="/connect/v1/environments/{env}/clusters/{cluster}/connectors",
        params={"expand": "info,status,id"},
        not_found={},
    )
    return body if isinstance(body, dict) else {}


def _statement_tasks(
    tg: asyncio.TaskGroup,
    client: HttpClient,
    settings: CCloudSettings,
    pools: Sequence[Resource],
) -> list[asyncio.Task[list[Resource]]]:
    """Start one statements listing per (regional host, org, environment) of the pools."""
    key, secret = settings.flink_credentials()
    creds = Credentials(key, secret)
    wanted: dict[tuple[str, str, str], None] = {}
    for pool in pools:
        cloud, region = pool.attributes.get("cloud"), pool.attributes.get("region")
        org = pool.attributes.get("org_id")
        if not (cloud and region and org and pool.env_id):
            _log.warning("flink pool without cloud/region/org skipped", pool=pool.resource_id)
            continue
        wanted[(settings.flink_base(cloud, region), org, pool.env_id)] = None
    return [
        tg.create_task(_statements(client, host, org, env, creds, settings.http.list_page_size))
        for host, org, env in wanted
    ]


async def _statements(  # noqa: PLR0917  (internal helper)
    client: HttpClient, host: str, org: str, env: str, creds: Credentials, page_size: int
) -> list[Resource]:
    items = await client.list_all(
        f"{host}/sql/v1/organizations/{org}/environments/{env}/statements",
        endpoint="/sql/v1/organizations/{org}/environments/{env}/statements",
        params={"page_size": page_size},
        credentials=creds,
        not_found_empty=True,
    )
    return [s for s in (parse_statement(item, env) for item in items) if s is not None]
