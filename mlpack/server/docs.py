"""/openapi.json and /docs: the server's document and a Swagger UI page over it.

The routes read raw bodies (no pydantic), so the app is a plain Starlette app:
FastAPI and pydantic were 12 MB of the image and about a third of the server's
start before it could bind its port, for these two pages. The document comes
from :func:`mlpack.server.openapi.openapi_document` as before; the page is the
usual Swagger UI bootstrap (its script and style from the jsDelivr CDN, as
FastAPI serves it), so a browser shows the same thing.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

__all__ = ["docs_routes", "swagger_page"]

TITLE = "mlpack model server"
_CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5"


def swagger_page(openapi_url: str, title: str = TITLE) -> str:
    """The Swagger UI HTML for the document at ``openapi_url``."""
    url = json.dumps(openapi_url).replace("<", "\\u003c")  # a "</script>" in it cannot end the script
    return f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{html.escape(title)} - Swagger UI</title>
<link type="text/css" rel="stylesheet" href="{_CDN}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{_CDN}/swagger-ui-bundle.js"></script>
<script>
const ui = SwaggerUIBundle({{url: {url}, dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset], layout: "BaseLayout"}})
</script>
</body>
</html>
"""


def docs_routes(document: Callable[[], dict[str, Any]], *, openapi_url: str = "/openapi.json",
                docs_url: str = "/docs") -> list[Route]:
    """GET ``openapi_url`` (``document()`` as JSON) and GET ``docs_url`` (Swagger UI over it)."""
    page = swagger_page(openapi_url)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document())

    async def swagger(request: Request) -> Response:
        return HTMLResponse(page)

    return [Route(openapi_url, openapi_json, methods=["GET"], include_in_schema=False),
            Route(docs_url, swagger, methods=["GET"], include_in_schema=False)]
