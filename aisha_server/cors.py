"""CORS for browser clients on ALLOWED_ORIGINS (and FRONTEND_URL).

The desktop console does not need CORS; browser-based tools (the old React frontend, admin
dashboards) do.  Preflight requests are answered here, before rate limits and authentication,
because browsers send them without credentials.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from aisha_server import keys
from aisha_server.config import Settings

ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, X-API-Key, X-Tenant-ID, X-Request-ID"
EXPOSE_HEADERS = "X-Request-ID, Retry-After"
MAX_AGE = "600"


def allowed_origins_for(settings: Settings) -> frozenset[str]:
    origins = {o.rstrip("/") for o in settings.ALLOWED_ORIGINS}
    origins.add(settings.FRONTEND_URL.rstrip("/"))
    return frozenset(origins)


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin is None:
        return await handler(request)
    allowed = origin.rstrip("/") in request.app[keys.CORS_ORIGINS]
    preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
    if preflight:
        if not allowed:
            return web.Response(status=403, text="CORS origin not allowed")
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": MAX_AGE,
                "Vary": "Origin",
            },
        )
    response = await handler(request)
    if allowed:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        response.headers.add("Vary", "Origin")
    return response
