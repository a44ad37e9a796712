"""Every typed key of the server's shared state (STYLE 3): nothing is stored under a string."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from aisha_server.api.openapi import OpenApiCache

# -- application state ---------------------------------------------------------------------
SETTINGS = web.AppKey("settings", "Settings")
DB = web.AppKey("db", "Database")
TOKENS = web.AppKey("tokens", "TokenService")
PASSWORDS = web.AppKey("passwords", "PasswordHashing")
AUTH_GATE = web.AppKey("auth_gate", "AuthGate")
RATE_LIMITER = web.AppKey("rate_limiter", "RateLimiter")
METRICS = web.AppKey("metrics", "Metrics")
MAILER = web.AppKey("mailer", "Mailer")
SYSTEM_LOG = web.AppKey("system_log", "SystemLogWriter")
STARTED_AT = web.AppKey("started_at", float)
# the generated OpenAPI document, built on first request
OPENAPI: web.AppKey[OpenApiCache] = web.AppKey("openapi")

# -- services --------------------------------------------------------------------------------
AUTH_SERVICE = web.AppKey("auth_service", "AuthService")
TENANT_SERVICE = web.AppKey("tenant_service", "TenantService")
USER_SERVICE = web.AppKey("user_service", "UserService")
EMPLOYEE_SERVICE = web.AppKey("employee_service", "EmployeeService")
API_KEY_SERVICE = web.AppKey("api_key_service", "ApiKeyService")
PERMISSION_SERVICE = web.AppKey("permission_service", "PermissionService")
SYSTEM_SERVICE = web.AppKey("system_service", "SystemService")

# -- per request -----------------------------------------------------------------------------
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", "Principal")
# the tenant named by the X-Tenant-ID header or ?tenant_id=, resolved and access-checked
REQUESTED_TENANT = web.RequestKey("requested_tenant", uuid.UUID)
TENANT_DIRECTORY = web.AppKey("tenant_directory", "TenantDirectory")
