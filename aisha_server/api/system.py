"""System endpoints (guide Appendix B, 10.2): health, status, diagnostics, metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from aisha_server import keys
from aisha_server.api.context import principal
from aisha_server.api.routing import Routes
from aisha_server.auth.roles import Role
from aisha_server.envelope import json_response, success
from aisha_server.errors import PermissionDenied
from aisha_server.metrics import PROMETHEUS_CONTENT_TYPE

routes = Routes()


@routes.get(
    "/health",
    summary="Simple health check",
    tags=("system",),
    auth=False,
    response={
        "type": "object",
        "required": ["status", "timestamp"],
        "properties": {
            "status": {"type": "string", "enum": ["ok"]},
            "timestamp": {"type": "string", "format": "date-time"},
        },
    },
    extra={"envelope": False},  # the guide's bare {"status":"ok","timestamp":...}
)
async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "timestamp": datetime.now(UTC).isoformat()})


@routes.get("/api/status", summary="Detailed system status", tags=("system",), auth=False)
async def status(request: web.Request) -> web.Response:
    return success(await request.app[keys.SYSTEM_SERVICE].status())


def _require_operator(request: web.Request) -> None:
    who = principal(request)
    allowed = who.role in (Role.SUPERADMIN, Role.ADMIN) or who.has_custom_grant("system", "read")
    if not allowed:
        raise PermissionDenied("Diagnostics and metrics are for administrators")


@routes.post(
    "/api/system/diagnostics",
    summary="Run diagnostics: database connectivity, schema revision, pool, memory",
    tags=("system",),
)
async def diagnostics(request: web.Request) -> web.Response:
    _require_operator(request)
    return success(await request.app[keys.SYSTEM_SERVICE].diagnostics())


@routes.get(
    "/api/system/metrics",
    summary="Performance metrics: request counts, latency percentiles, error rate, pool, memory",
    tags=("system",),
)
async def metrics(request: web.Request) -> web.Response:
    _require_operator(request)
    return success(request.app[keys.SYSTEM_SERVICE].metrics())


@routes.get(
    "/metrics",
    summary="Prometheus text exposition",
    tags=("system",),
    extra={"resource": "metrics", "action": "read", "content_type": "text/plain"},
)
async def prometheus(request: web.Request) -> web.Response:
    _require_operator(request)
    body = request.app[keys.METRICS].prometheus_text()
    return web.Response(body=body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})
