"""The request pipeline: two middlewares, in this order (fixed in `app.py`):

1. `observe` - CORS, request id, timing and metrics, and the one error envelope;
2. `guard` - the request's admission, in explicit steps: rate limit -> authenticate ->
   tenant -> read-only guard.

The four admission steps used to be four middlewares; each aiohttp middleware layer costs a
coroutine frame and a partial per request, which on the hot path (authenticated GETs) was
the difference between 58% and the required 60% of a bare handler's throughput
(docs/BENCHMARKS.md).  One middleware calling plain step functions keeps the order just as
explicit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from aisha_server import cors, keys
from aisha_server.api.routing import Endpoint, endpoint_of
from aisha_server.auth.principal import Principal
from aisha_server.envelope import error
from aisha_server.errors import (
    READONLY_MESSAGE,
    TENANT_ACCESS_DENIED,
    DomainError,
    PermissionDenied,
    Unauthorized,
)
from aisha_server.services.system_log import LogEntry

log = logging.getLogger("aisha.http")

# Health, status and docs never count against rate limits (guide 3.4 protects the API).
RATE_LIMIT_EXEMPT = ("/health", "/api/status", "/metrics", "/api-docs")
# Login and password endpoints share the stricter AUTH_RATE_LIMIT_MAX.
AUTH_LIMITED = frozenset(
    {
        "/api/auth/login",
        "/api/auth/forgot-password",
        "/api/auth/reset-password",
        "/api/auth/accept-invitation",
    }
)
# What still works under PRODUCTION_READONLY besides reads: signing in and out, and
# diagnostics (a POST that only probes and changes nothing).
READONLY_ALLOWED = frozenset(
    {"/api/auth/login", "/api/auth/refresh", "/api/auth/logout", "/api/system/diagnostics"}
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOO_MANY = "Too many requests, please try again later."

STATUS_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Unsupported media type",
}


def request_id_source() -> Callable[[], str]:
    """Unique request ids without a syscall per request: a random per-app prefix and a
    counter (`3f9a1c0e5b7d-1a2b`)."""
    prefix = os.urandom(6).hex()
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter):x}"


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


def _route_name(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS, request id, timing, metrics and the one error envelope: no traceback leaves."""
    app = request.app
    origin = request.headers.get("Origin")
    if origin is not None:
        preflight = cors.preflight(request, origin)
        if preflight is not None:
            return preflight
    request_id = request.headers.get("X-Request-ID") or app[keys.REQUEST_IDS]()
    request[keys.REQUEST_ID] = request_id
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        response = await handler(request)
    except DomainError as exc:
        response = error(exc.message, status=exc.status, code=exc.code, details=exc.details)
        if isinstance(exc, Unauthorized):
            app[keys.METRICS].auth_failures.labels(exc.code).inc()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = STATUS_MESSAGES.get(exc.status, exc.reason)
        if exc.status in (404, 405):
            message = f"{message}: {request.method} {request.path}"
        response = error(message, status=exc.status, code=exc.reason.lower().replace(" ", "_"))
        if exc.status == 405:
            allow = exc.headers.get("Allow")
            if allow:
                response.headers["Allow"] = allow
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception(
            "unhandled error in %s %s (request %s)", request.method, request.path, request_id
        )
        response = error(
            "Internal server error", status=500, code="internal_error", request_id=request_id
        )
    elapsed = time.perf_counter() - started
    response.headers["X-Request-ID"] = request_id
    app[keys.METRICS].observe(request.method, _route_name(request), response.status, elapsed)
    settings = app[keys.SETTINGS]
    if settings.ENABLE_PERFORMANCE_LOGGING and elapsed > 1.0:
        log.warning("slow request %s %s took %.0f ms", request.method, request.path, elapsed * 1000)
    if origin is not None:
        cors.decorate(request, origin, response)
    return response


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admission, step by step; a step either passes or answers/raises for the request.
    Each step has a synchronous fast path so the common request awaits nothing here."""
    # 1. rate limit - before auth: brute force costs only a counter
    if not request.path.startswith(RATE_LIMIT_EXEMPT) and request.method != "OPTIONS":
        refused = await rate_limit(request)
        if refused is not None:
            return refused
    # 2. authenticate - bearer JWT or X-API-Key -> Principal (cached, no DB trip)
    if not authenticate_from_cache(request):
        await authenticate(request)
    # 3. tenant - X-Tenant-ID / ?tenant_id= -> UUID; 403 for foreign tenants
    named = named_tenant(request)
    if named:
        await tenant(request, named)
    # 4. read-only guard - PRODUCTION_READONLY: refuse mutations, allow login
    readonly_guard(request)
    return await handler(request)


async def rate_limit(request: web.Request) -> web.Response | None:
    app = request.app
    settings = app[keys.SETTINGS]
    if request.path in AUTH_LIMITED:
        bucket, limit = "auth", settings.AUTH_RATE_LIMIT_MAX
    else:
        bucket, limit = "api", settings.RATE_LIMIT_MAX
    client = client_address(request)
    verdict = await app[keys.RATE_LIMITER].hit(
        bucket, client, limit=limit, window_ms=settings.RATE_LIMIT_WINDOW_MS
    )
    if not verdict.allowed:
        app[keys.METRICS].rate_limited.labels(bucket).inc()
        log.warning("[WARN] Rate limit exceeded for IP %s", client)
        return error(
            TOO_MANY,
            status=429,
            retryAfter=verdict.retry_after,
            headers={"Retry-After": str(verdict.retry_after)},
        )
    return None


def _api_key_action(method: str) -> str:
    return {
        "GET": "read",
        "HEAD": "read",
        "POST": "create",
        "PUT": "update",
        "PATCH": "update",
        "DELETE": "delete",
    }.get(method, "read")


def authenticate_from_cache(request: web.Request) -> bool:
    """Settle authentication without awaiting when possible: unmatched routes, public routes
    without credentials, and bearer tokens whose session state is cached.  False means the
    full (awaiting, logging) path must run."""
    info = request.match_info
    if info.http_exception is not None:
        return True
    endpoint = endpoint_of(info.handler)
    public = (endpoint is not None and not endpoint.auth) or (
        endpoint is None and request.path.startswith("/api-docs")
    )
    header = request.headers.get("Authorization", "")
    if public and not header and "X-API-Key" not in request.headers:
        return True
    if header[:7].lower() != "bearer ":
        return False
    try:
        principal = request.app[keys.AUTH_GATE].cached_principal_for_token(header[7:].strip())
    except DomainError:
        return False
    if principal is None:
        return False
    request[keys.PRINCIPAL] = principal
    return True


async def authenticate(request: web.Request) -> None:
    info = request.match_info
    if info.http_exception is not None:
        return  # 404/405 are answered as such, not as 401
    endpoint = endpoint_of(info.handler)
    public = (endpoint is not None and not endpoint.auth) or (
        endpoint is None and request.path.startswith("/api-docs")
    )
    header = request.headers.get("Authorization", "")
    api_key = request.headers.get("X-API-Key")
    if public:
        # Credentials on a public route are honoured when valid (a signed-in caller is known
        # to the handler) and ignored when not: a stale token must not break login/refresh.
        if header or api_key:
            with contextlib.suppress(DomainError):
                request[keys.PRINCIPAL] = await _principal(request, endpoint, header, api_key)
        return
    try:
        principal = await _principal(request, endpoint, header, api_key)
    except Unauthorized as exc:
        request.app[keys.SYSTEM_LOG].write(
            LogEntry(
                level="warn",
                source="auth",
                message=f"Authentication failed for {request.method} {request.path}: {exc.message}",
                ip_address=client_address(request),
                metadata={"code": exc.code, "path": request.path},
            )
        )
        raise
    request[keys.PRINCIPAL] = principal


async def _principal(
    request: web.Request, endpoint: Endpoint | None, header: str, api_key: str | None
) -> Principal:
    gate = request.app[keys.AUTH_GATE]
    if header[:7].lower() == "bearer " and header[7:].strip():
        token = header[7:].strip()
        # the cache answers almost every request without an await
        return gate.cached_principal_for_token(token) or await gate.principal_for_token(token)
    if api_key:
        principal = await gate.principal_for_api_key(api_key.strip())
        if endpoint is not None and endpoint.extra.get("any_api_key"):
            return principal  # e.g. /api/auth/me: a key may always ask what it is
        resource = (endpoint.extra.get("resource") if endpoint else None) or (
            endpoint.tags[0] if endpoint and endpoint.tags else "api"
        )
        action = (endpoint.extra.get("action") if endpoint else None) or _api_key_action(
            request.method
        )
        if not principal.key_allows(action, resource):
            raise PermissionDenied(
                f"API key lacks permission {action}:{resource}", code="api_key_scope"
            )
        return principal
    raise Unauthorized("Authentication required", code="auth_required")


def named_tenant(request: web.Request) -> str | None:
    """The tenant an authenticated request names in `X-Tenant-ID` or `?tenant_id=`."""
    if keys.PRINCIPAL not in request:
        return None
    # `request.query` parses the query string: look only when there is one
    return request.headers.get("X-Tenant-ID") or (
        request.query.get("tenant_id") if request.query_string else None
    )


async def tenant(request: web.Request, named: str) -> None:
    """A tenant named by header or query is resolved (slug -> UUID) and access-checked here;
    a tenant in a JSON body is checked the same way by `api.context.tenant_for`."""
    principal = request[keys.PRINCIPAL]
    request[keys.REQUESTED_TENANT] = (
        await request.app[keys.TENANT_DIRECTORY].resolve(named)
        if principal.is_superadmin
        else await _own_tenant_only(request, named)
    )


async def _own_tenant_only(request: web.Request, named: str) -> uuid.UUID:
    principal = request[keys.PRINCIPAL]
    own = principal.tenant_id
    if own is not None and named.strip().lower() == str(own):
        return own
    try:
        resolved = await request.app[keys.TENANT_DIRECTORY].resolve(named)
    except DomainError:
        raise PermissionDenied(TENANT_ACCESS_DENIED, code="tenant_access_denied") from None
    if resolved != own:
        raise PermissionDenied(TENANT_ACCESS_DENIED, code="tenant_access_denied")
    return resolved


def readonly_guard(request: web.Request) -> None:
    if (
        request.method not in SAFE_METHODS
        and request.app[keys.SETTINGS].PRODUCTION_READONLY
        and request.path not in READONLY_ALLOWED
        and request.match_info.http_exception is None
    ):
        raise PermissionDenied(READONLY_MESSAGE, code="read_only")
