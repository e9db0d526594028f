# mypy: allow-untyped-defs
"""Auth, rate limits, switchable faults, control endpoints, stats and determinism."""

from __future__ import annotations

import json

import httpx
import pytest

from ccloud_sim import Faults, RateLimits, SimulatedDisconnect, create_app

PARAMS = {"start_date": "2026-02-01", "end_date": "2026-03-01", "page_size": 50}
COSTS = "/billing/v1/costs"


class TestAuth:
    async def test_management_401(self, app, make_client):
        """A wrong secret gets 401, WWW-Authenticate and the errors[] envelope."""
        async with make_client(app, auth=("SIMKEY", "wrong")) as c:
            r = await c.get("/org/v2/environments")
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith('Basic error="invalid_key"')
        err = r.json()["errors"][0]
        assert err["status"] == "401"
        assert {"id", "code", "title", "detail"} <= set(err)

    async def test_missing_auth_401(self, app, make_client):
        """No Authorization header at all is 401 too."""
        async with make_client(app, auth=None) as c:
            assert (await c.get(COSTS, params=PARAMS)).status_code == 401

    async def test_connect_401_format(self, app, make_client, org):
        """Connect answers 401 in its own {"error": {...}} format."""
        cl = org.inventory.clusters[0]
        async with make_client(app, auth=("nope", "nope")) as c:
            r = await c.get(f"/connect/v1/environments/{cl.env_id}/clusters/{cl.id}/connectors")
        assert r.status_code == 401
        assert r.json() == {"error": {"code": 401, "message": "Unauthorized"}}

    async def test_metrics_401_detail(self, app, make_client):
        """The Metrics API says "Invalid credentials"."""
        async with make_client(app, auth=("nope", "nope")) as c:
            r = await c.post("/v2/metrics/cloud/query", json={})
        assert r.status_code == 401
        assert r.json()["errors"][0]["detail"] == "Invalid credentials"

    async def test_custom_credentials(self, org, clock, make_client):
        """create_app(credentials=...) replaces the default key."""
        app = create_app(org, clock=clock, credentials={"K": "S"})
        async with make_client(app, auth=("K", "S")) as c:
            assert (await c.get("/org/v2/environments")).status_code == 200
        async with make_client(app) as c:
            assert (await c.get("/org/v2/environments")).status_code == 401


class TestRateLimits:
    async def test_management_limit(self, org, clock, make_client):
        """Past the management limit requests get 429 with Retry-After and X-RateLimit-*."""
        app = create_app(org, clock=clock, rate_limits=RateLimits(management=3))
        async with make_client(app) as c:
            ok = [await c.get("/org/v2/environments") for _ in range(3)]
            r = await c.get("/iam/v2/users")
            m = await c.post("/v2/metrics/cloud/query", json={})
        assert all(x.status_code == 200 for x in ok)
        assert ok[0].headers["X-RateLimit-Limit"] == "3"
        assert ok[2].headers["X-RateLimit-Remaining"] == "0"
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert "X-RateLimit-Reset" in r.headers
        assert m.status_code == 400  # telemetry has its own (unlimited) budget

    async def test_telemetry_limit_headers(self, org, clock, make_client):
        """Telemetry uses rateLimit-* headers."""
        app = create_app(org, clock=clock, rate_limits=RateLimits(telemetry=1))
        async with make_client(app) as c:
            await c.post("/v2/metrics/cloud/query", json={})
            r = await c.post("/v2/metrics/cloud/query", json={})
        assert r.status_code == 429
        assert "rateLimit-reset" in r.headers
        assert r.json()["errors"][0]["status"] == "429"


