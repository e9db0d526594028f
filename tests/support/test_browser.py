"""Smoke tests: headless Debian Chromium loads a local page, runs its script, screenshots it."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route
from tests.support.browser import serve_in_thread

pytestmark = pytest.mark.e2e

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Smoke</title>
<style>body { font-family: sans-serif; margin: 2em; } #out { font-size: 2em; }</style>
</head><body>
<h1>Chargeback browser smoke test</h1>
<button id="go">Load the total</button>
<p id="out">nothing yet</p>
<script>
document.getElementById("go").addEventListener("click", async () => {
  const answer = await fetch("/api/total").then((r) => r.json());
  document.getElementById("out").textContent = "total: " + answer.total;
});
</script>
</body></html>"""


async def _page(_request: object) -> HTMLResponse:
    return HTMLResponse(PAGE)


async def _total(_request: object) -> JSONResponse:
    return JSONResponse({"total": "12.345678901"})


APP = Starlette(routes=[Route("/", _page), Route("/api/total", _total)])


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header (and proof that it is a PNG)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


class TestChromium:
    def test_click_changes_the_dom_and_a_screenshot_is_written(
        self, browser_page: Page, screenshot_file: Callable[[str], Path]
    ) -> None:
        """A click runs the page's script (a fetch to the server); the screenshot is a real PNG."""
        with serve_in_thread(APP) as base:
            browser_page.goto(base + "/")
            expect(browser_page.locator("#out")).to_have_text("nothing yet")
            browser_page.get_by_role("button", name="Load the total").click()
            expect(browser_page.locator("#out")).to_have_text("total: 12.345678901")
            shot = screenshot_file("after-click")
            browser_page.screenshot(path=shot, full_page=True)
        assert shot.stat().st_size > 2_000
        assert png_size(shot)[0] == 1280
