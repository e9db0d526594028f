"""Headless Chromium for page tests: Debian's ``chromium`` driven by Playwright.

Playwright (Python) rather than Selenium: its locators wait for the page by themselves
(no sleeps, fewer flaky tests), it takes screenshots of pages and elements, it has sync
and async APIs (the daemon's tests are asyncio), and its wheel carries its own driver, so
only the browser comes from Debian: ``executable_path`` points at ``/usr/bin/chromium``;
``playwright install`` (a browser download) is never used, it cannot work offline.
Selenium would need ``chromium-driver`` too and explicit waits.

Screenshots go to ``var/screenshots/`` under the repository (``$SCREENSHOT_DIR``
overrides it); the run's summary names the directory and the files written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from tests.support.process import ServiceStartError, free_port

SERVICE = "Chromium"
INSTALL_HINT = "run `make test` (or scripts/install-system-deps: Debian package chromium)"
REPO = Path(__file__).resolve().parents[2]
# As root Chromium needs --no-sandbox; the closed network refuses Chromium's background
# connections (updates, sync, QUIC probes) many at a time unless they are switched off.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
)


def chromium_executable() -> str:
    """Path of the browser: ``$CHROMIUM_PATH``, else ``chromium`` on PATH."""
    override = os.environ.get("CHROMIUM_PATH")
    if override:
        return override
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise ServiceStartError(SERVICE, "chromium not found on PATH", hint=INSTALL_HINT)


def launch_options() -> dict[str, Any]:
    """Keyword arguments for ``playwright.chromium.launch`` (each launch gets a new profile)."""
    return {"executable_path": chromium_executable(), "headless": True, "args": CHROMIUM_ARGS}


def screenshot_dir() -> Path:
    """Where screenshots are written: ``$SCREENSHOT_DIR`` or ``var/screenshots/``."""
    path = Path(os.environ.get("SCREENSHOT_DIR") or REPO / "var" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshot_path(test_id: str, name: str) -> Path:
    """A file name made of the test's id and ``name``, safe on any filesystem."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{test_id}-{name}").strip("_")
    return screenshot_dir() / f"{stem}.png"


def _config(app: ASGIApp) -> uvicorn.Config:
    return uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off"
    )


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp, *, start_timeout: float = 10.0) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread (for sync tests); yields its base URL."""
    config = _config(app)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-asgi-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServiceStartError("test ASGI server", f"did not start on port {config.port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.asynccontextmanager
async def serve_in_loop(app: ASGIApp) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on the running loop (for async tests); its base URL."""
    config = _config(app)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise ServiceStartError("test ASGI server", f"did not start on port {config.port}")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await task
