"""The server-rendered pages, as a headless Chromium sees them through the gateway."""

from __future__ import annotations

from playwright.sync_api import Page

from deploy.local.stack import StackConfig
from tests.e2e.browser import screenshot


def test_the_gateway_root_links_every_service_api_docs(page: Page, stack: StackConfig) -> None:
    response = page.goto("/")
    assert response is not None and response.status == 200
    assert page.locator("h1").inner_text() == "Lemma local gateway"
    for service in stack.services:
        link = page.locator(f'a[href="/{service}/docs"]')
        assert link.count() == 1, f"no API docs link for {service}"
        assert link.inner_text() == "API docs"
    screenshot(page, "gateway-root")
