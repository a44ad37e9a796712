"""Turns a bearer token or an API key into a `Principal`, without a database trip per request.

The token's signature is checked by `TokenService` (memoised).  Whether its login session is
still valid and what the user's current role, status and department are is read from the
database at most once per `ttl` seconds per session and cached; logout, disable, role change
and key revocation on this instance invalidate the cache at once.  Other instances (PostgreSQL
deployments) see such changes within `ttl` seconds.

One read per session at a time: requests that find the same session's state due while a read
is under way wait for that read (a desktop client's sync and views ask side by side).  A read
that began before an invalidation answers the requests that were waiting for it but is not
cached, and requests after the invalidation read afresh, so a logout is never undone by a
re-check that read the session just before it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import Role, parse_role
from aisha_server.auth.tokens import TokenService, digest
from aisha_server.db.models import (
    ApiKey,
    AuthSession,
    Employee,
    Permission,
    RolePermission,
    Tenant,
    User,
)
from aisha_server.db.uow import Database
from aisha_server.errors import Unauthorized

ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class _SessionState:
    principal: Principal | None
    problem: str | None
    code: str | None
    expires_at: float | None  # POSIX seconds, compared per request


def load_custom_grants(session: Session, roles: Iterable[str]) -> frozenset[tuple[str, str]]:
    names = [r for r in roles if r]
    if not names:
        return frozenset()
    rows = session.execute(
        select(Permission.resource, Permission.action)
        .join(RolePermission, RolePermission.permission_id == Permission.id)
        .where(RolePermission.role.in_(names))
    ).all()
    return frozenset((r.resource, r.action) for r in rows)


def load_department(session: Session, user_id: uuid.UUID) -> str | None:
    return session.scalar(
        select(Employee.department)
        .where(Employee.user_id == user_id, Employee.deleted_at.is_(None))
        .limit(1)
    )


def tenant_problem(session: Session, tenant_id: uuid.UUID | None) -> str | None:
    """Why a tenant's users and keys may not work now (suspended, archived, deleted), or None."""
    if tenant_id is None:
        return None
    return _tenant_problem(session.get(Tenant, tenant_id))


def _tenant_problem(tenant: Tenant | None) -> str | None:
    if tenant is None or tenant.deleted_at is not None or tenant.status == "archived":
        return "Tenant no longer exists"
    if tenant.status != ACTIVE:
        return f"Tenant is {tenant.status}"
    return None


def _user_principal(
    session: Session, user: User, *, session_id: uuid.UUID | None = None
) -> Principal | None:
    return _principal_of(session, user, load_department(session, user.id), session_id)


def _principal_of(
    session: Session, user: User, department: str | None, session_id: uuid.UUID | None
) -> Principal | None:
    """The principal of `user` (None for an unknown role), its department already read."""
    role = parse_role(user.role)
    if role is None:
        return None
    return Principal(
        user_id=user.id,
        tenant_id=user.tenant_id,
        role=role,
        email=user.email,
        department=department,
        session_id=session_id,
        custom_grants=load_custom_grants(session, [user.role, *(user.custom_roles or [])]),
    )


def principal_for_user(session: Session, user: User) -> Principal | None:
    """The principal a user acts as (used by services for users they just loaded)."""
    return _user_principal(session, user)


