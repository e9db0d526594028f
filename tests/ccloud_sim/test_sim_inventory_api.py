# mypy: allow-untyped-defs
"""Org, IAM, CMK, Connect, ksqlDB, SR and Flink inventory endpoints."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

LISTS = [
    ("/org/v2/organizations", "org/v2", "OrganizationList"),
    ("/org/v2/environments", "org/v2", "EnvironmentList"),
    ("/iam/v2/service-accounts", "iam/v2", "ServiceAccountList"),
    ("/iam/v2/users", "iam/v2", "UserList"),
    ("/iam/v2/api-keys", "iam/v2", "ApiKeyList"),
    ("/iam/v2/identity-providers", "iam/v2", "IdentityProviderList"),
]
PHASES = {"PENDING", "RUNNING", "COMPLETED", "DELETING", "FAILING", "FAILED", "STOPPING"}
PHASES |= {"STOPPED", "DEGRADED"}
PER_ENV = [
    ("/cmk/v2/clusters", "cmk/v2"),
    ("/ksqldbcm/v2/clusters", "ksqldbcm/v2"),
    ("/srcm/v3/clusters", "srcm/v3"),
    ("/srcm/v2/clusters", "srcm/v2"),
    ("/fcpm/v2/compute-pools", "fcpm/v2"),
]


async def _envs(client: httpx.AsyncClient, get_all: Any) -> list[str]:
    return [e["id"] for e in await get_all(client, "/org/v2/environments")]


class TestLists:
    @pytest.mark.parametrize(("path", "api_version", "kind"), LISTS)
    async def test_envelope(self, client, path, api_version, kind):
        """Each list has the §1.3 envelope with api_version, kind, metadata and data."""
        r = await client.get(path)
        assert r.status_code == 200
        body = r.json()
        assert body["api_version"] == api_version
        assert body["kind"] == kind
        assert body["metadata"]["first"].startswith("http://sim/")
        for item in body["data"]:
            assert item["id"]
            assert "created_at" in item["metadata"]

    async def test_page_size_limits(self, client):
        """page_size 100 is accepted, 101 is rejected with 400, default is 10."""
        assert (await client.get("/iam/v2/api-keys", params={"page_size": 100})).status_code == 200
        r = await client.get("/iam/v2/api-keys", params={"page_size": 101})
        assert r.status_code == 400
        assert r.json()["errors"][0]["status"] == "400"
        assert len((await client.get("/iam/v2/service-accounts")).json()["data"]) == 10

    async def test_both_pagination_styles(self, client, get_all, get_all_resend):
        """Following next and re-sending params + token list the same API keys."""
        a = await get_all(client, "/iam/v2/api-keys", page_size=7)
        b = await get_all_resend(client, "/iam/v2/api-keys", page_size=7)
        assert a == b
        assert len({k["id"] for k in a}) == len(a)

    async def test_deleted_objects_not_listed(self, client, org, get_all, now):
        """Objects deleted before the clock's now are missing from the lists."""
        listed = {k["id"] for k in await get_all(client, "/iam/v2/api-keys", page_size=100)}
        for k in org.inventory.api_keys:
            assert (k.id in listed) == k.life.listed_at(now)

    async def test_api_key_owner_and_resource(self, client, get_all):
        """API keys carry owner and resource references of the documented kinds."""
        keys = await get_all(client, "/iam/v2/api-keys", page_size=100)
        kinds = {k["spec"]["resource"]["kind"] for k in keys}
        assert "Cluster" in kinds
        for k in keys:
            assert k["spec"]["owner"]["kind"] in ("ServiceAccount", "User")
            assert k["spec"]["owner"]["id"].startswith(("sa-", "u-"))

    async def test_api_key_filter_by_owner(self, client, get_all):
        """spec.owner filters the keys."""
        keys = await get_all(client, "/iam/v2/api-keys", page_size=100)
        owner = keys[0]["spec"]["owner"]["id"]
        mine = await get_all(client, "/iam/v2/api-keys", **{"spec.owner": owner})
        assert mine
        assert all(k["spec"]["owner"]["id"] == owner for k in mine)

    async def test_identity_pools(self, client):
        """Identity pools of a provider are listed; an unknown provider is 404."""
        providers = (await client.get("/iam/v2/identity-providers")).json()["data"]
        r = await client.get(f"/iam/v2/identity-providers/{providers[0]['id']}/identity-pools")
        assert r.status_code == 200
        assert r.json()["data"]
        assert (
            await client.get("/iam/v2/identity-providers/op-x/identity-pools")
        ).status_code == 404


