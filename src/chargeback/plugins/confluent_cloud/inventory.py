"""The tenant's inventory: one crawl of the org/IAM/cluster APIs per run (reference §3).

:func:`gather_inventory` lists everything the handlers need, concurrently (the
client bounds the concurrency per host), and returns an immutable
:class:`Inventory` that :meth:`ConfluentCloudPlugin.build_shared_context` hands to
every handler. After the environments, everything is listed concurrently, each
listing as soon as what it needs is known:

- the IAM listings: service accounts, users, API keys, and the identity providers,
  each then with its identity pools;
- per environment its Kafka clusters (each then with its connectors), ksqlDB and
  Schema Registry clusters and Flink pools; once every environment's pools are
  known, the statements per (regional host, org, environment) of the pools.

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
    """What one environment lists: its clusters (each Kafka cluster with its
    connectors, listed as soon as the clusters are known) and compute pools."""

    clusters: Items
    connectors: list[tuple[Resource, dict[str, Any]]]
    ksql: Items
    registries: Items
    pools: Items


async def _environment(lister: _Lister, env: str) -> _EnvListings:
    """List one environment, and the connectors of each of its Kafka clusters."""

    async def kafka() -> tuple[Items, list[tuple[Resource, dict[str, Any]]]]:
        items = await lister.listing("/cmk/v2/clusters", environment=env)
        clusters = [c for c in (parse_cluster(i, env) for i in items) if c and c.env_id]
        found = await asyncio.gather(*(_connectors(lister, c) for c in clusters))
        return items, list(zip(clusters, found, strict=True))

    async with asyncio.TaskGroup() as tg:
        t_kafka = tg.create_task(kafka())
        t_ksql = tg.create_task(lister.listing("/ksqldbcm/v2/clusters", environment=env))
        t_sr = tg.create_task(lister.listing("/srcm/v3/clusters", environment=env))
        t_pools = tg.create_task(lister.listing("/fcpm/v2/compute-pools", environment=env))
    clusters, connectors = t_kafka.result()
    return _EnvListings(clusters, connectors, t_ksql.result(), t_sr.result(), t_pools.result())


@dataclass(slots=True)
class _Clusters:
    """The parsed clusters and pools of every environment, the org id they name, the
    raw connectors of each Kafka cluster and the statements of the pools."""

    kafka: list[Resource] = field(default_factory=list)
    ksql: list[Resource] = field(default_factory=list)
    registries: list[Resource] = field(default_factory=list)
    pools: list[Resource] = field(default_factory=list)
    connectors: list[tuple[Resource, dict[str, Any]]] = field(default_factory=list)
    statements: list[Resource] = field(default_factory=list)
    org_id: str | None = None

    def add(self, env: str, listings: _EnvListings) -> None:
        """Parse one environment's listings; the first org id seen (in a cluster's CRN,
        else a pool's) is the tenant's."""
        for item in listings.clusters:
            self.org_id = self.org_id or org_id_from_crn(
                text(field_at(item, "metadata", "resource_name"))
            )
        self.kafka.extend(r for r in (parse_cluster(i, env) for i in listings.clusters) if r)
        self.connectors.extend(listings.connectors)
        self.ksql.extend(r for r in (parse_ksql(i, env) for i in listings.ksql) if r)
        self.registries.extend(
            r for r in (parse_registry(i, env) for i in listings.registries) if r
        )
        for item in listings.pools:
            pool = parse_pool(item, env)
            if pool is not None:
                self.pools.append(pool)
                self.org_id = self.org_id or pool.attributes.get("org_id")


async def _clusters(lister: _Lister, environments: Sequence[Resource]) -> _Clusters:
    """Every environment's listings, then the statements of all their Flink pools."""
    async with asyncio.TaskGroup() as tg:
        per_env = {e.resource_id: tg.create_task(_environment(lister, e.resource_id))
                   for e in environments}  # fmt: skip
    found = _Clusters()
    for env, task in per_env.items():
        found.add(env, task.result())
    async with asyncio.TaskGroup() as tg:
        t_stmts = _statement_tasks(tg, lister.client, lister.settings, found.pools)
    found.statements = [s for task in t_stmts for s in task.result()]
    return found


async def _providers(lister: _Lister) -> list[tuple[dict[str, Any], Items]]:
    """The identity providers, each with its identity pools."""
    providers = await lister.listing("/iam/v2/identity-providers")

    async def pools_of(provider: dict[str, Any]) -> Items:
        pid = text(provider.get("id"))
        return [] if pid is None else await _identity_pools(lister, pid)

    pools = await asyncio.gather(*(pools_of(p) for p in providers))
    return list(zip(providers, pools, strict=True))


async def _crawl(lister: _Lister) -> Inventory:
    """The crawl (module docstring), parsed into an :class:`Inventory`.

    Every listing starts as soon as what it needs is known: the connectors of a
    cluster once its environment's clusters are listed, not after the (long,
    sequential) API key pages; only parsing a connector's owner waits for the keys.
    """
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
        t_idp = tg.create_task(_providers(lister))
        t_found = tg.create_task(_clusters(lister, environments))
    api_keys = [k for k in (parse_api_key(i) for i in t_keys.result()) if k]
    key_owner = {k.identity_id: k.owner_id for k in api_keys if k.owner_id}
    found, providers = t_found.result(), t_idp.result()
    connectors = [
        conn
        for cluster, listed in found.connectors
        for name, item in listed.items()
        if (conn := parse_connector(name, item, cluster, key_owner)) is not None
    ]
    identity_pools = [
        ident
        for provider, items in providers
        for ident in (
            parse_identity(i, "identity_pool", attrs={"provider_id": text(provider.get("id"))})
            for i in items
        )
        if ident
    ]
    return Inventory(
        environments=tuple(environments),
        clusters=tuple(found.kafka),
        connectors=tuple(connectors),
        ksql_clusters=tuple(found.ksql),
        schema_registries=tuple(found.registries),
        flink_pools=tuple(found.pools),
        flink_statements=tuple(found.statements),
        identity_providers=tuple(
            r for p, _ in providers if (r := parse_resource(p, "identity_provider", env_id=None))
        ),
        service_accounts=_identities(t_sa.result(), "service_account"),
        users=_identities(t_users.result(), "user"),
        identity_pools=tuple(identity_pools),
        api_keys=tuple(api_keys),
        org_id=found.org_id,
    )


def _identities(items: Items, identity_type: str) -> tuple[Identity, ...]:
    return tuple(i for i in (parse_identity(x, identity_type) for x in items) if i)


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
