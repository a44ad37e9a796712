"""Bearer headers for seeded users without the login endpoint: a real login session row and
an access token signed by the app's own TokenService, so the auth gate checks them exactly
as it checks tokens from /api/auth/login (and tests skip an argon2 verify per user)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.auth.roles import Role
from aisha_server.db.base import utcnow
from aisha_server.db.models import AuthSession
from tests.factories import SeededUser, bearer, make_user


async def token_headers(app: Any, user: SeededUser) -> dict[str, str]:
    def write(session: Session) -> Any:
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
    return bearer(token)


async def user_with_headers(
    app: Any, role: str, tenant_id: Any = None, **kwargs: Any
) -> tuple[SeededUser, dict[str, str]]:
    user = await make_user(app, role=role, tenant_id=tenant_id, **kwargs)
    return user, await token_headers(app, user)