class TestPerEnvironment:
    @pytest.mark.parametrize(("path", "api_version"), PER_ENV)
    async def test_environment_required(self, client, path, api_version):
        """Without environment the endpoint answers 400."""
        r = await client.get(path)
        assert r.status_code == 400
        assert r.json()["errors"][0]["source"]["parameter"] == "environment"

    @pytest.mark.parametrize(("path", "api_version"), PER_ENV)
    async def test_lists_per_env(self, client, get_all, path, api_version):
        """Per-environment lists carry their api_version and the env reference."""
        seen = 0
        for env in await _envs(client, get_all):
            for item in await get_all(client, path, environment=env):
                assert item["api_version"] == api_version
                assert item["spec"]["environment"]["id"] == env
                seen += 1
        assert seen

    async def test_cluster_shape(self, client, get_all):
        """Kafka clusters have spec.config.kind and Dedicated ones a cku."""
        clusters = []
        for env in await _envs(client, get_all):
            clusters += await get_all(client, "/cmk/v2/clusters", environment=env)
        kinds = {c["spec"]["config"]["kind"] for c in clusters}
        assert "Dedicated" in kinds
        for c in clusters:
            assert c["id"].startswith("lkc-")
            assert c["status"]["phase"] == "PROVISIONED"
            if c["spec"]["config"]["kind"] == "Dedicated":
                assert c["spec"]["config"]["cku"] >= 1


class TestConnectors:
    async def test_expanded_map_with_both_auth_modes(self, client, org):
        """Connectors come as a name-keyed map with both auth modes and a masked key."""
        configs = []
        for c in org.inventory.clusters:
            r = await client.get(
                f"/connect/v1/environments/{c.env_id}/clusters/{c.id}/connectors",
                params={"expand": "info,status,id"},
            )
            if r.status_code == 404:
                continue
            for name, item in r.json().items():
                assert item["info"]["name"] == name
                assert item["id"]["id"].startswith("lcc-")
                assert item["id"]["id_type"] == "ID"
                assert item["status"]["connector"]["state"] == "RUNNING"
                configs.append(item["info"]["config"])
        modes = {c["kafka.auth.mode"] for c in configs}
        assert modes == {"SERVICE_ACCOUNT", "KAFKA_API_KEY"}
        assert any(set(c.get("kafka.api.key", "x")) == {"*"} for c in configs)
        assert any(c.get("kafka.service.account.id", "").startswith("sa-") for c in configs)

    async def test_without_expand_names(self, client, org):
        """Without expand the endpoint returns a JSON array of names."""
        c = org.inventory.clusters[0]
        r = await client.get(f"/connect/v1/environments/{c.env_id}/clusters/{c.id}/connectors")
        assert isinstance(r.json(), list)
        assert all(isinstance(n, str) for n in r.json())

    async def test_deleted_cluster_404(self, client, org):
        """A deleted cluster answers 404 in the Connect error format."""
        c = next(c for c in org.inventory.clusters if c.life.deleted_at is not None)
        r = await client.get(f"/connect/v1/environments/{c.env_id}/clusters/{c.id}/connectors")
        assert r.status_code == 404
        assert r.json() == {"error": {"code": 404, "message": "resource not found"}}


class TestFlinkStatements:
    async def test_statements_regional_path(self, client, org, get_all):
        """Statements list under the org/env path with principal and compute pool."""
        pool = org.inventory.flink_pools[0]
        path = f"/sql/v1/organizations/{org.org_id}/environments/{pool.env_id}/statements"
        items = await get_all(client, path)
        assert items
        for s in items:
            assert s["kind"] == "Statement"
            assert s["organization_id"] == org.org_id
            assert s["spec"]["principal"].startswith(("sa-", "u-"))
            assert s["status"]["phase"] in PHASES
        filtered = await get_all(client, path, **{"spec.compute_pool_id": pool.id})
        assert all(s["spec"]["compute_pool_id"] == pool.id for s in filtered)

    async def test_pool_crn_has_org(self, client, org):
        """The compute pool CRN names the organization (clients build the statements URL)."""
        pool = org.inventory.flink_pools[0]
        r = await client.get("/fcpm/v2/compute-pools", params={"environment": pool.env_id})
        crn = r.json()["data"][0]["metadata"]["resource_name"]
        assert f"organization={org.org_id}" in crn
        assert f"compute-pool={pool.id}" in crn
