"""The tenant HTTP client: retries, rate-limit headers, pagination, telemetry, secrets."""

from __future__ import annotations

import asyncio
import gc
import json
from collections import Counter
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from chargeback.core.sources import (
    Credentials,
    HttpClient,
    HttpSettings,
    RateLimit,
    SharedRatePool,
    retry_after_seconds,
)
from chargeback.core.telemetry import set_telemetry
from chargeback.errors import AuthenticationError, SourceError

SECRET = "s3cr3t-do-not-leak"


class RecordingTelemetry:
    """Telemetry that keeps every report."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        self.retries: list[tuple[str, str]] = []

    def api_request(self, host: str, endpoint: str, status: str, seconds: float) -> None:
        self.requests.append((host, endpoint, status))

    def api_retry(self, host: str, reason: str) -> None:
        self.retries.append((host, reason))


class FakeAPI:
    """A stateful fake server: a scripted list of responses per path, then 200s."""

    def __init__(self, script: dict[str, list[Any]] | None = None) -> None:
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        steps = self.script.get(request.url.path)
        step = steps.pop(0) if steps else {"data": [], "metadata": {}}
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return httpx.Response(200, json=step)


def make_client(api: FakeAPI, sleeps: list[float], **http: Any) -> HttpClient:
    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    settings = HttpSettings(requests_per_second=None, **http)
    return HttpClient(
        Credentials("KEY", SecretStr(SECRET)),
        settings,
        transport=httpx.MockTransport(api),
        sleep=fake_sleep,
        rng=lambda: 0.5,
    )


@pytest.fixture
def telemetry() -> RecordingTelemetry:
    rec = RecordingTelemetry()
    set_telemetry(rec)
    return rec


class TestRetries:
    async def test_429_waits_what_retry_after_asks(self, telemetry: RecordingTelemetry) -> None:
        """A 429 with Retry-After is retried after (about) the asked number of seconds."""
        api = FakeAPI({"/x": [httpx.Response(429, headers={"Retry-After": "7"}), {"ok": 1}]})
        sleeps: list[float] = []
        client = make_client(api, sleeps)
        assert await client.get_json("http://h/x", endpoint="/x") == {"ok": 1}
        assert len(sleeps) == 1
        assert 7 <= sleeps[0] < 8
        assert telemetry.retries == [("h", "429")]
        assert [r[2] for r in telemetry.requests] == ["429", "200"]

    def test_rate_limit_reset_headers_are_relative_seconds(self) -> None:
        """X-RateLimit-Reset and rateLimit-reset are read as relative seconds."""
        assert retry_after_seconds(httpx.Headers({"X-RateLimit-Reset": "12"})) == 12
        assert retry_after_seconds(httpx.Headers({"rateLimit-reset": "3"})) == 3
        assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"})) is None

    async def test_5xx_timeouts_drops_and_bad_json_are_retried(
        self, telemetry: RecordingTelemetry
    ) -> None:
        """Server errors, timeouts, dropped connections and truncated bodies are all retried."""
        api = FakeAPI(
            {
                "/x": [
                    httpx.Response(503),
                    httpx.ReadTimeout("slow"),
                    httpx.RemoteProtocolError("peer closed"),
                    httpx.Response(200, content=b'{"data":['),
                    {"ok": 2},
                ]
            }
        )
        sleeps: list[float] = []
        client = make_client(api, sleeps)
        assert await client.get_json("http://h/x", endpoint="/x") == {"ok": 2}
        assert [r for _, r in telemetry.retries] == ["503", "timeout", "connection", "invalid_json"]
        assert sleeps == sorted(sleeps)  # exponential backoff with a fixed jitter draw

    async def test_exhausted_retries_raise_source_error_without_secret(self) -> None:
        """After the retry budget a SourceError names URL and status but never the secret."""
        api = FakeAPI({"/x": [httpx.Response(500)] * 10})
        client = make_client(api, [], max_retries=2)
        with pytest.raises(SourceError) as info:
            await client.get_json("http://h/x", endpoint="/x")
        assert len(api.calls) == 3
        assert info.value.status == 500
        assert SECRET not in str(info.value)
        assert "Authorization" not in str(info.value)

    async def test_401_is_an_authentication_error_at_once(self) -> None:
        """A 401 is not retried and raises AuthenticationError."""
        api = FakeAPI({"/x": [httpx.Response(401, json={"errors": [{"detail": "bad"}]})]})
        client = make_client(api, [])
        with pytest.raises(AuthenticationError) as info:
            await client.get_json("http://h/x", endpoint="/x")
        assert len(api.calls) == 1
        assert SECRET not in str(info.value)

    async def test_404_maps_to_the_given_value(self) -> None:
        """A 404 returns the not_found value when the caller gives one."""
        api = FakeAPI({"/x": [httpx.Response(404)]})
        client = make_client(api, [])
        assert await client.get_json("http://h/x", endpoint="/x", not_found={}) == {}

    async def test_basic_auth_is_sent(self) -> None:
        """Every request carries HTTP Basic auth built from the key and secret."""
        api = FakeAPI()
        client = make_client(api, [])
        await client.get_json("http://h/x", endpoint="/x")
        expected = httpx.BasicAuth("KEY", SECRET)._auth_header
        assert api.calls[0].headers["authorization"] == expected


class TestPagination:
    async def test_follows_next_on_the_same_host(self) -> None:
        """metadata.next on the same host is followed verbatim."""
        api = FakeAPI(
            {
                "/l": [
                    {"data": [{"id": 1}], "metadata": {"next": "http://h/l?page_token=T2"}},
                    {"data": [{"id": 2}], "metadata": {"next": None}},
                ]
            }
        )
        client = make_client(api, [])
        items = await client.list_all("http://h/l", endpoint="/l", params={"environment": "e"})
        assert [i["id"] for i in items] == [1, 2]
        assert api.calls[1].url.params["page_token"] == "T2"
        assert "environment" not in api.calls[1].url.params

    async def test_resends_params_with_token_when_next_points_elsewhere(self) -> None:
        """A next URL on another host is replaced by the original params plus page_token."""
        api = FakeAPI(
            {
                "/l": [
                    {"data": [{"id": 1}], "metadata": {"next": "https://real/l?page_token=T2"}},
                    {"data": [{"id": 2}], "metadata": {}},
                ]
            }
        )
        client = make_client(api, [])
        items = await client.list_all("http://proxy/l", endpoint="/l", params={"environment": "e"})
        assert [i["id"] for i in items] == [1, 2]
        second = api.calls[1].url
        assert second.host == "proxy"
        assert dict(second.params) == {"environment": "e", "page_token": "T2"}

    async def test_a_next_loop_is_an_error(self) -> None:
        """A listing whose next link repeats fails instead of looping forever."""
        page = {"data": [{"id": 1}], "metadata": {"next": "http://h/l?page_token=same"}}
        api = FakeAPI({"/l": [page] * 5})
        client = make_client(api, [])
        with pytest.raises(SourceError, match="loop"):
            await client.list_all("http://h/l", endpoint="/l")

    async def test_page_cap(self) -> None:
        """More pages than max_pages is an error naming the setting."""
        pages = [{"data": [], "metadata": {"next": f"http://h/l?page_token={i}"}} for i in range(5)]
        api = FakeAPI({"/l": pages})
        client = make_client(api, [], max_pages=3)
        with pytest.raises(SourceError, match="max_pages"):
            await client.list_all("http://h/l", endpoint="/l")


class TestLimits:
    async def test_rate_limiter_spaces_requests(self) -> None:
        """With a requests-per-second limit, back-to-back requests wait their turn."""
        sleeps: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            sleeps.append(seconds)

        client = HttpClient(
            Credentials("KEY", SecretStr(SECRET)),
            HttpSettings(requests_per_second=2),
            transport=httpx.MockTransport(FakeAPI()),
            sleep=fake_sleep,
        )
        for _ in range(3):
            await client.get_json("http://h/x", endpoint="/x")
        # the fake sleep lets no time pass, so the starts are booked 0.5 s apart
        assert sleeps == pytest.approx([0.5, 1.0], abs=0.1)

    async def test_a_rate_pool_keeps_its_window_apart_from_the_host(self) -> None:
        """Requests naming a rate pool keep to the pool's limit (here 2 in any second:
        two at once, then each waits for the oldest to turn a second old), whatever
        host they go to, and use none of the host's turns; an unknown pool is the
        host's."""
        sleeps: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            sleeps.append(seconds)

        client = HttpClient(
            Credentials("KEY", SecretStr(SECRET)),
            HttpSettings(requests_per_second=None),
            transport=httpx.MockTransport(FakeAPI()),
            sleep=fake_sleep,
            rate_pools={"metrics": RateLimit(requests=2, per_s=1.0)},
        )
        for _ in range(5):
            await client.get_json("http://h/x", endpoint="/x")  # the host: no limit
            await client.request_json("POST", "http://h/q", endpoint="/q", pool="metrics")
        await client.request_json("GET", "http://h/x", endpoint="/x", pool="unknown")
        # the fake sleep lets no time pass: starts booked at 0, 0, 1, 1, 2
        assert sleeps == pytest.approx([1.0, 1.0, 2.0], abs=0.1)

    async def test_a_shared_pool_is_one_limit_for_every_client_given_it(self) -> None:
        """Two clients (two tenants) given one SharedRatePool take their turns from it
        together: 2 in any second between them, not 2 each."""
        sleeps: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            sleeps.append(seconds)

        pool = SharedRatePool(RateLimit(requests=2, per_s=1.0))
        clients = [
            HttpClient(
                Credentials(f"KEY{i}", SecretStr(SECRET)),
                HttpSettings(requests_per_second=None),
                transport=httpx.MockTransport(FakeAPI()),
                sleep=fake_sleep,
                rate_pools={"metrics": pool},
            )
            for i in range(2)
        ]
        for _ in range(2):
            for client in clients:
                await client.request_json("POST", "http://h/q", endpoint="/q", pool="metrics")
        assert sleeps == pytest.approx([1.0, 1.0], abs=0.1)

    def test_a_shared_pool_keeps_its_turns_per_event_loop(self) -> None:
        """A new event loop starts with the pool's turns unused (asyncio's locks belong
        to one loop; a process runs one daemon loop)."""
        pool = SharedRatePool(RateLimit(requests=1, per_s=3600.0))
        waits: list[float] = []

        async def two_requests() -> None:
            async def fake_sleep(seconds: float) -> None:
                waits.append(seconds)

            client = HttpClient(
                Credentials("KEY", SecretStr(SECRET)),
                HttpSettings(requests_per_second=None),
                transport=httpx.MockTransport(FakeAPI()),
                sleep=fake_sleep,
                rate_pools={"metrics": pool},
            )
            for _ in range(2):
                await client.request_json("POST", "http://h/q", endpoint="/q", pool="metrics")

        for _ in range(2):
            with asyncio.Runner() as runner:
                runner.run(two_requests())
        assert waits == pytest.approx([3600.0, 3600.0], abs=1.0)  # one wait per loop

    def test_rate_limit_per_second(self) -> None:
        """``per_second`` spaces starts evenly; ``None`` is no limit."""
        assert RateLimit.per_second(20) == RateLimit(requests=1, per_s=0.05)
        assert RateLimit.per_second(None) is None

    async def test_telemetry_reports_endpoint_templates(
        self, telemetry: RecordingTelemetry
    ) -> None:
        """Telemetry gets the endpoint template, never the concrete ids."""
        client = make_client(FakeAPI(), [])
        await client.get_json(
            "http://h/connect/v1/environments/env-1/clusters/lkc-1/connectors",
            endpoint="/connect/v1/environments/{env}/clusters/{cluster}/connectors",
        )
        assert telemetry.requests == [
            ("h", "/connect/v1/environments/{env}/clusters/{cluster}/connectors", "200")
        ]
        assert Counter(json.dumps(r) for r in telemetry.requests).total() == 1


class TestMemory:
    async def test_a_read_response_is_freed_without_the_cycle_collector(self) -> None:
        """A response (and its body) is freed by reference counting once dropped.

        httpx binds a response and its stream in a cycle; left alone, every billing
        page (~4 MB) would wait for a full collection, which the engine pauses.
        """
        api = FakeAPI({"/x": [{"data": list(range(1000))}] * 3})
        client = make_client(api, [])
        gc.collect()
        was_enabled = gc.isenabled()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(3):
                assert len((await client.get_json("http://h/x", endpoint="/x"))["data"]) == 1000
            gc.collect()
            stranded = [o for o in gc.garbage if isinstance(o, httpx.Response)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            if was_enabled:
                gc.enable()
        assert len(api.calls) == 3
        assert stranded == []
