"""/openapi.json and /docs without FastAPI on the start path.

The routes read raw bodies (no pydantic), so the app is a plain Starlette app;
importing FastAPI (and pydantic with it) only for its Swagger page cost about
a third of the server's start before it could bind its port. The document
comes from :func:`mlpack.server.openapi.openapi_document` as before; the
Swagger UI page is FastAPI's own HTML, imported at the first GET /docs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

__all__ = ["docs_routes"]

TITLE = "mlpack model server"


def docs_routes(document: Callable[[], dict[str, Any]], *, openapi_url: str = "/openapi.json",
                docs_url: str = "/docs") -> list[Route]:
    """GET ``openapi_url`` (``document()`` as JSON) and GET ``docs_url`` (Swagger UI over it)."""

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document())

    async def swagger(request: Request) -> Response:
        try:
            from fastapi.openapi.docs import get_swagger_ui_html
        except ImportError:  # the page is a convenience: without FastAPI, point at the document
            return HTMLResponse(f'<!doctype html><title>{TITLE}</title><a href="{openapi_url}">{openapi_url}</a>')
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{TITLE} - Swagger UI")

    return [Route(openapi_url, openapi_json, methods=["GET"], include_in_schema=False),
            Route(docs_url, swagger, methods=["GET"], include_in_schema=False)]
