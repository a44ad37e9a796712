"""PRODUCTION_READONLY=true: every mutation is refused with a clear 403 and writes nothing;
reads, signing in and out, and diagnostics keep working."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.db.base import Base
from aisha_server.db.models import User
from aisha_server.errors import READONLY_MESSAGE
from aisha_server.middlewares import READONLY_ALLOWED, SAFE_METHODS
from tests.factories import bearer, login, make_tenant, make_user

# written by signing in (allowed) and by the request log
SIGN_IN_TABLES = {"auth_sessions", "auth_refresh_tokens", "system_logs", "users"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"PRODUCTION_READONLY": True}


async def snapshot(app: web.Application) -> dict[str, Any]:
    """Row counts (and version sums) of every table, plus who can log in with what."""

    def read(session: Session) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for table in Base.metadata.sorted_tables:
            if table.name in SIGN_IN_TABLES:
                continue
            columns = [func.count()]
            if "version" in table.c:
                columns.append(func.coalesce(func.sum(table.c.version), 0))
            state[table.name] = tuple(session.execute(select(*columns).select_from(table)).one())
        state["users"] = sorted(
            (str(u.id), u.email, u.password_hash, u.status, u.role, u.deleted_at)
            for u in session.scalars(select(User))
        )
        return state

    return await app[keys.DB].run(read, system=True, write=False)


def mutating_routes(app: web.Application) -> list[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method in SAFE_METHODS or route.method == "*" or path in READONLY_ALLOWED:
            continue
        found.add((route.method, re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)))
    return sorted(found)


async def test_every_mutation_is_refused_and_nothing_is_written(client: Any, app: Any) -> None:
    tenant = await make_tenant(app)
    admin = await make_user(app, role="superadmin")
    await make_user(app, role="admin", tenant_id=tenant.id)
    headers = bearer((await login(client, admin.email, admin.password))["token"])
    routes = mutating_routes(app)
    # the auth module alone has these; other modules add theirs as they grow
    assert ("POST", "/api/auth/forgot-password") in routes
    assert ("POST", "/api/auth/reset-password") in routes
    assert ("POST", "/api/auth/accept-invitation") in routes

    before = await snapshot(app)
    for method, path in routes:
        resp = await client.request(
            method, path, json={"name": "x", "email": "x@example.com"}, headers=headers
        )
        body = await resp.json()
        assert resp.status == 403, (method, path, body)
        assert body == {"status": "error", "message": READONLY_MESSAGE, "code": "read_only"}
    await app[keys.MAILER].drain()
    await app[keys.SYSTEM_LOG].flush()
    assert await snapshot(app) == before


async def test_sign_in_reads_and_diagnostics_still_work(client: Any, app: Any) -> None:
    tenant = await make_tenant(app)
    user = await make_user(app, role="admin", tenant_id=tenant.id)

    data = await login(client, user.email, user.password)
    resp = await client.post("/api/auth/refresh", json={"refresh_token": data["refresh_token"]})
    assert resp.status == 200
    data = (await resp.json())["data"]
    headers = bearer(data["token"])
    assert (await client.get("/api/auth/me", headers=headers)).status == 200
    assert (await client.get("/api/system/metrics", headers=headers)).status == 200
    resp = await client.post("/api/system/diagnostics", headers=headers)
    assert resp.status == 200
    assert (await resp.json())["data"]["config"]["readonly"] is True

    resp = await client.post("/api/auth/logout", headers=headers)
    assert resp.status == 200
    assert (await client.get("/api/auth/me", headers=headers)).status == 401


async def test_anonymous_callers_gain_nothing(client: Any) -> None:
    # what read-only mode allows still needs its usual authentication
    resp = await client.post("/api/system/diagnostics")
    assert resp.status == 401
    resp = await client.post("/api/auth/logout")
    assert resp.status == 401
    # public mutations are refused by the guard itself
    resp = await client.post("/api/auth/forgot-password", json={"email": "a@example.com"})
    assert resp.status == 403
    assert (await resp.json())["code"] == "read_only"
