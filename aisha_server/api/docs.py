"""API documentation: the OpenAPI 3.1 document and Swagger UI at /api-docs.

Swagger UI is served from the assets of the `swagger-ui-bundle` package: no CDN, so the docs
work on an offline machine and leak nothing to third parties.  The UI pages carry no
`Endpoint` metadata, which is what lets the auth middleware serve them without a token.
"""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from aisha_server import __version__, keys
from aisha_server.api.openapi import TITLE, OpenApiCache
from aisha_server.api.routing import Routes
from aisha_server.envelope import JSON_CONTENT_TYPE

routes = Routes()

DOCS_PREFIX = "/api-docs"
ASSETS_PREFIX = f"{DOCS_PREFIX}/assets"
SWAGGER_UI_DIR = Path(swagger_ui_path)

_INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>{title}</title>
  <link rel="stylesheet" type="text/css" href="./assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="./assets/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="./assets/favicon-16x16.png" sizes="16x16">
  <style>body {{ margin: 0; }} .aisha-contract {{ font: 13px sans-serif; padding: 6px 20px; }}</style>
</head>
<body>
  <div class="aisha-contract">
    OpenAPI 3.1 document: <a href="./openapi.json">openapi.json</a>
    (the UI renders its 3.0 view, <a href="./openapi-3.0.json">openapi-3.0.json</a>)
  </div>
  <div id="swagger-ui"></div>
  <script src="./assets/swagger-ui-bundle.js" charset="UTF-8"></script>
  <script src="./assets/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
  <script>
    window.onload = function () {{
      window.ui = SwaggerUIBundle({{
        url: "./openapi-3.0.json",
        dom_id: "#swagger-ui",
        deepLinking: true,
        persistAuthorization: true,
        validatorUrl: null,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        plugins: [SwaggerUIBundle.plugins.DownloadUrl],
        layout: "StandaloneLayout"
      }});
    }};
  </script>
</body>
</html>
"""


def index_html() -> str:
    return _INDEX.format(title=html.escape(f"{TITLE} {__version__}"))


@routes.get(
    f"{DOCS_PREFIX}/openapi.json",
    summary="OpenAPI 3.1 document of this API",
    description="Generated from the same pydantic models that validate requests.  "
    "Returned as the bare document, not wrapped in the success envelope.",
    tags=("docs",),
    auth=False,
    response={"type": "object", "description": "An OpenAPI 3.1 document"},
    extra={"envelope": False},
)
async def openapi_json(request: web.Request) -> web.Response:
    body = request.app[keys.OPENAPI].openapi_json(request.app)
    return web.Response(body=body, content_type=JSON_CONTENT_TYPE)


@routes.get(
    f"{DOCS_PREFIX}/openapi-3.0.json",
    summary="The same document as OpenAPI 3.0.3 (for Swagger UI 4)",
    tags=("docs",),
    auth=False,
    response={"type": "object", "description": "An OpenAPI 3.0.3 document"},
    extra={"envelope": False},
)
async def openapi_30_json(request: web.Request) -> web.Response:
    body = request.app[keys.OPENAPI].swagger_ui_json(request.app)
    return web.Response(body=body, content_type=JSON_CONTENT_TYPE)


async def _redirect_to_index(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect(f"{DOCS_PREFIX}/")


def setup(app: web.Application) -> None:
    """Mount the Swagger UI page and its static assets (no CDN)."""
    app[keys.OPENAPI] = OpenApiCache()
    page = index_html()

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get(DOCS_PREFIX, _redirect_to_index)
    app.router.add_get(f"{DOCS_PREFIX}/", index)
    app.router.add_static(ASSETS_PREFIX, SWAGGER_UI_DIR, follow_symlinks=False)
