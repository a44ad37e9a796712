"""Login, logout, token refresh with rotation, password reset, invitation acceptance.

A login is an `AuthSession` (the refresh-token family) plus its `AuthRefreshToken`s.  Access
tokens are short-lived JWTs naming the session, so revoking the session stops them (at once on
this instance through the gate's cache, within the gate's TTL elsewhere).  Refresh tokens are
opaque, stored as digests and rotated on every use; presenting a spent one means it was
stolen or replayed, and the whole session is revoked.

Every request costs one unit of work for its data (login: one read to find the user, argon2
off the loop, one write for the session), so a login stays well inside its time budget.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from aisha_server.auth.authorize import ALL_ACTIONS, allows
from aisha_server.auth.gate import AuthGate, tenant_problem
from aisha_server.auth.passwords import PasswordHashing, check_new_password
from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import Capability, Role, parse_role
from aisha_server.auth.tokens import TokenService, digest, new_secret
from aisha_server.config import Settings
from aisha_server.db.base import utcnow
from aisha_server.db.models import (
    AuthRefreshToken,
    AuthSession,
    PasswordResetToken,
    Tenant,
    User,
    UserInvitation,
)
from aisha_server.db.uow import Database
from aisha_server.errors import BadRequest, PermissionDenied, Unauthorized
from aisha_server.mail import Mailer, OutgoingMail
from aisha_server.services.system_log import LogEntry, SystemLogWriter

log = logging.getLogger("aisha.auth")

ACTIVE = "active"
INVITED = "invited"

INVALID_CREDENTIALS = "Invalid email or password"
ACCOUNT_DISABLED = "Account is disabled"
INVALID_RESET_TOKEN = "Invalid or expired reset token"
INVALID_INVITATION = "Invitation is invalid or has expired"
RESET_REQUESTED = "If an account exists for that email, a password reset link has been sent."


# -- what the service hands back --------------------------------------------------------------


class AuthUser(BaseModel):
    id: uuid.UUID
    email: str
    first_name: str
    last_name: str
    role: str
    tenant_id: uuid.UUID | None
    status: str


class IssuedTokens(BaseModel):
    """The answer to a login, a refresh and an accepted invitation."""

    token: str
    refresh_token: str
    expires_at: datetime
    refresh_expires_at: datetime
    session_id: uuid.UUID
    user: AuthUser


class TenantSummary(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    status: str


# the CRM entities a client shows (`record_actions` of /api/auth/me)
CRM_ENTITIES = ("accounts", "contacts", "leads", "opportunities", "activities", "notes")


class CurrentPrincipal(BaseModel):
    """`GET /api/auth/me`: who the caller is and what the role lets it do."""

    user: AuthUser | None
    tenant_id: uuid.UUID | None
    tenant: TenantSummary | None
    role: str
    data_scope: str
    permissions: list[str]
    custom_permissions: list[str]
    auth_type: str
    session_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    api_key_permissions: list[str] | None
    # per record entity, the actions the role, its grants and the key allow (read, create,
    # update, delete, export): what a client offers; data scope still narrows the records
    record_actions: dict[str, list[str]]


# -- rows read inside units of work ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Account:
    user: AuthUser
    password_hash: str | None
    tenant_problem: str | None


def _auth_user(user: User) -> AuthUser:
    return AuthUser(
        id=user.id,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        role=user.role,
        tenant_id=user.tenant_id,
        status=user.status,
    )


@dataclass(frozen=True, slots=True)
class _NewSession:
    """A session to create, with everything known before the unit of work starts."""

    session_id: uuid.UUID
    refresh_token: str  # handed out once; only its digest is stored
    expires_at: datetime
    user_agent: str | None
    ip_address: str | None


@dataclass(frozen=True, slots=True)
class _Rotation:
    outcome: str  # ok | unknown | reused | revoked | expired | disabled
    session_id: uuid.UUID | None = None
    user: AuthUser | None = None
    expires_at: datetime | None = None


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


class AuthService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        tokens: TokenService,
        passwords: PasswordHashing,
        gate: AuthGate,
        mailer: Mailer,
        system_log: SystemLogWriter,
    ) -> None:
        self._settings = settings
        self._db = db
        self._tokens = tokens
        self._passwords = passwords
        self._gate = gate
        self._mailer = mailer
        self._system_log = system_log

    # -- login -------------------------------------------------------------------------------
    async def login(
        self, email: str, password: str, *, ip_address: str | None, user_agent: str | None
    ) -> IssuedTokens:
        email = email.strip().lower()
        account = await self._db.run(
            lambda s: self._find_account(s, email), system=True, write=False
        )
        # An unknown email or a missing password spends the same argon2 time as a wrong one.
        matches, needs_rehash = await self._passwords.verify(
            account.password_hash if account else None, password
        )
        if account is None or not matches:
            self._auth_failed(email, "Invalid credentials", account, ip_address)
            raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
        user = account.user
        role = parse_role(user.role)
        if user.status != ACTIVE or role is None:
            self._auth_failed(email, "Account disabled", account, ip_address, level="warn")
            raise PermissionDenied(ACCOUNT_DISABLED, code="account_disabled")
        if account.tenant_problem is not None:
            self._auth_failed(email, account.tenant_problem, account, ip_address, level="warn")
            raise PermissionDenied(account.tenant_problem, code="tenant_inactive")
        new_hash = await self._passwords.hash(password) if needs_rehash else None
        pending = self._new_session(ip_address, user_agent)

        def write(session: Session) -> None:
            now = utcnow()
            row = session.get(User, user.id)
            if row is None or row.deleted_at is not None:  # deleted while we were hashing
                raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
            row.last_login_at = now
            if new_hash is not None:
                row.password_hash = new_hash
            self._open_session(session, pending, row)

        await self._db.run(write, system=True)
        return self._issue(
            user, role, pending.session_id, pending.expires_at, pending.refresh_token
        )

    @staticmethod
    def _find_account(session: Session, email: str) -> _Account | None:
        user = session.scalar(select(User).where(User.email == email, User.deleted_at.is_(None)))
        if user is None:
            return None
        return _Account(
            _auth_user(user), user.password_hash, tenant_problem(session, user.tenant_id)
        )

    def _auth_failed(
        self,
        email: str,
        reason: str,
        account: _Account | None,
        ip_address: str | None,
        *,
        level: str = "error",
    ) -> None:
        # guide 10.3: "[ERROR] Authentication failed for user@example.com - Invalid credentials"
        message = f"Authentication failed for {email} - {reason}"
        log.log(logging.ERROR if level == "error" else logging.WARNING, message)
        self._system_log.write(
            LogEntry(
                level=level,
                source="auth",
                message=message,
                tenant_id=account.user.tenant_id if account else None,
                user_id=account.user.id if account else None,
                ip_address=ip_address,
                metadata={"email": email, "reason": reason},
            )
        )

    def _new_session(self, ip_address: str | None, user_agent: str | None) -> _NewSession:
        secret = new_secret()
        return _NewSession(
            session_id=uuid.uuid4(),
            refresh_token=secret,
            expires_at=utcnow() + timedelta(days=self._settings.REFRESH_TOKEN_TTL_DAYS),
            user_agent=_clip(user_agent, 500),
            ip_address=_clip(ip_address, 64),
        )

    @staticmethod
    def _open_session(session: Session, pending: _NewSession, user: User) -> None:
        session.add(
            AuthSession(
                id=pending.session_id,
                user_id=user.id,
                tenant_id=user.tenant_id,
                expires_at=pending.expires_at,
                user_agent=pending.user_agent,
                ip_address=pending.ip_address,
            )
        )
        session.flush()  # the refresh token's foreign key needs the session row first
        session.add(
            AuthRefreshToken(
                session_id=pending.session_id,
                tenant_id=user.tenant_id,
                token_hash=digest(pending.refresh_token),
            )
        )

    def _issue(
        self,
        user: AuthUser,
        role: Role,
        session_id: uuid.UUID,
        refresh_expires_at: datetime,
        refresh_token: str,
    ) -> IssuedTokens:
        token, expires_at = self._tokens.issue_access(
            user_id=user.id, tenant_id=user.tenant_id, role=role, session_id=session_id
        )
        return IssuedTokens(
            token=token,
            refresh_token=refresh_token,
            expires_at=expires_at,
            refresh_expires_at=refresh_expires_at,
            session_id=session_id,
            user=user,
        )

    # -- refresh -----------------------------------------------------------------------------
    async def refresh(self, refresh_token: str, *, ip_address: str | None) -> IssuedTokens:
        presented = digest(refresh_token)
        fresh = new_secret()
        fresh_hash = digest(fresh)
        rotation = await self._db.run(lambda s: self._rotate(s, presented, fresh_hash), system=True)
        if rotation.outcome == "reused":
            assert rotation.session_id is not None
            self._gate.forget_session(rotation.session_id)
            message = "Refresh token reuse detected - session revoked"
            log.warning("%s (session %s)", message, rotation.session_id)
            self._system_log.write(
                LogEntry(
                    level="warn",
                    source="auth",
                    message=message,
                    tenant_id=rotation.user.tenant_id if rotation.user else None,
                    user_id=rotation.user.id if rotation.user else None,
                    ip_address=ip_address,
                    metadata={"session_id": str(rotation.session_id)},
                )
            )
            raise Unauthorized(
                "Refresh token has already been used; the session was revoked, please log in again",
                code="refresh_token_reused",
            )
        if rotation.outcome == "revoked":
            raise Unauthorized("Session has been revoked", code="session_revoked")
        if rotation.outcome == "expired":
            raise Unauthorized("Session expired, please log in again", code="session_expired")
        if rotation.outcome == "disabled":
            raise Unauthorized(ACCOUNT_DISABLED, code="account_disabled")
        if rotation.outcome != "ok" or rotation.user is None or rotation.session_id is None:
            raise Unauthorized("Invalid refresh token", code="invalid_refresh_token")
        role = parse_role(rotation.user.role)
        assert role is not None  # checked by _rotate
        assert rotation.expires_at is not None
        return self._issue(rotation.user, role, rotation.session_id, rotation.expires_at, fresh)

    @staticmethod
    def _rotate(session: Session, presented: str, fresh_hash: str) -> _Rotation:
        now = utcnow()
        row = session.scalar(
            select(AuthRefreshToken).where(AuthRefreshToken.token_hash == presented)
        )
        if row is None:
            return _Rotation("unknown")
        auth = session.get(AuthSession, row.session_id)
        if auth is None:
            return _Rotation("unknown")
        user = session.get(User, auth.user_id)
        who = _auth_user(user) if user is not None else None
        if row.spent_at is not None:
            return AuthService._reuse(session, auth, who, now)
        if auth.revoked_at is not None:
            return _Rotation("revoked", auth.id, who)
        if auth.expires_at <= now:
            return _Rotation("expired", auth.id, who)
        if (
            user is None
            or user.deleted_at is not None
            or user.status != ACTIVE
            or parse_role(user.role) is None
            or tenant_problem(session, user.tenant_id) is not None
        ):
            return _Rotation("disabled", auth.id, who)
        # Claim the token atomically: of two concurrent refreshes with it, one wins and the
        # other is treated as the reuse it is.
        claimed = session.execute(
            update(AuthRefreshToken)
            .where(AuthRefreshToken.id == row.id, AuthRefreshToken.spent_at.is_(None))
            .values(spent_at=now)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(claimed) != 1:
            return AuthService._reuse(session, auth, who, now)
        session.add(
            AuthRefreshToken(session_id=auth.id, tenant_id=auth.tenant_id, token_hash=fresh_hash)
        )
        auth.last_used_at = now
        return _Rotation("ok", auth.id, who, auth.expires_at)

    @staticmethod
    def _reuse(
        session: Session, auth: AuthSession, who: AuthUser | None, now: datetime
    ) -> _Rotation:
        if auth.revoked_at is None:
            auth.revoked_at = now
            auth.revoked_reason = "refresh_token_reuse"
        return _Rotation("reused", auth.id, who)

    # -- logout ------------------------------------------------------------------------------
    async def logout(
        self, actor: Principal, *, all_sessions: bool = False, access_token: str | None = None
    ) -> int:
        """Revoke the caller's session (or every session of the user); returns how many."""
        if actor.session_id is None or actor.user_id is None:
            raise BadRequest(
                "Logout ends a login session; API keys are revoked through /api/api-keys",
                code="not_a_session",
            )
        session_id, user_id = actor.session_id, actor.user_id

        def write(session: Session) -> int:
            query = update(AuthSession).where(AuthSession.revoked_at.is_(None))
            if all_sessions:
                query = query.where(AuthSession.user_id == user_id)
            else:
                query = query.where(AuthSession.id == session_id)
            reason = "logout_all" if all_sessions else "logout"
            result = session.execute(
                query.values(revoked_at=utcnow(), revoked_reason=reason).execution_options(
                    synchronize_session=False
                )
            )
            return _rowcount(result)

        revoked = await self._db.run(write, system=True)
        self._gate.forget_session(session_id)
        if all_sessions:
            self._gate.forget_user(user_id)
        if access_token:
            self._tokens.forget(access_token)
        return revoked

    # -- password reset ----------------------------------------------------------------------
    async def request_password_reset(self, email: str, *, ip_address: str | None) -> None:
        """Mail a reset link to an active account.  Says nothing about whether one exists."""
        email = email.strip().lower()
        secret = new_secret()
        hashed = digest(secret)
        ttl = timedelta(minutes=self._settings.PASSWORD_RESET_TTL_MINUTES)

        def write(session: Session) -> AuthUser | None:
            now = utcnow()
            user = session.scalar(
                select(User).where(User.email == email, User.deleted_at.is_(None))
            )
            if user is None or user.status != ACTIVE:
                return None
            # only the newest link works
            _expire_open_reset_links(session, user.id, now)
            session.add(
                PasswordResetToken(
                    user_id=user.id,
                    tenant_id=user.tenant_id,
                    token_hash=hashed,
                    expires_at=now + ttl,
                )
            )
            return _auth_user(user)

        user = await self._db.run(write, system=True)
        if user is None:
            log.info("password reset requested for unknown or inactive account %s", email)
            return
        link = f"{self._settings.FRONTEND_URL.rstrip('/')}/reset-password?token={secret}"
        minutes = self._settings.PASSWORD_RESET_TTL_MINUTES
        greeting = f"Hello {user.first_name}," if user.first_name else "Hello,"
        self._mailer.send(
            OutgoingMail(
                to=user.email,
                subject="Reset your AiSHA password",
                body=(
                    f"{greeting}\n\n"
                    f"Someone (hopefully you) asked to reset the password of the AiSHA account "
                    f"{user.email}.\n"
                    f"Open this link within {minutes} minutes to choose a new password:\n\n"
                    f"{link}\n\n"
                    "The link works once.  If you did not ask for this, ignore this message: "
                    "your password stays unchanged.\n"
                ),
            )
        )
        self._system_log.write(
            LogEntry(
                level="info",
                source="auth",
                message=f"Password reset requested for {user.email}",
                tenant_id=user.tenant_id,
                user_id=user.id,
                ip_address=ip_address,
            )
        )

    async def reset_password(self, token: str, password: str, *, ip_address: str | None) -> None:
        check_new_password(password)
        # Hash first so a bad token costs the same as a good one, and the write stays short.
        new_hash = await self._passwords.hash(password)
        presented = digest(token)

        def write(session: Session) -> AuthUser | None:
            now = utcnow()
            row = session.scalar(
                select(PasswordResetToken).where(PasswordResetToken.token_hash == presented)
            )
            if row is None or row.used_at is not None or row.expires_at <= now:
                return None
            user = session.get(User, row.user_id)
            if user is None or user.deleted_at is not None:
                return None
            claimed = session.execute(
                update(PasswordResetToken)
                .where(PasswordResetToken.id == row.id, PasswordResetToken.used_at.is_(None))
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(claimed) != 1:
                return None
            user.password_hash = new_hash
            user.password_changed_at = now
            _revoke_user_sessions(session, user.id, now, "password_reset")
            _expire_open_reset_links(session, user.id, now)
            return _auth_user(user)

        user = await self._db.run(write, system=True)
        if user is None:
            raise BadRequest(INVALID_RESET_TOKEN, code="invalid_reset_token")
        self._gate.forget_user(user.id)
        self._system_log.write(
            LogEntry(
                level="info",
                source="auth",
                message=f"Password reset completed for {user.email}",
                tenant_id=user.tenant_id,
                user_id=user.id,
                ip_address=ip_address,
            )
        )

    # -- invitations -------------------------------------------------------------------------
    async def accept_invitation(
        self,
        token: str,
        password: str,
        *,
        first_name: str | None,
        last_name: str | None,
        ip_address: str | None,
        user_agent: str | None,
    ) -> IssuedTokens:
        """Set the invited user's password, activate the account and log it in."""
        check_new_password(password)
        new_hash = await self._passwords.hash(password)
        presented = digest(token)
        pending = self._new_session(ip_address, user_agent)

        def write(session: Session) -> AuthUser | str:
            now = utcnow()
            invitation = session.scalar(
                select(UserInvitation).where(UserInvitation.token_hash == presented)
            )
            if (
                invitation is None
                or invitation.accepted_at is not None
                or invitation.revoked_at is not None
                or invitation.expires_at <= now
            ):
                return "invalid"
            user = session.get(User, invitation.user_id)
            if user is None or user.deleted_at is not None:
                return "invalid"
            if user.status not in (INVITED, ACTIVE) or parse_role(user.role) is None:
                return "disabled"
            claimed = session.execute(
                update(UserInvitation)
                .where(
                    UserInvitation.id == invitation.id,
                    UserInvitation.accepted_at.is_(None),
                    UserInvitation.revoked_at.is_(None),
                )
                .values(accepted_at=now)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(claimed) != 1:
                return "invalid"
            # other outstanding invitations of the user die with this one
            session.execute(
                update(UserInvitation)
                .where(
                    UserInvitation.user_id == user.id,
                    UserInvitation.id != invitation.id,
                    UserInvitation.accepted_at.is_(None),
                    UserInvitation.revoked_at.is_(None),
                )
                .values(revoked_at=now)
                .execution_options(synchronize_session=False)
            )
            user.password_hash = new_hash
            user.password_changed_at = now
            user.status = ACTIVE
            user.last_login_at = now
            if first_name:
                user.first_name = first_name
            if last_name:
                user.last_name = last_name
            self._open_session(session, pending, user)
            return _auth_user(user)

        outcome = await self._db.run(write, system=True)
        if outcome == "disabled":
            raise PermissionDenied(ACCOUNT_DISABLED, code="account_disabled")
        if isinstance(outcome, str):
            raise BadRequest(INVALID_INVITATION, code="invalid_invitation")
        role = parse_role(outcome.role)
        assert role is not None
        self._gate.forget_user(outcome.id)
        self._system_log.write(
            LogEntry(
                level="info",
                source="auth",
                message=f"Invitation accepted by {outcome.email}",
                tenant_id=outcome.tenant_id,
                user_id=outcome.id,
                ip_address=ip_address,
            )
        )
        return self._issue(
            outcome, role, pending.session_id, pending.expires_at, pending.refresh_token
        )

    # -- who am I ----------------------------------------------------------------------------
    async def me(self, actor: Principal) -> CurrentPrincipal:
        user_id, tenant_id = actor.user_id, actor.tenant_id

        def read(session: Session) -> tuple[AuthUser | None, TenantSummary | None]:
            user = session.get(User, user_id) if user_id is not None else None
            tenant = session.get(Tenant, tenant_id) if tenant_id is not None else None
            return (
                _auth_user(user) if user is not None else None,
                TenantSummary(
                    id=tenant.id, name=tenant.name, slug=tenant.slug, status=tenant.status
                )
                if tenant is not None
                else None,
            )

        user, tenant = await self._db.run(read, system=True, write=False)
        return CurrentPrincipal(
            user=user,
            tenant_id=tenant_id,
            tenant=tenant,
            role=actor.role.value,
            data_scope=actor.data_scope.value,
            permissions=[c.value for c in Capability if actor.can(c)],
            custom_permissions=sorted(f"{a}:{r}" for r, a in actor.custom_grants),
            auth_type="api_key" if actor.api_key_id is not None else "session",
            session_id=actor.session_id,
            api_key_id=actor.api_key_id,
            api_key_permissions=(
                sorted(actor.key_permissions) if actor.key_permissions is not None else None
            ),
            record_actions={
                entity: [a for a in ALL_ACTIONS if allows(actor, entity, a)]
                for entity in CRM_ENTITIES
            },
        )


def _expire_open_reset_links(session: Session, user_id: uuid.UUID, now: datetime) -> None:
    """Every unused reset link of the user stops working (a newer one was sent, or one was
    just used)."""
    session.execute(
        update(PasswordResetToken)
        .where(
            PasswordResetToken.user_id == user_id,
            PasswordResetToken.used_at.is_(None),
            PasswordResetToken.expires_at > now,
        )
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )


def _revoke_user_sessions(session: Session, user_id: uuid.UUID, now: datetime, reason: str) -> int:
    result = session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)
