"""Test data written straight through the data layer, so a test of one endpoint does not
depend on the others.  Passwords are hashed with the app's own hasher."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.auth.roles import Role
from aisha_server.db.models import AuthSession, Employee, ModuleSetting, Tenant, User

DEFAULT_PASSWORD = "Str0ng!Passw0rd"


@dataclass(frozen=True)
class SeededUser:
    id: uuid.UUID
    email: str
    password: str
    role: str
    tenant_id: uuid.UUID | None


async def make_tenant(
    app: web.Application,
    name: str | None = None,
    *,
    slug: str | None = None,
    status: str = "active",
) -> Tenant:
    name = name or f"Tenant {uuid.uuid4().hex[:6]}"
    slug = slug or f"t-{uuid.uuid4().hex[:10]}"

    def write(session: Session) -> Tenant:
        tenant = Tenant(
            name=name,
            slug=slug,
            status=status,
            settings={"timezone": "UTC", "currency": "USD", "date_format": "MM/DD/YYYY"},
        )
        session.add(tenant)
        session.flush()
        session.add(
            ModuleSetting(
                tenant_id=tenant.id,
                module_name="opportunities",
                is_enabled=True,
                settings={"stages": ["prospect", "qualified", "proposal", "negotiation", "closed"]},
            )
        )
        return tenant

    return await app[keys.DB].run(write, system=True)


async def make_user(
    app: web.Application,
    *,
    role: str = "employee",
    tenant_id: uuid.UUID | None = None,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    status: str = "active",
    department: str | None = None,
    custom_roles: list[str] | None = None,
    first_name: str = "Test",
    last_name: str = "User",
) -> SeededUser:
    email = (email or f"{role}-{uuid.uuid4().hex[:8]}@example.com").lower()
    hashed = app[keys.PASSWORDS].hash_sync(password)

    def write(session: Session) -> uuid.UUID:
        user = User(
            tenant_id=tenant_id,
            email=email,
            password_hash=hashed,
            role=role,
            status=status,
            first_name=first_name,
            last_name=last_name,
            custom_roles=custom_roles or [],
        )
        session.add(user)
        session.flush()
        if tenant_id is not None:
            session.add(
                Employee(
                    tenant_id=tenant_id,
                    user_id=user.id,
                    email=email,
                    first_name=first_name,
                    last_name=last_name,
                    department=department,
                )
            )
        return user.id

    user_id = await app[keys.DB].run(write, system=True)
    return SeededUser(user_id, email, password, role, tenant_id)


async def login(client: Any, email: str, password: str = DEFAULT_PASSWORD) -> dict[str, Any]:
    """Log in through the API; returns the envelope's data (token, refresh_token, user)."""
    resp = await client.post("/api/auth/login", json={"email": email, "password": password})
    body = await resp.json()
    assert resp.status == 200, body
    return dict(body["data"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def open_session(
    app: web.Application, user: SeededUser, *, ttl_days: int = 1
) -> tuple[uuid.UUID, str]:
    """(session id, access token) of a login session minted without the login endpoint: a
    real `auth_sessions` row plus the app's own token service, so the auth gate accepts it
    exactly like a login's (and tests skip an argon2 verify per user)."""
    expires = datetime.now(UTC) + timedelta(days=ttl_days)

    def write(session: Session) -> uuid.UUID:
        auth = AuthSession(user_id=user.id, tenant_id=user.tenant_id, expires_at=expires)
        session.add(auth)
        session.flush()
        return auth.id

    session_id = await app[keys.DB].run(write, system=True)
    token, _ = app[keys.TOKENS].issue_access(
        user_id=user.id, tenant_id=user.tenant_id, role=Role(user.role), session_id=session_id
    )
    return session_id, str(token)


async def token_for(app: web.Application, user: SeededUser, *, ttl_days: int = 1) -> str:
    return (await open_session(app, user, ttl_days=ttl_days))[1]


async def auth_headers(app: web.Application, user: SeededUser) -> dict[str, str]:
    return bearer(await token_for(app, user))


async def user_with_headers(
    app: web.Application, role: str, tenant_id: uuid.UUID | None = None, **kwargs: Any
) -> tuple[SeededUser, dict[str, str]]:
    user = await make_user(app, role=role, tenant_id=tenant_id, **kwargs)
    return user, await auth_headers(app, user)


async def login_headers(client: Any, user: SeededUser) -> dict[str, str]:
    data = await login(client, user.email, user.password)
    return bearer(data["token"])


async def contacts_analysed(db: Any, backend: str) -> int:
    """Whether `contacts` has planner statistics (>0: ANALYZE has run on it).  On PostgreSQL
    pg_stats hides tables under row-level security from the roles it applies to, so the
    statistics collector's own record of the last ANALYZE is read."""
    from sqlalchemy import text

    if backend == "sqlite":
        query = "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'contacts'"
    else:
        query = (
            "SELECT count(*) FROM pg_stat_user_tables"
            " WHERE relname = 'contacts' AND last_analyze IS NOT NULL"
        )
    return int(await db.run(lambda s: s.scalar(text(query)), system=True, write=False))
