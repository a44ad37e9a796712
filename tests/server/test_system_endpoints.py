"""Diagnostics, metrics, the Prometheus endpoint and system_logs (guide 10.2, Appendix B)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.app import create_app
from aisha_server.auth.roles import Role
from aisha_server.auth.tokens import digest, new_secret
from aisha_server.config import Settings
from aisha_server.db import migrate
from aisha_server.db.models import ApiKey, Permission, RolePermission, SystemLog
from tests.factories import bearer, make_tenant, make_user, token_for

OPERATOR_ONLY = [("POST", "/api/system/diagnostics"), ("GET", "/api/system/metrics")]


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("deliberate failure for the error-rate test")


@pytest.fixture
def app(settings: Settings) -> web.Application:
    application = create_app(settings)
    # a route that fails, so the error rate has something to count (no Endpoint metadata
    # means no auth, like the docs pages)
    application.router.add_get("/api-docs/boom", _boom)
    return application


async def _headers(app: web.Application, role: str, **kwargs: Any) -> dict[str, str]:
    tenant_id = kwargs.pop("tenant_id", None)
    if role != "superadmin" and tenant_id is None:
        tenant_id = (await make_tenant(app)).id
    user = await make_user(app, role=role, tenant_id=tenant_id, **kwargs)
    return bearer(await token_for(app, user))


async def _api_key(
    app: web.Application,
    permissions: list[str],
    *,
    user_id: uuid.UUID | None = None,
    tenant_id: uuid.UUID | None = None,
    expires_at: datetime | None = None,
    revoked: bool = False,
) -> str:
    tenant_id = tenant_id or (await make_tenant(app)).id
    plaintext = new_secret("ak_")

    def write(session: Session) -> None:
        session.add(
            ApiKey(
                key=digest(plaintext),
                key_prefix=plaintext[:8],
                tenant_id=tenant_id,
                user_id=user_id,
                name="monitoring",
                permissions=permissions,
                expires_at=expires_at,
                revoked_at=datetime.now(UTC) if revoked else None,
            )
        )

    await app[keys.DB].run(write, system=True)
    return plaintext


async def _system_logs(app: web.Application, source: str) -> list[SystemLog]:
    await app[keys.SYSTEM_LOG].flush()

    def read(session: Session) -> list[SystemLog]:
        rows = session.scalars(
            select(SystemLog).where(SystemLog.source == source).order_by(SystemLog.created_at)
        ).all()
        for row in rows:
            session.expunge(row)
        return list(rows)

    result: list[SystemLog] = await app[keys.DB].run(read, system=True, write=False)
    return result


# -- who may ask -------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), OPERATOR_ONLY)
async def test_operator_endpoints_need_authentication(client: Any, method: str, path: str) -> None:
    resp = await client.request(method, path)
    assert resp.status == 401
    body = await resp.json()
    assert body["status"] == "error"
    assert body["code"] == "auth_required"


@pytest.mark.parametrize(("method", "path"), OPERATOR_ONLY)
@pytest.mark.parametrize("role", ["employee", "manager", "support"])
async def test_operator_endpoints_refuse_non_admins(
    client: Any, started_app: web.Application, method: str, path: str, role: str
) -> None:
    headers = await _headers(started_app, role)
    resp = await client.request(method, path, headers=headers)
    assert resp.status == 403
    body = await resp.json()
    assert body["status"] == "error"
    assert body["code"] == "forbidden"


@pytest.mark.parametrize(("method", "path"), OPERATOR_ONLY)
@pytest.mark.parametrize("role", ["admin", "superadmin"])
async def test_operator_endpoints_allow_admins(
    client: Any, started_app: web.Application, method: str, path: str, role: str
) -> None:
    headers = await _headers(started_app, role)
    resp = await client.request(method, path, headers=headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "success"


async def test_custom_system_read_grant_opens_diagnostics(
    client: Any, started_app: web.Application
) -> None:
    def grant(session: Session) -> None:
        permission = Permission(name="system.read", resource="system", action="read")
        session.add(permission)
        session.flush()
        session.add(RolePermission(role="ops", permission_id=permission.id))

    await started_app[keys.DB].run(grant, system=True)
    headers = await _headers(started_app, "employee", custom_roles=["ops"])
    resp = await client.post("/api/system/diagnostics", headers=headers)
    assert resp.status == 200
    plain = await _headers(started_app, "employee", custom_roles=["other"])
    resp = await client.post("/api/system/diagnostics", headers=plain)
    assert resp.status == 403


@pytest.mark.parametrize(("method", "path"), OPERATOR_ONLY)
async def test_expired_and_forged_tokens_are_refused(
    client: Any, started_app: web.Application, method: str, path: str
) -> None:
    tenant = await make_tenant(started_app)
    admin = await make_user(started_app, role="admin", tenant_id=tenant.id)
    token, _ = started_app[keys.TOKENS].issue_access(
        user_id=admin.id,
        tenant_id=tenant.id,
        role=Role.ADMIN,
        session_id=uuid.uuid4(),
        now=datetime.now(UTC) - timedelta(days=2),
    )
    resp = await client.request(method, path, headers=bearer(token))
    assert resp.status == 401
    assert (await resp.json())["code"] == "token_expired"
    good = await token_for(started_app, admin)
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    resp = await client.request(method, path, headers=bearer(forged))
    assert resp.status == 401
    assert (await resp.json())["code"] == "invalid_token"


# -- what they answer --------------------------------------------------------------------------


async def test_diagnostics_payload(client: Any, started_app: web.Application, backend: str) -> None:
    headers = await _headers(started_app, "admin")
    resp = await client.post("/api/system/diagnostics", headers=headers)
    assert resp.status == 200
    data = (await resp.json())["data"]
    database = data["database"]
    assert database["ok"] is True
    assert database["error"] is None
    assert database["backend"] == ("sqlite" if backend == "sqlite" else "postgresql")
    assert database["schema_up_to_date"] is True
    assert database["schema_revision"] == migrate.head_revision()
    assert database["latency_ms"] >= 0
    assert database["pool"]["backend"] == database["backend"]
    assert data["memory"]["rss_bytes"] > 1_000_000
    assert data["runtime"]["version"]
    assert data["config"]["rate_limit"]["max"] == 100_000


async def test_metrics_count_requests_latency_and_errors(
    client: Any, started_app: web.Application
) -> None:
    headers = await _headers(started_app, "superadmin")
    first = (await (await client.get("/api/system/metrics", headers=headers)).json())["data"]
    for key in ("requests", "latency_ms", "error_rate", "database_pool", "memory"):
        assert key in first, key

    for _ in range(20):
        assert (await client.get("/health")).status == 200
    assert (await client.get("/api/status")).status == 200
    assert (await client.get("/api-docs/boom")).status == 500

    resp = await client.get("/api/system/metrics", headers=headers)
    data = (await resp.json())["data"]
    # 20 health checks + status + the failure + the first metrics call itself
    assert data["requests"]["total"] >= first["requests"]["total"] + 23
    assert data["requests"]["errors_total"] == first["requests"]["errors_total"] + 1
    window = data["requests"]["last_minute"]
    assert window["requests"] >= 23
    assert window["errors"] == 1
    assert 0 < data["error_rate"] < 0.1
    latency = data["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert data["memory"]["rss_bytes"] > 0
    assert data["database_pool"]["backend"] in ("sqlite", "postgresql")


# -- Prometheus --------------------------------------------------------------------------------


async def test_prometheus_needs_credentials(client: Any, started_app: web.Application) -> None:
    assert (await client.get("/metrics")).status == 401
    employee = await _headers(started_app, "employee")
    assert (await client.get("/metrics", headers=employee)).status == 403


async def test_prometheus_text_for_admin(client: Any, started_app: web.Application) -> None:
    await client.get("/health")
    headers = await _headers(started_app, "admin")
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await resp.text()
    assert "# TYPE aisha_http_requests_total counter" in text
    assert 'aisha_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert 'aisha_http_request_duration_seconds_bucket{le="0.005",route="/health"}' in text
    assert "process_resident_memory_bytes" in text


async def test_prometheus_counts_auth_failures(client: Any, started_app: web.Application) -> None:
    await client.get("/api/system/metrics", headers=bearer("forged.token.value"))
    headers = await _headers(started_app, "admin")
    text = await (await client.get("/metrics", headers=headers)).text()
    assert 'aisha_auth_failures_total{reason="invalid_token"} 1.0' in text


async def test_prometheus_with_api_key(client: Any, started_app: web.Application) -> None:
    key = await _api_key(started_app, ["read:metrics"])
    resp = await client.get("/metrics", headers={"X-API-Key": key})
    assert resp.status == 200
    assert "aisha_http_requests_total" in await resp.text()

    # wildcard scope works too
    key = await _api_key(started_app, ["read:*"])
    assert (await client.get("/metrics", headers={"X-API-Key": key})).status == 200

    # a key for something else is refused for its scope, and nothing is exposed
    other = await _api_key(started_app, ["read:contacts"])
    resp = await client.get("/metrics", headers={"X-API-Key": other})
    assert resp.status == 403
    body = await resp.json()
    assert body["code"] == "api_key_scope"
    assert "aisha_http" not in str(body)

    # the key acts with its owner's role: an employee's key cannot read metrics
    tenant = await make_tenant(started_app)
    employee = await make_user(started_app, role="employee", tenant_id=tenant.id)
    owned = await _api_key(started_app, ["read:metrics"], user_id=employee.id, tenant_id=tenant.id)
    assert (await client.get("/metrics", headers={"X-API-Key": owned})).status == 403


async def test_prometheus_refuses_bad_api_keys(client: Any, started_app: web.Application) -> None:
    revoked = await _api_key(started_app, ["read:metrics"], revoked=True)
    resp = await client.get("/metrics", headers={"X-API-Key": revoked})
    assert resp.status == 401
    assert (await resp.json())["code"] == "api_key_revoked"

    expired = await _api_key(
        started_app, ["read:metrics"], expires_at=datetime.now(UTC) - timedelta(minutes=1)
    )
    resp = await client.get("/metrics", headers={"X-API-Key": expired})
    assert resp.status == 401
    assert (await resp.json())["code"] == "api_key_expired"

    resp = await client.get("/metrics", headers={"X-API-Key": "ak_" + "x" * 40})
    assert resp.status == 401
    assert (await resp.json())["code"] == "invalid_api_key"


# -- system_logs -------------------------------------------------------------------------------


async def test_startup_is_logged(client: Any, started_app: web.Application, backend: str) -> None:
    rows = await _system_logs(started_app, "server")
    started = [r for r in rows if r.message == "Server started"]
    assert len(started) == 1
    assert started[0].level == "info"
    assert started[0].tenant_id is None
    assert started[0].metadata_["database"] == ("sqlite" if backend == "sqlite" else "postgresql")


async def test_auth_failures_are_logged(client: Any, started_app: web.Application) -> None:
    assert await _system_logs(started_app, "auth") == []
    resp = await client.post("/api/system/diagnostics", headers=bearer("forged.jwt.token"))
    assert resp.status == 401
    resp = await client.get("/metrics", headers={"X-API-Key": "ak_unknown"})
    assert resp.status == 401

    rows = await _system_logs(started_app, "auth")
    assert len(rows) == 2
    forged, unknown_key = rows
    assert forged.level == "warn"
    assert "POST /api/system/diagnostics" in forged.message
    assert forged.metadata_ == {"code": "invalid_token", "path": "/api/system/diagnostics"}
    assert forged.ip_address == "127.0.0.1"
    assert unknown_key.metadata_["code"] == "invalid_api_key"
    # the secret itself is never written to the log
    assert "forged.jwt.token" not in forged.message
    assert "ak_unknown" not in unknown_key.message


async def test_successful_and_public_requests_are_not_logged_as_auth_failures(
    client: Any, started_app: web.Application
) -> None:
    headers = await _headers(started_app, "admin")
    assert (await client.post("/api/system/diagnostics", headers=headers)).status == 200
    assert (await client.get("/health")).status == 200
    assert await _system_logs(started_app, "auth") == []
