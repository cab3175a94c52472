"""Headless Chromium for the browser tests: Debian's ``chromium`` package driven by Playwright.

Playwright never downloads a browser here: it launches the system's Chromium by path
(``make test`` installs it with apt-get when it is missing; ``LEMMA_CHROMIUM`` names another
binary). Without it the browser tests fail, they do not skip.

The async API, on pytest-asyncio's session loop (``LOOP``): Playwright's sync API marks its
loop as running in the thread between calls, so a session-long sync browser would make every
later ``asyncio.run`` (and every async test) fail.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Playwright, Response, ViewportSize

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"

#: The loop every browser fixture and test runs on: ``pytestmark = LOOP`` in a browser test module.
LOOP = pytest.mark.asyncio(loop_scope="session")

#: The background-networking flags matter: without them Chromium keeps opening connections the
#: machine's closed network refuses, and the tests wait on them.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}

#: The ``open_page`` fixture: ``await open_page(viewport=PHONE, javascript=False)`` -> a new page.
OpenPage = Callable[..., Awaitable[Page]]


def chromium_path() -> str:
    """The Chromium binary to drive; fails the test with how to install it when there is none."""
    path = os.environ.get("LEMMA_CHROMIUM") or CHROMIUM
    found = path if os.access(path, os.X_OK) else shutil.which(path)
    if not found:
        pytest.fail(
            f"Chromium not found at {path}: the browser tests drive Debian's chromium package. "
            "`make test` installs it; by hand: apt-get install -y --no-install-recommends chromium "
            "(or set LEMMA_CHROMIUM to a Chromium binary). Never `playwright install`.",
            pytrace=False,
        )
    return found


async def launch(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(executable_path=chromium_path(), args=ARGS, headless=True)


async def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot saved as test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


def artifact_name(nodeid: str) -> str:
    """A file name for a test id (``tests/e2e/x.py::test_y[a]`` -> ``x-test_y-a``)."""
    name = nodeid.rsplit("/", 1)[-1].replace(".py::", "-")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def broken_resources(page: Page) -> list[str]:
    """Starts recording the page's sub-resources (stylesheets, images, ...) that fail or answer
    an error status; the returned list fills as the page loads."""
    broken: list[str] = []

    def on_response(response: Response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            broken.append(f"{response.status} {response.url}")

    page.on("response", on_response)
    page.on("requestfailed", lambda request: broken.append(f"failed {request.url}: {request.failure}"))
    return broken


async def text_of(page: Page, selector: str) -> str:
    """The text content (whitespace collapsed, as written, not as CSS shows it) of the one
    element ``selector`` finds; fails when there is none or several."""
    found = page.locator(selector)
    count = await found.count()
    assert count == 1, f"{count} elements match {selector!r} on {page.url}"
    return " ".join((await found.text_content() or "").split())


async def reload_until(page: Page, ok: Callable[[Page], Awaitable[bool]], timeout: float, what: str) -> float:
    """Reload ``page`` until ``await ok(page)`` holds; the seconds it took (fails after ``timeout``)."""
    started = time.monotonic()
    while not await ok(page):
        assert time.monotonic() - started < timeout, f"{what}: not on {page.url} after {timeout:.0f}s"
        await asyncio.sleep(0.3)
        await page.reload()
    return time.monotonic() - started
