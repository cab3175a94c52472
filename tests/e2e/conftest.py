"""The whole local stack, started as `make run` starts it (Prometheus beside it), on free ports
in a temporary folder; and a headless Chromium (see ``tests/e2e/browser.py``) for the tests that
look at its pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

from deploy.local.stack import StackConfig, start_stack, stop_stack
from tests.e2e.browser import DESKTOP, SCREENSHOTS, OpenPage, artifact_name, launch, screenshot


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    config = StackConfig.with_free_ports(Path(tmp_path_factory.mktemp("stack")), prometheus=True)
    try:
        start_stack(config)
        yield config
    finally:
        stop_stack(config)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the session; stopped (with Playwright's driver) at its end."""
    for old in SCREENSHOTS.glob("failed-*.png"):  # a failure's picture is of this run
        old.unlink()
    async with async_playwright() as playwright:
        chromium = await launch(playwright)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def open_page(
    browser: Browser, stack: StackConfig, request: pytest.FixtureRequest
) -> AsyncIterator[OpenPage]:
    """Opens pages on the gateway (relative URLs work), each in a fresh context:
    ``await open_page(viewport=PHONE, javascript=False)``. On a failed test, the last page
    opened is saved to test-artifacts/screenshots/failed-<test>.png."""
    contexts: list[BrowserContext] = []
    pages: list[Page] = []

    async def open_one(viewport: ViewportSize = DESKTOP, javascript: bool = True) -> Page:
        context = await browser.new_context(
            base_url=stack.gateway_url, viewport=viewport, java_script_enabled=javascript
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        pages.append(await context.new_page())
        return pages[-1]

    try:
        yield open_one
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed and pages:
            try:
                await screenshot(pages[-1], f"failed-{artifact_name(request.node.nodeid)}")
            except Exception as exc:  # the screenshot must not hide the failure
                print(f"no failure screenshot: {exc!r}")
        for context in contexts:
            await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(open_page: OpenPage) -> Page:
    """A desktop-sized page on the gateway."""
    return await open_page()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
