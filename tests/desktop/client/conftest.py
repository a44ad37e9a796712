"""A real AiSHA server on 127.0.0.1 (the app from the shared `app` fixture, run by aiohttp's
TestServer) for the API client to talk to over real HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aisha_desktop.client import ApiClient
from aisha_server import keys
from aisha_server.auth.roles import Role
from aisha_server.db.models import AuthRefreshToken
from tests.factories import SeededUser, make_tenant, make_user


@dataclass
class LiveServer:
    url: str
    app: web.Application
    # POST /api/auth/refresh requests the server received, whatever their outcome
    refresh_requests: list[str] = field(default_factory=list)


@pytest.fixture
async def live(app: web.Application) -> AsyncIterator[LiveServer]:
    seen: list[str] = []

    @web.middleware
    async def count_refreshes(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST" and request.path == "/api/auth/refresh":
            seen.append(request.headers.get("X-Request-ID", ""))
        return await handler(request)

    # outermost, so refused refreshes count too
    app.middlewares.insert(0, count_refreshes)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield LiveServer(str(server.make_url("")).rstrip("/"), app, seen)
    finally:
        # before the database fixture drops the database: shutdown still writes to it
        await server.close()


@pytest.fixture
async def admin(live: LiveServer) -> SeededUser:
    tenant = await make_tenant(live.app)
    return await make_user(live.app, role="admin", tenant_id=tenant.id)


@pytest.fixture
async def api(live: LiveServer) -> AsyncIterator[ApiClient]:
    async with ApiClient(live.url, timeout=10) as client:
        yield client


def expired_access_token(app: web.Application, user: SeededUser, session_id: str) -> str:
    """A correctly signed access token of a real session that expired an hour ago."""
    token, _ = app[keys.TOKENS].issue_access(
        user_id=user.id,
        tenant_id=user.tenant_id,
        role=Role(user.role),
        session_id=uuid.UUID(session_id),
        now=datetime.now(UTC) - timedelta(hours=2),
    )
    return str(token)


async def refresh_tokens_issued(app: web.Application, session_id: str) -> int:
    """Refresh tokens the server minted for a session: one at login, one per rotation."""

    def read(session: Session) -> int:
        query = (
            select(func.count())
            .select_from(AuthRefreshToken)
            .where(AuthRefreshToken.session_id == uuid.UUID(session_id))
        )
        return int(session.scalar(query) or 0)

    count: Any = await app[keys.DB].run(read, system=True, write=False)
    return int(count)
