"""OpenAPI 3.1 document and Swagger UI at /api-docs (filled in by its own change)."""

from __future__ import annotations

from aiohttp import web

from aisha_server.api.routing import Routes

routes = Routes()


def setup(app: web.Application) -> None:
    """Mount static Swagger UI assets (no CDN)."""
