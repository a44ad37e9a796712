"""CORS: allowed origins get their headers (errors included), preflights skip auth."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ALLOWED_ORIGINS": "http://localhost:4000,http://localhost:5173"}


async def test_allowed_origin_is_echoed(client: Any) -> None:
    resp = await client.get("/health", headers={"Origin": "http://localhost:5173"})
    assert resp.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert "X-Request-ID" in resp.headers["Access-Control-Expose-Headers"]


async def test_error_answers_carry_cors_headers_too(client: Any) -> None:
    resp = await client.post("/api/system/diagnostics", headers={"Origin": "http://localhost:4000"})
    assert resp.status == 401
    assert resp.headers["Access-Control-Allow-Origin"] == "http://localhost:4000"


async def test_other_origins_get_nothing(client: Any) -> None:
    resp = await client.get("/health", headers={"Origin": "http://evil.test"})
    assert resp.status == 200
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_preflight_needs_no_credentials(client: Any) -> None:
    ok = await client.options(
        "/api/users",
        headers={"Origin": "http://localhost:4000", "Access-Control-Request-Method": "POST"},
    )
    assert ok.status == 204
    assert "X-API-Key" in ok.headers["Access-Control-Allow-Headers"]
    refused = await client.options(
        "/api/users",
        headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status == 403
