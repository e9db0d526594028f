"""Starlette routes on the daemon's HTTP server: bodies, streams, static files, storage."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from tests.unit.service.test_daemon_inprocess import make_daemon, registry, wait_idle
from tests.unit.service.test_http_serving import Health, Source, get

from chargeback.core.storage.backend import StorageBackend
from chargeback.core.storage.factory import make_backend, open_backend
from chargeback.errors import StorageError
from chargeback.service.daemon import Daemon
from chargeback.service.http import HttpServer, LoopStorage, make_app, storage_of
from chargeback.settings import StorageSettings

__all__ = ["make_daemon", "registry"]  # fixtures shared with the in-process daemon tests

NOW = dt.datetime(2024, 5, 4, tzinfo=dt.UTC)


async def echo(request: Request) -> Response:
    """Answer with the request's body and the thread that read it."""
    body = await request.body()
    return Response(body, headers={"x-thread": str(threading.get_ident())})


async def stream(request: Request) -> StreamingResponse:
    """Answer in three chunks."""

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"chunk {i}\n".encode()
            await asyncio.sleep(0)

    return StreamingResponse(chunks(), media_type="text/plain")


async def runs(request: Request) -> Response:
    """Read the database through the server's own storage handle."""
    storage = await storage_of(request)
    found = await storage.list_runs("t1")
    return JSONResponse({"runs": [r.run_id for r in found], "thread": threading.get_ident()})


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    """Start the daemon's app with extra routes on a free port; stop it afterwards."""
    servers: list[HttpServer] = []

    async def start(
        routes: Sequence[BaseRoute], storage: Callable[[], StorageBackend] | None = None
    ) -> str:
        server = HttpServer(
            make_app(Source(), Health(), storage=storage, routes=routes), "127.0.0.1", 0
        )
        await server.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.aclose()


class TestRoutes:
    """What the hand-written router could not do: bodies, streams, static files."""

    async def test_a_post_body_reaches_the_route_on_the_server_thread(self, serve: Any) -> None:
        """A route reads the request body; it runs on the server's thread, not this loop's."""
        base = await serve([Route("/echo", echo, methods=["POST"])])
        async with httpx.AsyncClient() as client:
            resp = await client.post(f"{base}/echo", content=b"x" * 100_000)
        assert resp.status_code == 200
        assert resp.content == b"x" * 100_000
        assert int(resp.headers["x-thread"]) != threading.get_ident()

    async def test_a_streaming_response_arrives_whole(self, serve: Any) -> None:
        """A StreamingResponse is sent chunk by chunk and read back in full."""
        base = await serve([Route("/stream", stream)])
        async with httpx.AsyncClient() as client, client.stream("GET", f"{base}/stream") as resp:
            text = b"".join([c async for c in resp.aiter_bytes()]).decode()
        assert resp.headers["transfer-encoding"] == "chunked"
        assert text == "chunk 0\nchunk 1\nchunk 2\n"

    async def test_static_files_are_served(self, serve: Any, tmp_path: Path) -> None:
        """A StaticFiles mount serves files with their type, 404 for missing ones."""
        (tmp_path / "index.html").write_text("<h1>chargeback</h1>", encoding="utf-8")
        base = await serve([Mount("/ui", StaticFiles(directory=tmp_path, html=True))])
        async with httpx.AsyncClient() as client:
            page = await client.get(f"{base}/ui/")
            missing = await client.get(f"{base}/ui/nope.js")
        assert page.text == "<h1>chargeback</h1>"
        assert page.headers["content-type"].startswith("text/html")
        assert missing.status_code == 404

    async def test_unknown_paths_and_methods_answer_as_before(self, serve: Any) -> None:
        """404 and 405 keep their plain-text bodies; 405 names the allowed methods."""
        base = await serve([])
        async with httpx.AsyncClient() as client:
            missing = await client.get(f"{base}/nope")
            post = await client.post(f"{base}/metrics", content=b"x")
            head = await client.head(f"{base}/healthz")
        assert (missing.status_code, missing.text) == (404, "not found\n")
        assert (post.status_code, post.text) == (405, "method not allowed\n")
        assert set(post.headers["allow"].split(", ")) == {"GET", "HEAD"}
        assert (head.status_code, head.content) == (200, b"")


