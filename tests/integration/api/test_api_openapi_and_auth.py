"""The generated OpenAPI document, and the optional bearer tokens."""

from __future__ import annotations

from typing import Any

import pytest
from tests.integration.api.conftest import TENANT, Api

from chargeback.errors import ConfigError
from chargeback.service.api import ENDPOINTS
from chargeback.service.api._auth import ApiTokens

OPS = "ops-token-0123456789abcdef"
ACME = "acme-token-0123456789abcdef"
OTHER = "other-token-0123456789abcdef"


class TestOpenApi:
    async def test_document_describes_every_endpoint_and_parameter(self, make_api: Any) -> None:
        """Each endpoint is a path with its params model's fields as query parameters."""
        api: Api = await make_api()
        doc = (await api.client.get("/api/v1/openapi.json")).json()
        assert doc["openapi"].startswith("3.")
        for ep in ENDPOINTS:
            op = doc["paths"]["/api/v1" + ep.path]["get"]
            names = {p["name"] for p in op["parameters"]}
            assert names == {f.alias or n for n, f in ep.params.model_fields.items()}
            ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
            assert ("text/csv" in op["responses"]["200"]["content"]) == ep.csv
        allocation = doc["paths"]["/api/v1/allocation"]["get"]
        window = next(p for p in allocation["parameters"] if p["name"] == "window")
        assert "lastmonth" in window["description"]
        flt = next(p for p in allocation["parameters"] if p["name"] == "filter")
        assert flt["schema"]["type"] == "array"
        assert flt["explode"] is True

    async def test_answers_carry_the_fields_the_document_promises(self, make_api: Any) -> None:
        """A real allocation answer has exactly the properties of its schema."""
        api: Api = await make_api()
        doc = (await api.client.get("/api/v1/openapi.json")).json()
        answer = (await api.client.get("/api/v1/allocation", params={"window": "2026-03"})).json()
        schemas = doc["components"]["schemas"]
        assert set(answer) == set(schemas["AllocationAnswer"]["properties"])
        assert set(answer["sets"][0]) == set(schemas["AllocationSetModel"]["properties"])
        entry = answer["sets"][0]["entries"][0]
        assert set(entry) == set(schemas["AllocationEntryModel"]["properties"])


class TestTokens:
    async def test_without_tokens_the_api_is_open(self, make_api: Any) -> None:
        """No token configured: no token needed."""
        api: Api = await make_api()
        assert (await api.client.get("/api/v1/runs")).status_code == 200

    async def test_a_token_is_required_when_configured(self, make_api: Any) -> None:
        """401 without or with a wrong token, 200 with a right one; /metrics needs none."""
        api: Api = await make_api(tokens=f"{OPS} {ACME}@{TENANT}")
        assert (await api.client.get("/api/v1/runs")).status_code == 401
        wrong = await api.client.get("/api/v1/runs", headers={"authorization": f"Bearer {OTHER}"})
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        assert OTHER not in wrong.text
        basic = await api.client.get("/api/v1/runs", headers={"authorization": f"Basic {OPS}"})
        assert basic.status_code == 401
        ok = await api.client.get("/api/v1/runs", headers={"authorization": f"Bearer {OPS}"})
        assert ok.status_code == 200
        assert (await api.client.get("/metrics")).status_code == 200

    async def test_a_tenant_token_reads_only_its_tenant(self, make_api: Any) -> None:
        """A token scoped to a tenant gets 403 for another, and its own by default."""
        api: Api = await make_api(tokens=f"{ACME}@{TENANT} {OTHER}@globex")
        mine = {"authorization": f"Bearer {ACME}"}
        theirs = {"authorization": f"Bearer {OTHER}"}
        own = await api.client.get("/api/v1/runs", headers=mine)
        assert own.status_code == 200
        assert own.json()["tenant"] == TENANT
        refused = await api.client.get("/api/v1/runs", params={"tenant": TENANT}, headers=theirs)
        assert refused.status_code == 403
        assert "'globex'" in refused.json()["error"]
        index = await api.client.get("/api/v1/", headers=theirs)
        assert index.json()["tenants"] == []

    @pytest.mark.parametrize(
        ("text", "words"),
        [
            ("short", "at least 16"),
            (f"{OPS}@", "followed by a tenant"),
            (f"{OPS}@acme/payments", "team attribution"),
        ],
    )
    def test_malformed_tokens_are_refused_without_echoing_them(self, text: str, words: str) -> None:
        """A bad entry is a ConfigError naming the entry's position, never its text."""
        with pytest.raises(ConfigError, match=words) as caught:
            ApiTokens.from_text(text)
        assert OPS not in str(caught.value)
        assert "short" not in str(caught.value).split(":", 1)[1]
