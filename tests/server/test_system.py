"""System endpoints and the error envelope."""

from __future__ import annotations

from datetime import datetime
from typing import Any


async def test_health_is_public_and_timestamped(client: Any) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok"
    assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None


async def test_status_reports_backend_and_database(client: Any, backend: str) -> None:
    resp = await client.get("/api/status")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "success"
    assert body["data"]["backend"] == "ok"
    assert body["data"]["database"] == "ok"
    assert body["data"]["database_backend"] == ("sqlite" if backend == "sqlite" else "postgresql")


async def test_unknown_route_is_404_envelope(client: Any) -> None:
    resp = await client.get("/api/definitely-not-here")
    assert resp.status == 404
    body = await resp.json()
    assert body == {
        "status": "error",
        "message": "Not found: GET /api/definitely-not-here",
        "code": "not_found",
    }


async def test_wrong_method_is_405_envelope(client: Any) -> None:
    resp = await client.delete("/health")
    assert resp.status == 405
    body = await resp.json()
    assert body["status"] == "error"
    assert "Method not allowed" in body["message"]
    assert "GET" in resp.headers["Allow"]


async def test_protected_endpoint_needs_auth(client: Any) -> None:
    resp = await client.post("/api/system/diagnostics")
    assert resp.status == 401
    assert (await resp.json())["message"] == "Authentication required"


async def test_forged_token_is_refused(client: Any) -> None:
    resp = await client.get("/api/system/metrics", headers={"Authorization": "Bearer not.a.jwt"})
    assert resp.status == 401
    assert (await resp.json())["code"] == "invalid_token"


async def test_every_response_has_a_request_id(client: Any) -> None:
    resp = await client.get("/health", headers={"X-Request-ID": "abc123"})
    assert resp.headers["X-Request-ID"] == "abc123"
    first = (await client.get("/nowhere")).headers["X-Request-ID"]
    second = (await client.get("/health")).headers["X-Request-ID"]
    assert first and second and first != second


async def test_shutdown_is_recorded_in_system_logs(client: Any, settings: Any) -> None:
    from sqlalchemy import select

    from aisha_server.db.models import SystemLog
    from aisha_server.db.uow import open_database

    await client.close()  # the app shuts down: its last log rows are flushed
    db = open_database(
        database_url=settings.DATABASE_URL,
        sqlite_path=settings.sqlite_path,
        app_role=settings.AISHA_DB_APP_ROLE,
        pool_size=1,
        readers=1,
    )
    try:
        messages = await db.run(
            lambda s: list(
                s.scalars(select(SystemLog.message).where(SystemLog.source == "server"))
            ),
            system=True,
            write=False,
        )
    finally:
        await db.close()
    assert messages.count("Server started") == 1
    assert messages.count("Server stopping") == 1
