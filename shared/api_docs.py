"""Each service's API docs page: Swagger UI from the installed ``swagger-ui-bundle-v2`` package.

FastAPI's own ``/docs`` loads Swagger UI from a CDN, which leaves the page blank on a machine
without internet. Here the assets are served by the service itself under ``/docs-assets``, and
the gateway's ``/<service>/docs`` pages load them through the service's prefix.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/docs-assets"


def install_api_docs(app: FastAPI) -> None:
    """``GET /docs`` and its assets; create the app with ``docs_url=None, redoc_url=None``."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
