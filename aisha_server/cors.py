"""CORS for browser clients on ALLOWED_ORIGINS (and FRONTEND_URL).

The desktop console does not need CORS; browser-based tools (the old React frontend, admin
dashboards) do.  Used by the `observe` middleware: preflight requests are answered before rate limits and
authentication, because browsers send them without credentials.
"""

from __future__ import annotations

from aiohttp import web

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


def preflight(request: web.Request, origin: str) -> web.Response | None:
    """The answer to a CORS preflight, or None for any other request."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return None
    if origin.rstrip("/") not in request.app[keys.CORS_ORIGINS]:
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


def decorate(request: web.Request, origin: str, response: web.StreamResponse) -> None:
    """Add the CORS headers of an allowed origin to any answer, errors included."""
    if origin.rstrip("/") in request.app[keys.CORS_ORIGINS]:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        response.headers.add("Vary", "Origin")
