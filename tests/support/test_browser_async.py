"""Smoke test: Playwright's async API drives Chromium on the test's own event loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.async_api import Page as AsyncPage
from tests.support.browser import serve_in_loop
from tests.support.test_browser import APP, png_size

pytestmark = pytest.mark.e2e


class TestChromiumAsync:
    async def test_async_api_works_on_the_test_loop(
        self, async_browser_page: AsyncPage, screenshot_file: Callable[[str], Path]
    ) -> None:
        """The async fixture drives a page served by uvicorn on the test's own event loop."""
        async with serve_in_loop(APP) as base:
            await async_browser_page.goto(base + "/")
            await async_browser_page.click("#go")
            await async_browser_page.wait_for_function(
                "document.getElementById('out').textContent.startsWith('total')"
            )
            text = await async_browser_page.text_content("#out")
            shot = screenshot_file("async")
            await async_browser_page.screenshot(path=shot)
        assert text == "total: 12.345678901"
        assert png_size(shot) == (1280, 800)
