"""The composition root of the server: `create_app(settings)` builds everything once.

Used by `aisha-server serve`, by the desktop's bundled server and by the tests
(`aiohttp_client(create_app(settings))`).  No module-level state: all of it hangs off the
application under the typed keys of `keys.py`, and everything with a lifetime is opened and
closed in `cleanup_ctx`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from aiohttp import web

from aisha_server import cors, keys, middlewares
from aisha_server.api import (
    api_keys,
    auth,
    care,
    care_triggers,
    custom_fields,
    employees,
    entity_labels,
    module_settings,
    permissions,
    record_io,
    records,
    sync,
    system,
    tenants,
    timeline,
    users,
)
from aisha_server.api import docs as api_docs
from aisha_server.auth.gate import AuthGate
from aisha_server.auth.passwords import PasswordHashing
from aisha_server.auth.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from aisha_server.auth.tokens import TokenService
from aisha_server.config import Settings
from aisha_server.db.changelog import NOTIFY_CHANNEL
from aisha_server.db.uow import Database, PostgresDatabase, open_database
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
from aisha_server.services.sync import SyncNotifier, SyncService, parse_notification
from aisha_server.services.system import SystemService
from aisha_server.services.system_log import LogEntry, SystemLogWriter
from aisha_server.services.tenant_directory import TenantDirectory
from aisha_server.services.tenants import TenantService
from aisha_server.services.timeline import TimelineService
from aisha_server.services.users import UserService
from aisha_server.webhooks import http as outbound_http
from aisha_server.webhooks.delivery import TriggerDeliveries
from aisha_server.workers import care_scan as care_scan_worker
from aisha_server.workers import care_triggers as care_trigger_worker

log = logging.getLogger("aisha.server")

ROUTE_MODULES = (
    system,
    auth,
    tenants,
    users,
    employees,
    api_keys,
    permissions,
    entity_labels,
    module_settings,
    custom_fields,
    timeline,
    record_io,
    sync,
    records,
    care,
    care_triggers,
    api_docs,
)


def create_app(settings: Settings, *, database: Database | None = None) -> web.Application:
    if not settings.JWT_SECRET:
        raise ValueError("create_app needs settings.JWT_SECRET (the CLI generates one for --dev)")
    app = web.Application(
        # Order matters, outermost first:
        # Order matters, outermost first.  `guard` runs its admission steps in this order:
        # rate limit (before auth: brute force costs only a counter) -> authenticate (bearer
        # JWT or X-API-Key, cached, no DB trip) -> tenant (X-Tenant-ID / ?tenant_id= -> UUID,
        # 403 for foreign tenants) -> read-only guard (PRODUCTION_READONLY).
        middlewares=[
            middlewares.observe,  # CORS, request id, metrics, timing, the one error envelope
            middlewares.guard,  # admission: rate limit -> auth -> tenant -> read-only
        ],
        client_max_size=max(settings.AISHA_MAX_BODY_BYTES, settings.AISHA_MAX_UPLOAD_BYTES),
    )
    db = database or open_database(
        database_url=settings.DATABASE_URL,
        sqlite_path=settings.sqlite_path,
        app_role=settings.AISHA_DB_APP_ROLE,
        pool_size=settings.AISHA_DB_POOL_SIZE,
        readers=settings.AISHA_SQLITE_READERS,
        sqlite_mmap_bytes=settings.AISHA_SQLITE_MMAP_MB * 1024 * 1024,
    )
    metrics = Metrics()
    tokens = TokenService(
        settings.JWT_SECRET, access_ttl=timedelta(seconds=settings.ACCESS_TOKEN_TTL_SECONDS)
    )
    passwords = PasswordHashing()
    gate = AuthGate(db, tokens)
    limiter: RateLimiter = (
        RedisRateLimiter(settings.REDIS_URL) if settings.REDIS_URL else MemoryRateLimiter()
    )
    mailer = Mailer(settings)
    system_log = SystemLogWriter(db)
    directory = TenantDirectory(db)

    app[keys.SETTINGS] = settings
    app[keys.CORS_ORIGINS] = cors.allowed_origins_for(settings)
    app[keys.REQUEST_IDS] = middlewares.request_id_source()
    app[keys.DB] = db
    app[keys.METRICS] = metrics
    app[keys.TOKENS] = tokens
    app[keys.PASSWORDS] = passwords
    app[keys.AUTH_GATE] = gate
    app[keys.RATE_LIMITER] = limiter
    app[keys.MAILER] = mailer
    app[keys.SYSTEM_LOG] = system_log
    app[keys.TENANT_DIRECTORY] = directory
    app[keys.STARTED_AT] = time.time()

    app[keys.SYSTEM_SERVICE] = SystemService(settings, db, metrics)
    app[keys.AUTH_SERVICE] = AuthService(settings, db, tokens, passwords, gate, mailer, system_log)
    module_settings_service = ModuleSettingsService(db)
    app[keys.TENANT_SERVICE] = TenantService(
        settings, db, directory, gate, on_modules_changed=module_settings_service.forget
    )
    app[keys.USER_SERVICE] = UserService(settings, db, passwords, gate, mailer)
    app[keys.EMPLOYEE_SERVICE] = EmployeeService(db, gate)
    app[keys.API_KEY_SERVICE] = ApiKeyService(db, gate)
    app[keys.PERMISSION_SERVICE] = PermissionService(db, gate)
    app[keys.ENTITY_LABEL_SERVICE] = EntityLabelService(db)
    app[keys.MODULE_SETTINGS_SERVICE] = module_settings_service
    app[keys.CUSTOM_FIELD_SERVICE] = CustomFieldService(db)
    # C.A.R.E. reads the activities and notes operators log (escalation detection)
    app[keys.CARE_SERVICE] = CareService(settings, db)
    app[keys.RECORD_SERVICE] = RecordService(
        db,
        app[keys.CUSTOM_FIELD_SERVICE],
        app[keys.MODULE_SETTINGS_SERVICE],
        communications=app[keys.CARE_SERVICE].communication_in,
    )
    app[keys.VALIDATION_POOL] = ValidationPool()
    app[keys.RECORD_IO_SERVICE] = RecordIOService(
        db,
        app[keys.RECORD_SERVICE],
        app[keys.CUSTOM_FIELD_SERVICE],
        app[keys.MODULE_SETTINGS_SERVICE],
        record_io.model_for,
        app[keys.VALIDATION_POOL],
    )
    app[keys.IMPORT_JOBS] = ImportJobs()
    app[keys.TIMELINE_SERVICE] = TimelineService(db, app[keys.RECORD_SERVICE])
    notifier = SyncNotifier()
    db.on_commit = notifier.publish
    app[keys.SYNC_NOTIFIER] = notifier
    app[keys.SYNC_SERVICE] = SyncService(
        db,
        app[keys.RECORD_SERVICE],
        modules=module_settings_service,
        retention=timedelta(days=settings.AISHA_SYNC_RETENTION_DAYS),
    )

    app[keys.HTTP] = outbound_http.OutboundHttp()
    app[keys.CARE_TRIGGER_DELIVERIES] = TriggerDeliveries(db)
    app[keys.CARE_TRIGGER_WORKER] = care_trigger_worker.CareTriggerWorker(
        settings, db, app[keys.HTTP]
    )

    for module in ROUTE_MODULES:
        app.router.add_routes(module.routes.table)
    api_docs.setup(app)

    # started in this order, stopped in reverse: the trigger worker stops before the HTTP
    # client closes, and both before _lifecycle closes the database
    app.cleanup_ctx.append(_lifecycle)
    app.cleanup_ctx.append(outbound_http.lifespan)
    app.cleanup_ctx.append(care_trigger_worker.lifespan)
    app.cleanup_ctx.append(care_scan_worker.lifespan)
    return app


async def _flush_key_usage(gate: AuthGate, interval: float = 30.0) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await gate.flush_key_usage()
        except Exception:  # never let bookkeeping take the server down
            log.exception("could not record API key usage")


async def _maintain(app: web.Application, interval: float = 6 * 3600.0) -> None:
    """At start and every few hours: drop sync history and C.A.R.E. audit entries older than
    their retention and refresh the query planner's statistics (SQLite)."""
    while True:
        try:
            removed = await app[keys.SYNC_SERVICE].prune()
            if removed:
                log.info("pruned %d sync changes past retention", removed)
        except Exception:
            log.exception("could not prune the sync change log")
        try:
            removed = await app[keys.CARE_SERVICE].prune()
            if removed:
                log.info("pruned %d C.A.R.E. audit entries past retention", removed)
        except Exception:
            log.exception("could not prune the C.A.R.E. audit log")
        try:
            await app[keys.DB].analyze()
        except Exception:
            log.exception("could not refresh the database statistics")
        await asyncio.sleep(interval)


