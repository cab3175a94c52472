"""What every answer of every service carries for the browser's sake, and who may call across origins.

The pages (Skill Passports, skill pages, the waitlist form) have no script and load only their
own stylesheet, so their Content-Security-Policy allows nothing else: no script at all, no
inline style, forms posting only back here, and no framing. JSON answers allow nothing. The
API docs page (Swagger UI, a developer's tool) needs its own script and an inline start-up
script, so it alone is allowed those.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response

from shared.consistency import AFTER_HEADER, STALE_HEADER, TOKEN_HEADER

PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
DOCS_POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
#: Path prefixes of the API docs page and its assets.
DOCS_PATHS = ("/docs", "/docs-assets/")

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def policy_for(path: str, content_type: str) -> str:
    if path.startswith(DOCS_PATHS):
        return DOCS_POLICY
    return PAGE_POLICY if content_type.startswith("text/html") else API_POLICY


def security_headers_middleware() -> Callable[
    [Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]
]:
    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        policy = policy_for(request.url.path, response.headers.get("content-type", ""))
        response.headers.setdefault("Content-Security-Policy", policy)
        return response

    return middleware


def allow_origins(app: FastAPI, origins: Sequence[str]) -> None:
    """Let browser clients on ``origins`` call the API (CORS; none by default). Bearer tokens
    travel in a header, not a cookie, so credentials are not allowed."""
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", AFTER_HEADER],
            expose_headers=["Location", "Retry-After", TOKEN_HEADER, STALE_HEADER],
            max_age=600,
        )
