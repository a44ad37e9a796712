"""Every typed key of the server's shared state (STYLE 3): nothing is stored under a string."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from aisha_server.api.openapi import OpenApiCache
    from aisha_server.auth.gate import AuthGate
    from aisha_server.auth.passwords import PasswordHashing
    from aisha_server.auth.principal import Principal
    from aisha_server.auth.ratelimit import RateLimiter
    from aisha_server.auth.tokens import TokenService
    from aisha_server.config import Settings
    from aisha_server.db.uow import Database
    from aisha_server.mail import Mailer
    from aisha_server.metrics import Metrics
    from aisha_server.services.api_keys import ApiKeyService
    from aisha_server.services.auth import AuthService
    from aisha_server.services.care import CareService
    from aisha_server.services.custom_fields import CustomFieldService
    from aisha_server.services.employees import EmployeeService
    from aisha_server.services.entity_labels import EntityLabelService
    from aisha_server.services.import_jobs import ImportJobs
    from aisha_server.services.module_settings import ModuleSettingsService
    from aisha_server.services.permissions import PermissionService
    from aisha_server.services.record_io import RecordIOService, ValidationPool
    from aisha_server.services.records import RecordService
    from aisha_server.services.sync import SyncNotifier, SyncService
    from aisha_server.services.system import SystemService
    from aisha_server.services.system_log import SystemLogWriter
    from aisha_server.services.tenant_directory import TenantDirectory
    from aisha_server.services.tenants import TenantService
    from aisha_server.services.timeline import TimelineService
    from aisha_server.services.users import UserService
    from aisha_server.webhooks.delivery import TriggerDeliveries
    from aisha_server.webhooks.http import OutboundHttp
    from aisha_server.workers.care_triggers import CareTriggerWorker

# -- application state ---------------------------------------------------------------------
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
DB: web.AppKey[Database] = web.AppKey("db")
TOKENS: web.AppKey[TokenService] = web.AppKey("tokens")
PASSWORDS: web.AppKey[PasswordHashing] = web.AppKey("passwords")
AUTH_GATE: web.AppKey[AuthGate] = web.AppKey("auth_gate")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
MAILER: web.AppKey[Mailer] = web.AppKey("mailer")
SYSTEM_LOG: web.AppKey[SystemLogWriter] = web.AppKey("system_log")
STARTED_AT: web.AppKey[float] = web.AppKey("started_at")
CORS_ORIGINS: web.AppKey[frozenset[str]] = web.AppKey("cors_origins")
REQUEST_IDS: web.AppKey[Callable[[], str]] = web.AppKey("request_ids")
# the one outbound HTTP client (webhooks, providers), opened in cleanup_ctx
HTTP: web.AppKey[OutboundHttp] = web.AppKey("http")
# the generated OpenAPI document, built on first request
OPENAPI: web.AppKey[OpenApiCache] = web.AppKey("openapi")

# -- services --------------------------------------------------------------------------------
AUTH_SERVICE: web.AppKey[AuthService] = web.AppKey("auth_service")
TENANT_SERVICE: web.AppKey[TenantService] = web.AppKey("tenant_service")
USER_SERVICE: web.AppKey[UserService] = web.AppKey("user_service")
EMPLOYEE_SERVICE: web.AppKey[EmployeeService] = web.AppKey("employee_service")
API_KEY_SERVICE: web.AppKey[ApiKeyService] = web.AppKey("api_key_service")
PERMISSION_SERVICE: web.AppKey[PermissionService] = web.AppKey("permission_service")
SYSTEM_SERVICE: web.AppKey[SystemService] = web.AppKey("system_service")
ENTITY_LABEL_SERVICE: web.AppKey[EntityLabelService] = web.AppKey("entity_label_service")
MODULE_SETTINGS_SERVICE: web.AppKey[ModuleSettingsService] = web.AppKey("module_settings_service")
CUSTOM_FIELD_SERVICE: web.AppKey[CustomFieldService] = web.AppKey("custom_field_service")
RECORD_SERVICE: web.AppKey[RecordService] = web.AppKey("record_service")
RECORD_IO_SERVICE: web.AppKey[RecordIOService] = web.AppKey("record_io_service")
# worker processes checking the rows of large imports (started on first use)
VALIDATION_POOL: web.AppKey[ValidationPool] = web.AppKey("validation_pool")
# imports running in the background (`background=true`), polled at /api/import-jobs/<id>
IMPORT_JOBS: web.AppKey[ImportJobs] = web.AppKey("import_jobs")
TIMELINE_SERVICE: web.AppKey[TimelineService] = web.AppKey("timeline_service")
SYNC_SERVICE: web.AppKey[SyncService] = web.AppKey("sync_service")
SYNC_NOTIFIER: web.AppKey[SyncNotifier] = web.AppKey("sync_notifier")
# C.A.R.E. (chapter 13): status, pause, states, gate, approvals, audit, scans
CARE_SERVICE: web.AppKey[CareService] = web.AppKey("care_service")
# C.A.R.E. workflow triggers (13.6): the outbox's admin side and the delivery worker
CARE_TRIGGER_DELIVERIES: web.AppKey[TriggerDeliveries] = web.AppKey("care_trigger_deliveries")
CARE_TRIGGER_WORKER: web.AppKey[CareTriggerWorker] = web.AppKey("care_trigger_worker")

# -- per request -----------------------------------------------------------------------------
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
# the tenant named by the X-Tenant-ID header or ?tenant_id=, resolved and access-checked
REQUESTED_TENANT: web.RequestKey[uuid.UUID] = web.RequestKey("requested_tenant")
TENANT_DIRECTORY: web.AppKey[TenantDirectory] = web.AppKey("tenant_directory")
