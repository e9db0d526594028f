"""The HTTP server: /metrics on its own thread, probes on the daemon's loop, exact bodies."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from chargeback.service.http import HttpServer, Scope, gzip_stream, make_app

TEXT = b'# TYPE x gauge\nx{a="1"} 1.5\n' * 2000
TAIL = b"# TYPE up gauge\nup 1\n"


class Source:
    """An exposition like the daemon's: pre-compressed text plus a small tail."""

    def __init__(self) -> None:
        self.text = TEXT
        self.threads: list[int] = []

    def exposition(self) -> bytes:
        self.threads.append(threading.get_ident())
        return self.text + TAIL

    def exposition_gzip(self) -> bytes:
        self.threads.append(threading.get_ident())
        c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        deflate = c.compress(self.text) + c.flush(zlib.Z_SYNC_FLUSH)
        return gzip_stream([(self.text, deflate, zlib.crc32(self.text))], TAIL)


class Health:
    """Probe answers that remember which thread asked."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def health(self) -> dict[str, Any]:
        self.threads.append(threading.get_ident())
        return {"state": "running"}

    def readiness(self) -> list[str]:
        self.threads.append(threading.get_ident())
        return []


@pytest.fixture
async def served() -> AsyncIterator[tuple[HttpServer, Source, Health]]:
    """The metrics app on a free loopback port."""
    source, health = Source(), Health()
    server = HttpServer(make_app(source, health), "127.0.0.1", 0)
    await server.start()
    yield server, source, health
    await server.aclose()


def get(port: int, path: str, **headers: str) -> httpx.Response:
    """A blocking GET, for use from a thread other than the test's loop."""
    with httpx.Client(timeout=20) as client:
        return client.get(f"http://127.0.0.1:{port}{path}", headers=headers)


class TestThreads:
    """Scrapes are answered on the server's thread, probes on the loop that started it."""

    async def test_metrics_answers_while_the_daemon_loop_is_blocked(
        self, served: tuple[HttpServer, Source, Health]
    ) -> None:
        """A scrape completes while the starting loop is held by synchronous work."""
        server, source, _ = served
        results: list[httpx.Response | BaseException] = []
        done = threading.Event()

        def scrape() -> None:
            try:
                results.append(get(server.port, "/metrics", **{"accept-encoding": "gzip"}))
            except httpx.HTTPError as exc:
                results.append(exc)
            done.set()

        threading.Thread(target=scrape).start()
        done.wait(30)  # blocks this loop, as a pipeline's CPU-bound slice does
        assert len(results) == 1
        resp = results[0]
        assert isinstance(resp, httpx.Response)
        assert resp.status_code == 200
        assert resp.content == TEXT + TAIL
        assert threading.get_ident() not in source.threads

    async def test_probes_run_on_the_starting_loop(
        self, served: tuple[HttpServer, Source, Health]
    ) -> None:
        """/healthz and /readyz are answered by the loop that started the server."""
        server, _, health = served
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            healthz = await client.get("/healthz")
            readyz = await client.get("/readyz")
            missing = await client.get("/nope")
            post = await client.post("/healthz", content=b"x")
        assert healthz.json() == {"status": "ok", "state": "running"}
        assert readyz.json() == {"status": "ready"}
        assert (missing.status_code, post.status_code) == (404, 405)
        assert health.threads == [threading.get_ident()] * 2

    async def test_probe_waits_for_a_blocked_loop(
        self, served: tuple[HttpServer, Source, Health]
    ) -> None:
        """/healthz cannot answer while the starting loop is blocked: it still proves the loop."""
        server, _, health = served
        results: list[httpx.Response] = []
        asked = threading.Event()

        def probe() -> None:
            asked.set()
            results.append(get(server.port, "/healthz"))

        thread = threading.Thread(target=probe)
        thread.start()
        asked.wait(30)
        thread.join(0.5)  # blocks this loop: the probe cannot be answered meanwhile
        assert results == []
        await asyncio.to_thread(thread.join, 30)  # the loop runs again: it is answered
        assert results[0].status_code == 200
        assert health.threads == [threading.get_ident()]

    async def test_other_apps_are_served_on_the_current_loop(self) -> None:
        """An app without thread paths (the demo's simulator) runs on the starting loop."""
        seen: list[int] = []

        async def app(scope: Scope, receive: Any, send: Any) -> None:
            seen.append(threading.get_ident())
            body = (await receive())["body"]
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

        server = HttpServer(app, "127.0.0.1", 0)
        await server.start()
        try:
            async with httpx.AsyncClient() as client:
                resp = await client.post(f"http://127.0.0.1:{server.port}/q", content=b"echo")
        finally:
            await server.aclose()
        assert resp.content == b"echo"
        assert seen == [threading.get_ident()]

    async def test_busy_port_raises_oserror(self) -> None:
        """Binding a port already in use fails start() with OSError."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            server = HttpServer(make_app(Source(), Health()), "127.0.0.1", sock.getsockname()[1])
            with pytest.raises(OSError, match="cannot listen"):
                await server.start()
            await server.aclose()


class TestMetricsBody:
    """The /metrics body and its headers."""

    @pytest.mark.parametrize(
        ("accept", "gzipped"),
        [
            ("gzip", True),
            ("deflate, gzip;q=0.5", True),
            ("*", True),
            ("gzip;q=0", False),
            ("identity", False),
            ("br", False),
        ],
    )
    async def test_encoding_follows_accept_encoding(
        self, served: tuple[HttpServer, Source, Health], accept: str, gzipped: bool
    ) -> None:
        """gzip is sent exactly when the client's Accept-Encoding allows it."""
        server, _, _ = served
        async with (
            httpx.AsyncClient() as client,
            client.stream(
                "GET",
                f"http://127.0.0.1:{server.port}/metrics",
                headers={"accept-encoding": accept},
            ) as resp,
        ):
            raw = b"".join([chunk async for chunk in resp.aiter_raw()])
        assert int(resp.headers["content-length"]) == len(raw)
        if gzipped:
            assert resp.headers["content-encoding"] == "gzip"
            assert resp.headers["vary"] == "accept-encoding"
            assert gzip.decompress(raw) == TEXT + TAIL
        else:
            assert "content-encoding" not in resp.headers
            assert raw == TEXT + TAIL

    async def test_serves_the_current_text(self, served: tuple[HttpServer, Source, Health]) -> None:
        """A change of the source's text is served by the next scrape."""
        server, source, _ = served
        url = f"http://127.0.0.1:{server.port}/metrics"
        async with httpx.AsyncClient() as client:
            before = await client.get(url)
            source.text = b"# TYPE y gauge\ny 2\n"
            after = await client.get(url)
        assert before.content == TEXT + TAIL
        assert after.content == b"# TYPE y gauge\ny 2\n" + TAIL
