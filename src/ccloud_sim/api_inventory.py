"""Org, IAM, CMK, Connect, ksqlDB, Schema Registry and Flink inventory endpoints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ccloud_sim._det import fmt_ts
from ccloud_sim._http import error, json_response, list_page, sim
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
    User,
)

__all__ = ["routes"]

API = "https://api.confluent.cloud"
T = TypeVar("T")


def _meta(life: Lifetime, self_path: str, crn: str) -> dict[str, Any]:
    meta = {
        "self": f"{API}{self_path}",
        "resource_name": crn,
        "created_at": fmt_ts(life.created_at),
        "updated_at": fmt_ts(life.created_at),
    }
    if life.deleted_at is not None:
        meta["deleted_at"] = fmt_ts(life.deleted_at)
    return meta


def _listed(request: Request, items: Sequence[T]) -> list[T]:
    now = sim(request).clock.now()
    return [x for x in items if x.life.listed_at(now)]  # type: ignore[attr-defined]


def _env_param(request: Request) -> str | Response:
    env = request.query_params.get("environment")
    if not env:
        return error(400, "Missing required query parameter 'environment'", parameter="environment")
    return env


class _Render:
    """Renders inventory records into API JSON for one organization."""

    def __init__(self, org_id: str) -> None:
        self.org = org_id
        self.crn = f"crn://confluent.cloud/organization={org_id}"

    def env(self, e: Environment) -> dict[str, Any]:
        return {
            "api_version": "org/v2",
            "kind": "Environment",
            "id": e.id,
            "display_name": e.display_name,
            "metadata": _meta(
                e.life, f"/org/v2/environments/{e.id}", f"{self.crn}/environment={e.id}"
            ),
            "stream_governance_config": {"package": e.governance_package},
        }

    def env_ref(self, env_id: str) -> dict[str, Any]:
        return {
            "id": env_id,
            "related": f"{API}/org/v2/environments/{env_id}",
            "resource_name": f"{self.crn}/environment={env_id}",
        }

    def cluster(self, c: KafkaCluster) -> dict[str, Any]:
        host = f"pkc-{c.id[4:]}.{c.region}.{c.cloud.lower()}.confluent.cloud"
        config: dict[str, Any] = {"kind": c.kind}
        if c.kind == "Dedicated":
            config["cku"] = c.cku
        status: dict[str, Any] = {"phase": "PROVISIONED"}
        if c.kind == "Dedicated":
            status["cku"] = c.cku
        crn = f"{self.crn}/environment={c.env_id}/cloud-cluster={c.id}"
        return {
            "api_version": "cmk/v2",
            "kind": "Cluster",
            "id": c.id,
            "metadata": _meta(c.life, f"/cmk/v2/clusters/{c.id}", crn),
            "spec": {
                "display_name": c.display_name,
                "availability": c.availability,
                "cloud": c.cloud,
                "region": c.region,
                "config": config,
                "kafka_bootstrap_endpoint": f"SASL_SSL://{host}:9092",
                "http_endpoint": f"https://{host}:443",
                "environment": self.env_ref(c.env_id),
            },
            "status": status,
        }

    def service_account(self, s: ServiceAccount) -> dict[str, Any]:
        return {
            "api_version": "iam/v2",
            "kind": "ServiceAccount",
            "id": s.id,
            "display_name": s.display_name,
            "description": s.description,
            "metadata": _meta(
                s.life, f"/iam/v2/service-accounts/{s.id}", f"{self.crn}/service-account={s.id}"
            ),
        }

    def user(self, u: User) -> dict[str, Any]:
        return {
            "api_version": "iam/v2",
            "kind": "User",
            "id": u.id,
            "email": u.email,
            "full_name": u.full_name,
            "auth_type": u.auth_type,
            "metadata": _meta(u.life, f"/iam/v2/users/{u.id}", f"{self.crn}/user={u.id}"),
        }

    def api_key(self, k: ApiKey) -> dict[str, Any]:
        owner_path = "service-accounts" if k.owner_kind == "ServiceAccount" else "users"
        owner_crn = (
            f"{self.crn}/{'service-account' if owner_path[0] == 's' else 'user'}={k.owner_id}"
        )
        resource: dict[str, Any] = {"id": k.resource_id, "kind": k.resource_kind}
        if k.resource_kind == "Cluster":
            resource.update(
                api_version="cmk/v2",
                related=f"{API}/cmk/v2/clusters/{k.resource_id}",
                resource_name=f"{self.crn}/environment={k.env_id}/cloud-cluster="
                f"{k.resource_id}/kafka={k.resource_id}",
            )
        elif k.resource_kind == "SchemaRegistry":
            resource.update(
                api_version="srcm/v2",
                resource_name=f"{self.crn}/environment={k.env_id}/schema-registry={k.resource_id}",
            )
        elif k.resource_kind == "Region":
            resource.update(
                api_version="fcpm/v2",
                resource_name=f"{self.crn}/environment={k.env_id}/flink-region={k.resource_id}",
            )
        elif k.resource_kind == "ksqlDB":
            resource.update(
                api_version="ksqldbcm/v2",
                resource_name=f"{self.crn}/environment={k.env_id}/ksql={k.resource_id}",
            )
        else:
            resource.update(api_version="iam/v2", resource_name=self.crn)
        if k.env_id:
            resource["environment"] = k.env_id
        return {
            "api_version": "iam/v2",
            "kind": "ApiKey",
            "id": k.id,
            "metadata": _meta(k.life, f"/iam/v2/api-keys/{k.id}", f"{owner_crn}/api-key={k.id}"),
            "spec": {
                "display_name": k.display_name,
                "description": k.description,
                "owner": {
                    "id": k.owner_id,
                    "kind": k.owner_kind,
                    "api_version": "iam/v2",
                    "related": f"{API}/iam/v2/{owner_path}/{k.owner_id}",
                    "resource_name": owner_crn,
                },
                "resource": resource,
                "resources": [resource],
            },
        }

    def provider(self, p: IdentityProvider) -> dict[str, Any]:
        return {
            "api_version": "iam/v2",
            "kind": "IdentityProvider",
            "id": p.id,
            "display_name": p.display_name,
            "description": p.description,
            "issuer": p.issuer,
            "jwks_uri": p.jwks_uri,
            "identity_claim": "claims.sub",
            "state": "ENABLED",
            "metadata": _meta(
                p.life, f"/iam/v2/identity-providers/{p.id}", f"{self.crn}/identity-provider={p.id}"
            ),
        }

    def pool(self, p: IdentityPool) -> dict[str, Any]:
        crn = f"{self.crn}/identity-provider={p.provider_id}/identity-pool={p.id}"
        return {
            "api_version": "iam/v2",
            "kind": "IdentityPool",
            "id": p.id,
            "display_name": p.display_name,
            "description": p.description,
            "identity_claim": p.identity_claim,
            "filter": p.filter,
            "principal": p.id,
            "state": "ENABLED",
            "metadata": _meta(
                p.life, f"/iam/v2/identity-providers/{p.provider_id}/identity-pools/{p.id}", crn
            ),
        }

    def connector(self, c: Connector, expand: set[str]) -> dict[str, Any]:
        config = {
            "name": c.name,
            "connector.class": c.connector_class,
            "tasks.max": str(c.tasks),
            "kafka.auth.mode": c.auth_mode,
            "topics": c.topics or c.name.split("-")[0],
        }
        if c.custom:
            config["confluent.custom.plugin.id"] = f"ccp-{c.id[4:]}"
        if c.auth_mode == "SERVICE_ACCOUNT":
            config["kafka.service.account.id"] = c.principal_id
        else:
            config["kafka.api.key"] = "****************" if c.masked else c.principal_id
            config["kafka.api.secret"] = "****************"
        out: dict[str, Any] = {}
        if "id" in expand:
            out["id"] = {"id": c.id, "id_type": "ID"}
        if "info" in expand:
            out["info"] = {"name": c.name, "type": c.type, "config": config}
        if "status" in expand:
            tasks = [
                {"id": i, "state": "RUNNING", "worker_id": c.name, "msg": ""}
                for i in range(c.tasks)
            ]
            out["status"] = {
                "name": c.name,
                "type": c.type,
                "tasks": tasks,
                "connector": {"state": "RUNNING", "worker_id": c.name, "trace": ""},
            }
        return out

    def ksql(self, k: KsqlCluster) -> dict[str, Any]:
        crn = f"{self.crn}/environment={k.env_id}/ksql={k.id}"
        return {
            "api_version": "ksqldbcm/v2",
            "kind": "Cluster",
            "id": k.id,
            "metadata": _meta(k.life, f"/ksqldbcm/v2/clusters/{k.id}", crn),
            "spec": {
                "display_name": k.display_name,
                "csu": k.csu,
                "kafka_cluster": {"id": k.kafka_cluster_id, "environment": k.env_id},
                "credential_identity": {"id": k.credential_identity},
                "environment": self.env_ref(k.env_id),
                "use_detailed_processing_log": True,
            },
            "status": {
                "phase": "PROVISIONED",
                "http_endpoint": f"https://{k.id}.confluent.cloud:443",
                "is_paused": False,
                "storage": 125 * k.csu,
                "topic_prefix": f"pksqlc-{k.id[7:]}",
            },
        }

    def schema_registry(self, s: SchemaRegistry, version: str) -> dict[str, Any]:
        crn = f"{self.crn}/environment={s.env_id}/schema-registry={s.id}"
        host = f"psrc-{s.id[5:]}.{s.region}.{s.cloud.lower()}.confluent.cloud"
        spec: dict[str, Any] = {
            "display_name": s.display_name,
            "package": s.package,
            "cloud": s.cloud,
            "region": s.region,
            "http_endpoint": f"https://{host}",
            "catalog_http_endpoint": f"https://{host}",
            "private_http_endpoint": f"https://lsrc.{host}",
            "environment": self.env_ref(s.env_id),
        }
        if version == "v2":
            spec["region"] = {
                "id": f"sgreg-{s.region}",
                "related": f"{API}/srcm/v2/regions/sgreg-{s.region}",
                "resource_name": f"{self.crn}/schema-registry-region=sgreg-{s.region}",
            }
            spec["network_type"] = "PUBLIC"
        return {
            "api_version": f"srcm/{version}",
            "kind": "Cluster",
            "id": s.id,
            "metadata": _meta(s.life, f"/srcm/{version}/clusters/{s.id}", crn),
            "spec": spec,
            "status": {"phase": "PROVISIONED"},
        }

    def flink_pool(self, p: FlinkPool) -> dict[str, Any]:
        region = f"{p.cloud.lower()}.{p.region}"
        crn = f"{self.crn}/environment={p.env_id}/flink-region={region}/compute-pool={p.id}"
        return {
            "api_version": "fcpm/v2",
            "kind": "ComputePool",
            "id": p.id,
            "metadata": _meta(p.life, f"/fcpm/v2/compute-pools/{p.id}", crn),
            "spec": {
                "display_name": p.display_name,
                "cloud": p.cloud,
                "region": p.region,
                "max_cfu": p.max_cfu,
                "enable_ai": False,
                "default_pool": False,
                "environment": self.env_ref(p.env_id),
            },
            "status": {"phase": "PROVISIONED", "current_cfu": max(1, p.max_cfu // 4)},
        }

    def statement(self, s: FlinkStatement) -> dict[str, Any]:
        updated = s.ended_at or s.life.created_at
        return {
            "api_version": "sql/v1",
            "kind": "Statement",
            "name": s.name,
            "organization_id": self.org,
            "environment_id": s.env_id,
            "metadata": {
                "self": f"/sql/v1/organizations/{self.org}/environments/{s.env_id}"
                f"/statements/{s.name}",
                "uid": s.uid,
                "created_at": fmt_ts(s.life.created_at),
                "updated_at": fmt_ts(updated),
                "labels": {},
                "resource_version": "1",
            },
            "spec": {
                "statement": s.statement,
                "compute_pool_id": s.pool_id,
                "principal": s.principal,
                "stopped": s.phase == "STOPPED",
                "properties": {},
            },
            "status": {"phase": s.phase, "detail": ""},
        }


def _render(request: Request) -> _Render:
    r: _Render = request.app.state.render
    return r


def _simple(
    items: Callable[[Request], Sequence[Any]], render: str, api_version: str, kind: str
) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        fn = getattr(_render(request), render)
        return list_page(
            request,
            _listed(request, items(request)),
            fn,
            api_version=api_version,
            kind=kind,
            filters={},
        )

    return endpoint


def _per_env(
    items: Callable[[Request], Sequence[Any]],
    render: Callable[[_Render, Any], dict[str, Any]],
    api_version: str,
    kind: str,
) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        env = _env_param(request)
        if isinstance(env, Response):
            return env
        records = [x for x in _listed(request, items(request)) if x.env_id == env]
        rd = _render(request)
        return list_page(
            request,
            records,
            lambda x: render(rd, x),
            api_version=api_version,
            kind=kind,
            filters={"environment": env},
        )

    return endpoint


async def organizations(request: Request) -> Response:
    """``GET /org/v2/organizations``."""
    org = sim(request).org
    item = {
        "api_version": "org/v2",
        "kind": "Organization",
        "id": org.org_id,
        "display_name": f"sim-org-{org.seed}",
        "metadata": {
            "self": f"{API}/org/v2/organizations/{org.org_id}",
            "resource_name": _render(request).crn,
            "created_at": fmt_ts(org.inventory.environments[0].life.created_at),
        },
    }
    return list_page(
        request, [item], lambda x: x, api_version="org/v2", kind="OrganizationList", filters={}
    )


async def api_keys(request: Request) -> Response:
    """``GET /iam/v2/api-keys`` with optional ``spec.owner`` / ``spec.resource``."""
    q = request.query_params
    owner, resource = q.get("spec.owner"), q.get("spec.resource")
    keys = [
        k
        for k in _listed(request, sim(request).org.inventory.api_keys)
        if (owner is None or k.owner_id == owner)
        and (resource is None or k.resource_id == resource)
    ]
    filters = {"spec.owner": owner, "spec.resource": resource}
    return list_page(
        request,
        keys,
        _render(request).api_key,
        api_version="iam/v2",
        kind="ApiKeyList",
        filters={k: v for k, v in filters.items() if v},
    )


async def identity_pools(request: Request) -> Response:
    """``GET /iam/v2/identity-providers/{provider_id}/identity-pools``."""
    pid = request.path_params["provider_id"]
    inv = sim(request).org.inventory
    if not any(p.id == pid for p in _listed(request, inv.providers)):
        return error(404, f"identity provider {pid!r} not found")
    pools = [p for p in _listed(request, inv.pools) if p.provider_id == pid]
    return list_page(
        request,
        pools,
        _render(request).pool,
        api_version="iam/v2",
        kind="IdentityPoolList",
        filters={},
    )


async def connectors(request: Request) -> Response:
    """``GET /connect/v1/environments/{env}/clusters/{lkc}/connectors`` (not paginated)."""
    env, lkc = request.path_params["env"], request.path_params["lkc"]
    state = sim(request)
    now = state.clock.now()
    cluster = state.org.clusters.get(lkc)
    if cluster is None or cluster.env_id != env or not cluster.life.listed_at(now):
        return error(404, "resource not found", style="connect")
    items = [
        c for c in state.org.inventory.connectors if c.cluster_id == lkc and c.life.listed_at(now)
    ]
    expand = {e.strip() for e in request.query_params.get("expand", "").split(",") if e.strip()}
    if not expand:
        return json_response([c.name for c in items])
    rd = _render(request)
    return json_response({c.name: rd.connector(c, expand) for c in items})


async def statements(request: Request) -> Response:
    """``GET /sql/v1/organizations/{org}/environments/{env}/statements`` (regional host)."""
    state = sim(request)
    org_id, env = request.path_params["org"], request.path_params["env"]
    if org_id != state.org.org_id:
        return error(404, f"organization {org_id!r} not found")
    pool = request.query_params.get("spec.compute_pool_id")
    items = [
        s
        for s in _listed(request, state.org.inventory.statements)
        if s.env_id == env and (pool is None or s.pool_id == pool)
    ]
    filters = {"spec.compute_pool_id": pool} if pool else {}
    return list_page(
        request,
        items,
        _render(request).statement,
        api_version="sql/v1",
        kind="StatementList",
        filters=filters,
    )


def _inv(attr: str) -> Callable[[Request], Sequence[Any]]:
    return lambda request: getattr(sim(request).org.inventory, attr)


routes = [
    Route("/org/v2/organizations", organizations),
    Route(
        "/org/v2/environments", _simple(_inv("environments"), "env", "org/v2", "EnvironmentList")
    ),
    Route("/cmk/v2/clusters", _per_env(_inv("clusters"), _Render.cluster, "cmk/v2", "ClusterList")),
    Route(
        "/iam/v2/service-accounts",
        _simple(_inv("service_accounts"), "service_account", "iam/v2", "ServiceAccountList"),
    ),
    Route("/iam/v2/users", _simple(_inv("users"), "user", "iam/v2", "UserList")),
    Route("/iam/v2/api-keys", api_keys),
    Route(
        "/iam/v2/identity-providers",
        _simple(_inv("providers"), "provider", "iam/v2", "IdentityProviderList"),
    ),
    Route("/iam/v2/identity-providers/{provider_id}/identity-pools", identity_pools),
    Route("/connect/v1/environments/{env}/clusters/{lkc}/connectors", connectors),
    Route(
        "/ksqldbcm/v2/clusters", _per_env(_inv("ksql"), _Render.ksql, "ksqldbcm/v2", "ClusterList")
    ),
    Route(
        "/srcm/v3/clusters",
        _per_env(
            _inv("schema_registries"),
            lambda r, s: r.schema_registry(s, "v3"),
            "srcm/v3",
            "ClusterList",
        ),
    ),
    Route(
        "/srcm/v2/clusters",
        _per_env(
            _inv("schema_registries"),
            lambda r, s: r.schema_registry(s, "v2"),
            "srcm/v2",
            "ClusterList",
        ),
    ),
    Route(
        "/fcpm/v2/compute-pools",
        _per_env(_inv("flink_pools"), _Render.flink_pool, "fcpm/v2", "ComputePoolList"),
    ),
    Route("/sql/v1/organizations/{org}/environments/{env}/statements", statements),
]
