"""``/docs`` (Swagger UI) and ``/redoc`` with their JavaScript, CSS and favicon served here.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank on a cluster
without internet access (most GPU clusters). Here the assets come from the installed
``fastapi-offline`` package (its ``static`` directory: Swagger UI 5, ReDoc 2 and a favicon),
mounted under ``/docs/assets``, and the served HTML names no external URL: Swagger's
online validator badge and ReDoc's Google Fonts are off for the same reason. Only
``fastapi-offline``'s files are used, not its ``FastAPI`` factory: the app keeps its own.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"

#: Swagger UI's parameters: FastAPI's defaults (deep links to an operation work) without the
#: badge that would send the schema to validator.swagger.io.
SWAGGER_PARAMETERS = {"deepLinking": True, "validatorUrl": None}


def assets_dir() -> str:
    """The directory of ``fastapi-offline``'s bundled Swagger UI and ReDoc files."""
    return str(files("fastapi_offline") / "static")


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets; build the app with ``docs_url=None``.

    URLs are prefixed with the request's ``root_path``, so the pages work behind a proxy
    that mounts the service under a path.
    """
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
