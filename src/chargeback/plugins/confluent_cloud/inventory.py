"""The tenant's inventory: one crawl of the org/IAM/cluster APIs per run (reference §3).

:func:`gather_inventory` lists everything the handlers need, concurrently (the
client bounds the concurrency per host), and returns an immutable
:class:`Inventory` that :meth:`ConfluentCloudPlugin.build_shared_context` hands to
every handler. Parsing of each API item into a
:class:`~chargeback.core.models.Resource` or :class:`~chargeback.core.models.Identity`
lives here too, so the handlers only slice and index.

Resource types: ``environment``, ``kafka_cluster``, ``connector``, ``ksqldb_cluster``,
``schema_registry``, ``flink_compute_pool``, ``flink_statement``,
``identity_provider``. Identity types: ``service_account``, ``user``,
``identity_pool``, ``api_key`` (with ``owner_id`` and ``resource_id``), ``sentinel``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from chargeback.core.models import Identity, Resource
from chargeback.core.sources import Credentials, HttpClient
from chargeback.errors import ChargebackError
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

CONNECTOR_CREDENTIALS_MASKED = "CONNECTOR_CREDENTIALS_MASKED"
"""Owner of connectors whose ``kafka.api.key`` the API returned masked (``****``)."""
CONNECTOR_OWNER_UNKNOWN = "CONNECTOR_OWNER_UNKNOWN"
"""Owner of connectors whose credentials name nobody we know."""

SENTINELS = (
    Identity(CONNECTOR_CREDENTIALS_MASKED, "sentinel", "connector credentials masked by the API"),
    Identity(CONNECTOR_OWNER_UNKNOWN, "sentinel", "connector owner unknown"),
)


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


def _ts(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)
    return obj


def _s(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def org_id_from_crn(crn: str | None) -> str | None:
    """Return the organization id of a CRN (``crn://confluent.cloud/organization=<id>/...``)."""
    if not crn:
        return None
    for part in crn.split("/"):
        if part.startswith("organization="):
            return part.split("=", 1)[1] or None
    return None


def _times(item: Mapping[str, Any]) -> tuple[dt.datetime | None, dt.datetime | None]:
    return _ts(_get(item, "metadata", "created_at")), _ts(_get(item, "metadata", "deleted_at"))


def _resource(
    item: Mapping[str, Any],
    rtype: str,
    *,
    env_id: str | None,
    parent_id: str | None = None,
    owner_id: str | None = None,
    attrs: Mapping[str, str | None] | None = None,
) -> Resource | None:
    rid = _s(item.get("id"))
    if rid is None:
        return None
    created, deleted = _times(item)
    name = _s(_get(item, "spec", "display_name")) or _s(item.get("display_name"))
    return Resource(
        rid, rtype, name, env_id, parent_id, owner_id, created, deleted,
        {k: v for k, v in (attrs or {}).items() if v is not None},
    )  # fmt: skip


def _identity(
    item: Mapping[str, Any], itype: str, *, owner_id: str | None = None,
    resource_id: str | None = None, attrs: Mapping[str, str | None] | None = None,
) -> Identity | None:  # fmt: skip
    iid = _s(item.get("id"))
    if iid is None:
        return None
    created, deleted = _times(item)
    name = (
        _s(item.get("display_name")) or _s(_get(item, "spec", "display_name"))
        or _s(item.get("full_name")) or _s(item.get("email"))
    )  # fmt: skip
    return Identity(
        iid, itype, name, owner_id, resource_id, created, deleted,
        {k: v for k, v in (attrs or {}).items() if v is not None},
    )  # fmt: skip


def connector_owner(config: Mapping[str, Any], key_owner: Mapping[str, str]) -> tuple[str, str]:
    """Return ``(owner id, auth mode)`` of a connector from its ``info.config``.

    ``SERVICE_ACCOUNT`` -> ``kafka.service.account.id``; ``KAFKA_API_KEY`` -> the key's
    owner (the key id itself when the key is not listed: resolved again later); a
    masked key -> :data:`CONNECTOR_CREDENTIALS_MASKED`; anything else ->
    :data:`CONNECTOR_OWNER_UNKNOWN`. A missing ``kafka.auth.mode`` is inferred from
    which credential keys are present.
    """
    mode = _s(config.get("kafka.auth.mode"))
    sa = _s(config.get("kafka.service.account.id"))
    key = _s(config.get("kafka.api.key"))
    if mode is None:
        mode = "SERVICE_ACCOUNT" if sa else "KAFKA_API_KEY" if key else "UNKNOWN"
    mode = mode.upper()
    if mode == "SERVICE_ACCOUNT":
        return (sa or CONNECTOR_OWNER_UNKNOWN), mode
    if mode == "KAFKA_API_KEY":
        if key is None:
            return CONNECTOR_OWNER_UNKNOWN, mode
        if set(key) <= {"*"}:
            return CONNECTOR_CREDENTIALS_MASKED, mode
        return key_owner.get(key, key), mode
    return CONNECTOR_OWNER_UNKNOWN, mode


async def gather_inventory(client: HttpClient, settings: CCloudSettings) -> Inventory:
    """List the whole inventory of one tenant.

    Listings run concurrently; when some fail, the first failure is raised itself
    (not the task group's ``ExceptionGroup``), so the run's error says what failed.

    Raises:
        SourceError: a listing failed after its retries (the run fails cleanly).
    """
    try:
        return await _crawl(client, settings)
    except ExceptionGroup as group:
        leaves = _leaves(group)
        first = next((e for e in leaves if isinstance(e, ChargebackError)), None)
        if first is None:
            raise
        if len(leaves) > 1:
            _log.warning("ccloud inventory listings failed", failed=len(leaves))
        raise first from group


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


async def _crawl(client: HttpClient, settings: CCloudSettings) -> Inventory:
    base = settings.base_url
    page = {"page_size": settings.http.list_page_size}

    async def listing(path: str, endpoint: str, **params: str) -> list[dict[str, Any]]:
        return await client.list_all(base + path, endpoint=endpoint, params={**page, **params})

    envs_raw = await listing("/org/v2/environments", "/org/v2/environments")
    environments = [
        r for r in (_resource(e, "environment", env_id=_s(e.get("id"))) for e in envs_raw) if r
    ]
    env_ids = [e.resource_id for e in environments]
    async with asyncio.TaskGroup() as tg:
        t_sa = tg.create_task(listing("/iam/v2/service-accounts", "/iam/v2/service-accounts"))
        t_users = tg.create_task(listing("/iam/v2/users", "/iam/v2/users"))
        t_keys = tg.create_task(listing("/iam/v2/api-keys", "/iam/v2/api-keys"))
        t_idp = tg.create_task(listing("/iam/v2/identity-providers", "/iam/v2/identity-providers"))
        per_env = {
            env: (
                tg.create_task(listing("/cmk/v2/clusters", "/cmk/v2/clusters", environment=env)),
                tg.create_task(
                    listing("/ksqldbcm/v2/clusters", "/ksqldbcm/v2/clusters", environment=env)
                ),
                tg.create_task(listing("/srcm/v3/clusters", "/srcm/v3/clusters", environment=env)),
                tg.create_task(
                    listing("/fcpm/v2/compute-pools", "/fcpm/v2/compute-pools", environment=env)
                ),
            )
            for env in env_ids
        }
    api_keys = [k for k in (_api_key(i) for i in t_keys.result()) if k]
    key_owner = {k.identity_id: k.owner_id for k in api_keys if k.owner_id}
    clusters: list[Resource] = []
    ksql: list[Resource] = []
    registries: list[Resource] = []
    pools: list[Resource] = []
    org_id: str | None = None
    for env, (t_cl, t_ks, t_sr, t_fp) in per_env.items():
        for item in t_cl.result():
            org_id = org_id or org_id_from_crn(_s(_get(item, "metadata", "resource_name")))
        clusters.extend(r for r in (_cluster(i, env) for i in t_cl.result()) if r)
        ksql.extend(r for r in (_ksql(i, env) for i in t_ks.result()) if r)
        registries.extend(r for r in (_registry(i, env) for i in t_sr.result()) if r)
        for item in t_fp.result():
            pool = _pool(item, env)
            if pool is not None:
                pools.append(pool)
                org_id = org_id or pool.attributes.get("org_id")
    providers_raw = t_idp.result()
    async with asyncio.TaskGroup() as tg:
        t_conn = [(c, tg.create_task(_connectors(client, base, c))) for c in clusters if c.env_id]
        t_pools = [
            (p, tg.create_task(
                client.list_all(
                    f"{base}/iam/v2/identity-providers/{p['id']}/identity-pools",
                    endpoint="/iam/v2/identity-providers/{id}/identity-pools",
                    params=page, not_found_empty=True,
                )
            ))
            for p in providers_raw if _s(p.get("id"))
        ]  # fmt: skip
        t_stmts = _statement_tasks(tg, client, settings, pools)
    connectors: list[Resource] = []
    for cluster, task in t_conn:
        for name, item in task.result().items():
            conn = _connector(name, item, cluster, key_owner)
            if conn is not None:
                connectors.append(conn)
    identity_pools = [
        ident
        for provider, task in t_pools
        for ident in (
            _identity(i, "identity_pool", attrs={"provider_id": _s(provider.get("id"))})
            for i in task.result()
        )
        if ident
    ]
    statements = [s for task in t_stmts for s in task.result()]
    inv = Inventory(
        environments=tuple(environments),
        clusters=tuple(clusters),
        connectors=tuple(connectors),
        ksql_clusters=tuple(ksql),
        schema_registries=tuple(registries),
        flink_pools=tuple(pools),
        flink_statements=tuple(statements),
        identity_providers=tuple(
            r for r in (_resource(p, "identity_provider", env_id=None) for p in providers_raw) if r
        ),
        service_accounts=tuple(
            i for i in (_identity(x, "service_account") for x in t_sa.result()) if i
        ),
        users=tuple(i for i in (_identity(x, "user") for x in t_users.result()) if i),
        identity_pools=tuple(identity_pools),
        api_keys=tuple(api_keys),
        org_id=org_id,
    )
    counts = {
        name: len(getattr(inv, name))
        for name in (
            "environments", "clusters", "connectors", "ksql_clusters", "schema_registries",
            "flink_pools", "flink_statements", "service_accounts", "users", "api_keys",
            "identity_pools",
        )
    }  # fmt: skip
    _log.info("ccloud inventory gathered", **counts)
    return replace(inv, counts=counts)


def _api_key(item: Mapping[str, Any]) -> Identity | None:
    owner = _s(_get(item, "spec", "owner", "id"))
    res = _get(item, "spec", "resource")
    res_id = _s(_get(res, "id"))
    env = _get(res, "environment")
    env_id = _s(env) if isinstance(env, str) else _s(_get(env, "id"))
    return _identity(
        item, "api_key", owner_id=owner, resource_id=res_id,
        attrs={"resource_kind": _s(_get(res, "kind")), "env_id": env_id},
    )  # fmt: skip


def _env_of(item: Mapping[str, Any], default: str) -> str:
    return _s(_get(item, "spec", "environment", "id")) or default


def _cluster(item: Mapping[str, Any], env: str) -> Resource | None:
    spec = item.get("spec") or {}
    return _resource(
        item, "kafka_cluster", env_id=_env_of(item, env),
        attrs={
            "cloud": _s(_get(spec, "cloud")), "region": _s(_get(spec, "region")),
            "kind": _s(_get(spec, "config", "kind")),
        },
    )  # fmt: skip


def _ksql(item: Mapping[str, Any], env: str) -> Resource | None:
    return _resource(
        item, "ksqldb_cluster", env_id=_env_of(item, env),
        parent_id=_s(_get(item, "spec", "kafka_cluster", "id")),
        owner_id=_s(_get(item, "spec", "credential_identity", "id")),
    )  # fmt: skip


def _registry(item: Mapping[str, Any], env: str) -> Resource | None:
    return _resource(
        item, "schema_registry", env_id=_env_of(item, env),
        attrs={"package": _s(_get(item, "spec", "package"))},
    )  # fmt: skip


def _pool(item: Mapping[str, Any], env: str) -> Resource | None:
    spec = item.get("spec") or {}
    return _resource(
        item, "flink_compute_pool", env_id=_env_of(item, env),
        attrs={
            "cloud": _s(_get(spec, "cloud")), "region": _s(_get(spec, "region")),
            "org_id": org_id_from_crn(_s(_get(item, "metadata", "resource_name"))),
        },
    )  # fmt: skip


def _connector(
    name: str, item: Any, cluster: Resource, key_owner: Mapping[str, str]
) -> Resource | None:
    if not isinstance(item, dict):
        return None
    cid = _s(_get(item, "id", "id"))
    if cid is None:
        return None
    config = _get(item, "info", "config")
    config = config if isinstance(config, dict) else {}
    owner, mode = connector_owner(config, key_owner)
    key = _s(config.get("kafka.api.key"))
    return Resource(
        cid, "connector", name, cluster.env_id, cluster.resource_id, owner,
        attributes={
            k: v for k, v in {
                "auth_mode": mode, "kafka_api_key": key if key and set(key) - {"*"} else None,
                "connector_class": _s(config.get("connector.class")),
                "state": _s(_get(item, "status", "connector", "state")),
            }.items() if v is not None
        },
    )  # fmt: skip


async def _connectors(client: HttpClient, base: str, cluster: Resource) -> dict[str, Any]:
    """List a cluster's connectors (Connect v1: a map, not paginated; 404 -> none)."""
    body = await client.get_json(
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
    pools: list[Resource],
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
    out: list[Resource] = []
    for item in items:
        name = _s(item.get("name"))
        pool = _s(_get(item, "spec", "compute_pool_id"))
        if name is None or pool is None:
            continue
        created, deleted = _times(item)
        out.append(
            Resource(
                f"{env}/{name}", "flink_statement", name, env, pool,
                _s(_get(item, "spec", "principal")), created, deleted,
                {"statement_name": name, "phase": _s(_get(item, "status", "phase")) or ""},
            )
        )  # fmt: skip
    return out