class TestFaults:
    async def test_429_fault(self, app, client):
        """rate_429=1 answers 429 with Retry-After from the switch."""
        app.state.faults.update({"rate_429": 1.0, "retry_after": 0})
        r = await client.get(COSTS, params=PARAMS)
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "0"
        assert app.state.stats.faults["429"] == 1

    @pytest.mark.parametrize("status", [500, 503])
    async def test_5xx_faults(self, app, client, status):
        """rate_500 / rate_503 answer with the errors[] envelope."""
        setattr(app.state.faults, f"rate_{status}", 1.0)
        r = await client.get("/iam/v2/users")
        assert r.status_code == status
        assert r.json()["errors"][0]["status"] == str(status)

    async def test_outage(self, app, client):
        """outage=True makes every request 503, even with good credentials."""
        app.state.faults.outage = True
        assert (await client.get("/org/v2/environments")).status_code == 503
        assert (await client.post("/v2/metrics/cloud/query", json={})).status_code == 503
        app.state.faults.outage = False
        assert (await client.get("/org/v2/environments")).status_code == 200

    async def test_drop_raises_transport_error(self, app, client):
        """A dropped connection surfaces as an httpx transport error in-process."""
        app.state.faults.rate_drop = 1.0
        with pytest.raises(httpx.TransportError):
            await client.get("/iam/v2/users")
        with pytest.raises(SimulatedDisconnect):
            await client.get("/iam/v2/users")

    async def test_slow(self, app, client):
        """rate_slow delays responses (counted in stats) but still answers."""
        app.state.faults.update({"rate_slow": 1.0, "slow_seconds": 0.01})
        assert (await client.get("/iam/v2/users")).status_code == 200
        assert app.state.stats.faults["slow"] == 1

    async def test_truncated_pages_still_complete(self, app, client, get_all):
        """Truncated pages are shorter than asked, yet paging still yields every row."""
        expected = await get_all(client, COSTS, **PARAMS)
        app.state.faults.rate_truncate = 1.0
        r = await client.get(COSTS, params=PARAMS)
        assert len(r.json()["data"]) < 50
        assert await get_all(client, COSTS, **PARAMS) == expected
        keys = await get_all(client, "/iam/v2/api-keys", page_size=10)
        app.state.faults.rate_truncate = 0.0
        assert keys == await get_all(client, "/iam/v2/api-keys", page_size=10)

    async def test_cut_body(self, app, client):
        """rate_cut_body sends a 200 whose JSON is cut off."""
        app.state.faults.rate_cut_body = 1.0
        r = await client.get(COSTS, params=PARAMS)
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.text)

    async def test_paths_filter(self, app, client):
        """Faults can be limited to path prefixes."""
        app.state.faults.update({"rate_500": 1.0, "paths": ["/billing"]})
        assert (await client.get("/iam/v2/users")).status_code == 200
        assert (await client.get(COSTS, params=PARAMS)).status_code == 500

    async def test_faults_deterministic(self, org, clock, make_client):
        """The same fault seed gives the same sequence of statuses."""

        async def statuses() -> list[int]:
            app = create_app(org, clock=clock, faults=Faults.uniform(0.5, seed=4))
            app.state.faults.rate_drop = 0.0
            async with make_client(app) as c:
                return [(await c.get("/iam/v2/users")).status_code for _ in range(30)]

        a = await statuses()
        assert a == await statuses()
        assert len(set(a)) > 1

    async def test_control_endpoint(self, app, client):
        """POST /_sim/faults switches faults at runtime; unknown names are 400."""
        r = await client.post("/_sim/faults", json={"rate_503": 1.0})
        assert r.json()["rate_503"] == 1.0
        assert (await client.get("/iam/v2/users")).status_code == 503
        assert (await client.post("/_sim/faults", json={"bogus": 1})).status_code == 400
        await client.post("/_sim/faults", json={"rate_503": 0.0})
        assert (await client.get("/iam/v2/users")).status_code == 200


class TestStatsAndClock:
    async def test_request_counter_per_endpoint(self, app, client, get_all):
        """Stats count requests per route template and status."""
        await get_all(client, "/iam/v2/api-keys", page_size=5)
        await client.get("/org/v2/environments")
        stats = app.state.stats
        assert stats.requests["GET /iam/v2/api-keys"] >= 2
        assert stats.requests["GET /org/v2/environments"] == 1
        assert stats.statuses[("GET /org/v2/environments", 200)] == 1
        body = (await client.get("/_sim/stats")).json()
        assert body["requests"]["GET /org/v2/environments"] == 1
        await client.post("/_sim/stats/reset")
        assert not app.state.stats.requests

    async def test_clock_endpoint(self, client):
        """POST /_sim/clock freezes the sim clock at the given instant."""
        r = await client.post("/_sim/clock", json={"now": "2026-03-20T00:00:00Z"})
        assert r.json() == {"now": "2026-03-20T00:00:00+00:00", "frozen": True}


class TestDeterminism:
    async def test_same_seed_same_bytes(self, clock, make_client, org_for):
        """Two apps over the same seed serve byte-identical responses."""
        bodies = []
        for _ in range(2):
            app = create_app(seed=11, scale="tiny", clock=clock)
            async with make_client(app) as c:
                parts = [(await c.get(COSTS, params=PARAMS)).content]
                parts.append((await c.get("/iam/v2/api-keys", params={"page_size": 100})).content)
                env = (await c.get("/org/v2/environments")).json()["data"][0]["id"]
                parts.append((await c.get("/cmk/v2/clusters", params={"environment": env})).content)
                bodies.append(parts)
        assert bodies[0] == bodies[1]
