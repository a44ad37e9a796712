"""Sessions for the user and employee tests, minted through the data layer.

The tests of /api/users and /api/employees need authenticated callers but must not depend
on the login endpoint: a real `auth_sessions` row plus an access token signed by the app's
own `TokenService` is exactly what a login produces for the auth gate.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.auth.roles import Role
from aisha_server.db.base import utcnow
from aisha_server.db.models import AuthSession, User
from tests.factories import SeededUser, bearer


async def open_session(app: web.Application, user: SeededUser) -> tuple[uuid.UUID, str]:
    """(session id, access token) of a fresh login session of `user`."""

    def write(session: Session) -> uuid.UUID:
        row = AuthSession(
            user_id=user.id, tenant_id=user.tenant_id, expires_at=utcnow() + timedelta(days=1)
        )
        session.add(row)
        session.flush()
        return row.id

    session_id = await app[keys.DB].run(write, system=True)
    token, _ = app[keys.TOKENS].issue_access(
        user_id=user.id, tenant_id=user.tenant_id, role=Role(user.role), session_id=session_id
    )
    return session_id, token


async def auth(app: web.Application, user: SeededUser) -> dict[str, str]:
    _, token = await open_session(app, user)
    return bearer(token)


async def user_row(app: web.Application, user_id: uuid.UUID) -> User | None:
    return await app[keys.DB].run(lambda s: s.get(User, user_id), system=True, write=False)


async def user_by_email(app: web.Application, email: str) -> User | None:
    return await app[keys.DB].run(
        lambda s: s.scalar(select(User).where(User.email == email)), system=True, write=False
    )


async def rows(app: web.Application, stmt: Any) -> list[Any]:
    return await app[keys.DB].run(lambda s: list(s.scalars(stmt).all()), system=True, write=False)