class TestServerStorage:
    """Routes read the database through a read-only backend of the server's own loop."""

    async def test_one_backend_opened_on_the_server_loop_and_closed_with_it(
        self, tmp_path: Path
    ) -> None:
        """The first request opens it on the server thread, later ones reuse it, stop closes it."""
        settings = StorageSettings(path=tmp_path / "cb.db")
        async with open_backend(settings) as writer:
            await writer.start_run("t1", "run-1", "cli", NOW)
        made: list[StorageBackend] = []

        def factory() -> StorageBackend:
            made.append(make_backend(settings, read_only=True))
            return made[-1]

        app = make_app(Source(), Health(), storage=factory, routes=[Route("/runs", runs)])
        server = HttpServer(app, "127.0.0.1", 0)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
                answers = [(await client.get("/runs")).json() for _ in range(3)]
        finally:
            await server.aclose()
        assert [a["runs"] for a in answers] == [["run-1"]] * 3
        assert len(made) == 1
        assert answers[0]["thread"] != threading.get_ident()
        with pytest.raises(StorageError, match="not open"):  # closed on the server's loop
            await made[0].tenants()

    async def test_no_storage_is_a_503_saying_so(self, serve: Any) -> None:
        """A route that needs storage on a server without it answers 503 in JSON."""
        base = await serve([Route("/runs", runs)])
        async with httpx.AsyncClient() as client:
            resp = await client.get(f"{base}/runs")
        assert resp.status_code == 503
        assert resp.json() == {
            "status": "storage unavailable",
            "error": "this HTTP server has no storage configured",
        }

    async def test_a_failed_open_is_retried_by_the_next_request(
        self, serve: Any, tmp_path: Path
    ) -> None:
        """A database that cannot be opened yet gives 503; once it exists the route works."""
        settings = StorageSettings(path=tmp_path / "later.db")
        base = await serve(
            [Route("/runs", runs)], storage=lambda: make_backend(settings, read_only=True)
        )
        async with httpx.AsyncClient() as client:
            first = await client.get(f"{base}/runs")
            async with open_backend(settings) as writer:
                await writer.start_run("t1", "run-1", "cli", NOW)
            second = await client.get(f"{base}/runs")
        assert first.status_code == 503
        assert first.json()["error"].startswith("opening the database failed: cannot open")
        assert second.json()["runs"] == ["run-1"]

    async def test_the_handle_refuses_another_loop(self, tmp_path: Path) -> None:
        """A handle opened on one loop fails loudly when another loop asks for it."""
        settings = StorageSettings(path=tmp_path / "cb.db")
        async with open_backend(settings):
            pass
        handle = LoopStorage(lambda: make_backend(settings, read_only=True))
        await handle.get()
        try:
            with pytest.raises(RuntimeError, match="belongs to the HTTP server's event loop"):
                await asyncio.to_thread(asyncio.run, handle.get())
        finally:
            await handle.close()
            await handle.close()


class TestApiIndex:
    """``/api/v1/`` on the real daemon: read from the database on the server's loop."""

    async def test_index_lists_tenants_and_their_newest_date(self, make_daemon: Any) -> None:
        """After a run the index names the tenant and its latest calculated date."""
        d: Daemon = await make_daemon("  acme: {ecosystem: example}\n")
        await wait_idle(d)
        assert d.http is not None
        assert d.storage is not None
        latest = await d.storage.latest_calculated_date("acme")
        assert latest is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{d.http.port}") as client:
            index = await client.get("/api/v1/")
            bare = await client.get("/api/v1", follow_redirects=True)
        assert index.status_code == 200
        assert index.json()["api"] == "v1"
        assert index.json()["tenants"] == [{"tenant": "acme", "latest_date": latest.isoformat()}]
        assert bare.json() == index.json()

    async def test_index_answers_while_the_daemon_loop_is_blocked(self, make_daemon: Any) -> None:
        """The API never waits for the daemon's loop: its storage lives on the server's."""
        d: Daemon = await make_daemon("  acme: {ecosystem: example}\n")
        await wait_idle(d)
        assert d.http is not None
        port = d.http.port
        results: list[httpx.Response] = []
        done = threading.Event()

        def ask() -> None:
            results.append(get(port, "/api/v1/"))
            done.set()

        threading.Thread(target=ask).start()
        done.wait(30)  # blocks the daemon's loop, as a pipeline's CPU slice does
        assert [r.status_code for r in results] == [200]
        assert results[0].json()["tenants"][0]["tenant"] == "acme"
