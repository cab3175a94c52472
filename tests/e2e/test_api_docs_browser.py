"""Each service's API docs, as a browser sees them through the gateway: Swagger UI renders the
service's OpenAPI document from files the service serves itself, with no request leaving the
machine (this machine has no internet, so a CDN would leave the page blank)."""

from __future__ import annotations

from urllib.parse import urlparse

from playwright.async_api import Page, Request

from deploy.local.stack import StackConfig
from tests.e2e.browser import LOOP, OpenPage, broken_resources, screenshot

pytestmark = LOOP

#: One route each service's docs must list.
A_ROUTE = {
    "passport": "/v1/learners",
    "matching": "/v1/match-requests",
    "sessions": "/v1/sessions/{session_id}",
    "evidence": "/v1/evidence",
    "sci": "/v1/scores/{learner_id}",
}


def hosts_asked(page: Page) -> set[str]:
    """The hosts the page sends requests to; fills as it loads."""
    hosts: set[str] = set()

    def on_request(request: Request) -> None:
        hosts.add(urlparse(request.url).hostname or "")

    page.on("request", on_request)
    return hosts


async def test_every_service_api_docs_render_without_the_internet(
    open_page: OpenPage, stack: StackConfig
) -> None:
    for service in stack.services:
        page = await open_page()
        hosts = hosts_asked(page)
        broken = broken_resources(page)
        response = await page.goto(f"/{service}/docs")
        assert response is not None and response.status == 200
        await page.locator(".opblock-summary-path").first.wait_for(timeout=15_000)
        paths = await page.locator(".opblock-summary-path").all_inner_texts()
        assert any(A_ROUTE[service] in path for path in paths), f"{service}: {paths}"
        assert hosts <= {"127.0.0.1", "localhost"}, f"{service} docs asked other hosts: {hosts}"
        assert not broken, f"{service}: {broken}"
        if service == "passport":
            await screenshot(page, "api-docs-passport")
        await page.close()