class AuthGate:
    def __init__(self, db: Database, tokens: TokenService, *, ttl: float = 5.0) -> None:
        self._db = db
        self._tokens = tokens
        self._ttl = ttl
        self._sessions: dict[uuid.UUID, tuple[float, _SessionState]] = {}
        self._keys: dict[str, tuple[float, _SessionState]] = {}
        self._key_usage: dict[uuid.UUID, float] = {}
        # reads under way, by (kind, session id or key hash); bumped by every invalidation
        self._reads: dict[Hashable, asyncio.Future[_SessionState]] = {}
        self._generation = 0
        self.reads = 0  # database reads of session and key state (tests, diagnostics)

    async def _read_state(
        self,
        flight: Hashable,
        load: Callable[[Session], _SessionState],
        store: Callable[[_SessionState], None],
    ) -> _SessionState:
        """`load` in a read unit, once for all the requests that ask while it runs; the
        result is stored (`store`) only when nothing was invalidated meanwhile.

        The first request reads in its own task (a quick SQLite read then never leaves the
        event loop: handing it to a task of its own put each re-check behind every request
        ready to run, 50-100 ms under load).  The others wait for its future; if the first is
        cancelled, one of them reads instead."""
        while (shared := self._reads.get(flight)) is not None:
            try:
                return await asyncio.shield(shared)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not shared.cancelled() or (task is not None and task.cancelling()):
                    raise  # this request was cancelled, not the one reading
        future: asyncio.Future[_SessionState] = asyncio.get_running_loop().create_future()
        self._reads[flight] = future
        generation = self._generation
        self.reads += 1
        try:
            state = await self._db.run(load, system=True, write=False, quick=True)
        except BaseException as exc:
            if self._reads.get(flight) is future:
                del self._reads[flight]
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: each waiter raises it
            raise
        if self._reads.get(flight) is future:
            del self._reads[flight]
        if generation == self._generation:
            store(state)
        future.set_result(state)
        return state

    # -- bearer tokens ---------------------------------------------------------------------
    def cached_principal_for_token(self, token: str) -> Principal | None:
        """The principal from cache alone (no await on the hot path), or None when the
        session's state must be read from the database first.  Raises like
        `principal_for_token` for invalid tokens and refused sessions."""
        now = time.time()
        claims = self._tokens.verify_access(token, now=now)
        cached = self._sessions.get(claims.session_id)
        if cached is None or now - cached[0] > self._ttl:
            return None
        return self._admit(cached[1], now)

    async def principal_for_token(self, token: str) -> Principal:
        principal = self.cached_principal_for_token(token)
        if principal is not None:
            return principal
        now = time.time()
        claims = self._tokens.verify_access(token, now=now)

        def store(state: _SessionState) -> None:
            if len(self._sessions) >= 50_000:
                self._sessions.clear()
            self._sessions[claims.session_id] = (now, state)

        state = await self._read_state(
            ("session", claims.user_id, claims.session_id),
            lambda s: self._load_session(s, claims.user_id, claims.session_id),
            store,
        )
        return self._admit(state, time.time())

    @staticmethod
    def _admit(state: _SessionState, now: float) -> Principal:
        if state.principal is None:
            raise Unauthorized(state.problem or "Invalid session", code=state.code)
        if state.expires_at is not None and state.expires_at <= now:
            raise Unauthorized("Session expired, please log in again", code="session_expired")
        return state.principal

    @staticmethod
    def _load_session(session: Session, user_id: uuid.UUID, session_id: uuid.UUID) -> _SessionState:
        # the session, its user, the user's tenant and department in one statement (this runs
        # for every signed-in session every `ttl` seconds: three round trips fewer each time)
        department = (
            select(Employee.department)
            .where(Employee.user_id == User.id, Employee.deleted_at.is_(None))
            .limit(1)
            .scalar_subquery()
        )
        found = session.execute(
            select(AuthSession, User, Tenant, department)
            .outerjoin(User, User.id == AuthSession.user_id)
            .outerjoin(Tenant, Tenant.id == User.tenant_id)
            .where(AuthSession.id == session_id)
        ).one_or_none()
        if found is None or found[0].user_id != user_id:
            return _SessionState(None, "Invalid session", "invalid_session", None)
        auth, user, tenant, department_name = found
        if auth.revoked_at is not None:
            return _SessionState(None, "Session has been revoked", "session_revoked", None)
        if user is None or user.deleted_at is not None:
            return _SessionState(None, "Account no longer exists", "account_missing", None)
        if user.status != ACTIVE:
            return _SessionState(None, "Account is disabled", "account_disabled", None)
        problem = _tenant_problem(tenant) if user.tenant_id is not None else None
        if problem is not None:
            return _SessionState(None, problem, "tenant_inactive", None)
        principal = _principal_of(session, user, department_name, session_id)
        if principal is None:
            return _SessionState(None, "Account has an unknown role", "invalid_role", None)
        return _SessionState(principal, None, None, auth.expires_at.timestamp())

    # -- API keys --------------------------------------------------------------------------
    async def principal_for_api_key(self, key: str) -> Principal:
        now = time.time()
        hashed = digest(key)
        cached = self._keys.get(hashed)
        if cached is None or now - cached[0] > self._ttl:

            def store(state: _SessionState) -> None:
                if len(self._keys) >= 50_000:
                    self._keys.clear()
                self._keys[hashed] = (now, state)

            state = await self._read_state(
                ("key", hashed), lambda s: self._load_key(s, hashed), store
            )
            now = time.time()
        else:
            state = cached[1]
        if state.principal is None:
            raise Unauthorized(state.problem or "Invalid API key", code=state.code)
        if state.expires_at is not None and state.expires_at <= now:
            raise Unauthorized("API key has expired", code="api_key_expired")
        if state.principal.api_key_id is not None:
            self._key_usage[state.principal.api_key_id] = now
        return state.principal

    async def flush_key_usage(self) -> int:
        """Write when each API key was last used (`api_keys.last_used_at`), batched: a key
        in use costs a dictionary write per request, not a database write."""
        if not self._key_usage:
            return 0
        usage, self._key_usage = self._key_usage, {}

        def write(session: Session) -> None:
            for key_id, seen in usage.items():
                session.execute(
                    update(ApiKey)
                    .where(ApiKey.id == key_id)
                    .values(last_used_at=datetime.fromtimestamp(seen, UTC))
                    .execution_options(synchronize_session=False)
                )

        await self._db.run(write, system=True)
        return len(usage)

    @staticmethod
    def _load_key(session: Session, hashed: str) -> _SessionState:
        key = session.scalar(select(ApiKey).where(ApiKey.key == hashed))
        if key is None or key.deleted_at is not None:
            return _SessionState(None, "Invalid API key", "invalid_api_key", None)
        if key.revoked_at is not None:
            return _SessionState(None, "API key has been revoked", "api_key_revoked", None)
        problem = tenant_problem(session, key.tenant_id)
        if problem is not None:
            return _SessionState(None, problem, "tenant_inactive", None)
        role = Role.ADMIN
        email = ""
        user_id = None
        department = None
        grants: frozenset[tuple[str, str]] = frozenset()
        if key.user_id is not None:
            user = session.get(User, key.user_id)
            if user is None or user.status != ACTIVE or user.deleted_at is not None:
                return _SessionState(
                    None, "API key owner is disabled", "api_key_owner_disabled", None
                )
            owner_role = parse_role(user.role)
            if owner_role is None:
                return _SessionState(
                    None, "API key owner has an unknown role", "invalid_role", None
                )
            role = Role.ADMIN if owner_role is Role.SUPERADMIN else owner_role
            email, user_id = user.email, user.id
            department = load_department(session, user.id)
            grants = load_custom_grants(session, [user.role, *(user.custom_roles or [])])
        principal = Principal(
            user_id=user_id,
            tenant_id=key.tenant_id,
            role=role,
            email=email,
            department=department,
            api_key_id=key.id,
            key_permissions=frozenset(key.permissions or []),
            custom_grants=grants,
        )
        expires = key.expires_at.timestamp() if key.expires_at is not None else None
        return _SessionState(principal, None, None, expires)

    # -- invalidation ----------------------------------------------------------------------
    def _invalidated(self) -> None:
        """Reads under way may have read what was just changed: they store nothing, and the
        next request reads afresh instead of waiting for them."""
        self._generation += 1
        self._reads.clear()

    def forget_session(self, session_id: uuid.UUID) -> None:
        self._invalidated()
        self._sessions.pop(session_id, None)

    def forget_user(self, user_id: uuid.UUID) -> None:
        self._invalidated()
        stale = [
            sid
            for sid, (_, state) in self._sessions.items()
            if state.principal is not None and state.principal.user_id == user_id
        ]
        for sid in stale:
            del self._sessions[sid]
        stale_keys = [
            h
            for h, (_, state) in self._keys.items()
            if state.principal is not None and state.principal.user_id == user_id
        ]
        for h in stale_keys:
            del self._keys[h]

    def forget_api_key(self, key_hash: str | None = None) -> None:
        self._invalidated()
        if key_hash is None:
            self._keys.clear()
        else:
            self._keys.pop(key_hash, None)

    def forget_all(self) -> None:
        self._invalidated()
        self._sessions.clear()
        self._keys.clear()