async def _listen_for_changes(app: web.Application) -> Any:
    """PostgreSQL: LISTEN on the change log's channel, so commits of every server instance
    reach this instance's sync streams.  Returns the connection to close (None on SQLite)."""
    db = app[keys.DB]
    if not isinstance(db, PostgresDatabase):
        return None
    notifier = app[keys.SYNC_NOTIFIER]
    import asyncpg

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        notifier.publish(parse_notification(payload))

    url = db.url.set(drivername="postgresql")
    try:
        connection = await asyncpg.connect(url.render_as_string(hide_password=False))
        await connection.add_listener(NOTIFY_CHANNEL, on_notify)
    except Exception:
        log.exception("could not LISTEN for sync changes; streams see this instance only")
        return None
    return connection


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Open background helpers, record the start, and on shutdown close in reverse order."""
    mailer = app[keys.MAILER]
    system_log = app[keys.SYSTEM_LOG]
    await mailer.start()
    await system_log.start()
    system_log.write(
        LogEntry(
            level="info",
            source="server",
            message="Server started",
            metadata={"database": app[keys.DB].dialect},
        )
    )
    usage = asyncio.create_task(_flush_key_usage(app[keys.AUTH_GATE]), name="aisha-key-usage")
    prune = asyncio.create_task(_maintain(app), name="aisha-maintenance")
    listener = await _listen_for_changes(app)
    try:
        yield
    finally:
        for task in (usage, prune):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if listener is not None:
            await listener.close()
        try:
            await app[keys.AUTH_GATE].flush_key_usage()
        except Exception:
            log.exception("could not record API key usage at shutdown")
        system_log.write(LogEntry(level="info", source="server", message="Server stopping"))
        await mailer.stop()
        await system_log.stop()
        await app[keys.RATE_LIMITER].close()
        app[keys.PASSWORDS].close()
        await app[keys.IMPORT_JOBS].close()  # running imports roll back
        await asyncio.to_thread(app[keys.VALIDATION_POOL].shutdown)
        await app[keys.DB].close()
