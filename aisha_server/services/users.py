"""Users: CRUD within data scope, invitations, bulk import, presence (guide 2.5, 3.1, App. B).

Who may do what:

* superadmins manage every user; admins manage the users of their own tenant and may hand
  out `ASSIGNABLE_ROLES[admin]` (never superadmin); everyone else may read their own record
  and change their own name and password (the latter only with the current password).
* A user of another tenant is "not found" for an admin, never "forbidden": ids of other
  tenants' users are not confirmed to exist.

Emails are unique across the whole system (users are global, guide 3.3), so the units of
work that must check an email for uniqueness run in system scope and restrict tenants in
their queries; all other reads and writes of a tenant admin run in that tenant's scope, so
PostgreSQL row-level security backs the checks made here.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aisha_server.auth.gate import AuthGate
from aisha_server.auth.passwords import PasswordHashing, check_new_password
from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import ASSIGNABLE_ROLES, Role, parse_role
from aisha_server.auth.tokens import digest, new_secret
from aisha_server.config import Settings
from aisha_server.db.base import utcnow
from aisha_server.db.models import AuthSession, Tenant, User, UserInvitation
from aisha_server.db.uow import Database
from aisha_server.errors import (
    TENANT_ACCESS_DENIED,
    BadRequest,
    Conflict,
    Invalid,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Unauthorized,
)
from aisha_server.mail import Mailer, OutgoingMail
from aisha_server.services.csv_text import csv_delimiter, decode_csv
from aisha_server.services.emails import EmailNotValidError, normalised_email
from aisha_server.services.pagination import Page

T = TypeVar("T")

ACTIVE, INVITED, DISABLED = "active", "invited", "disabled"
USER_STATUSES = (ACTIVE, INVITED, DISABLED)
SETTABLE_STATUSES = (ACTIVE, DISABLED)  # "invited" is reached only by inviting
INVITATION_TTL = timedelta(days=7)
INVITATION_SUBJECT = "You're invited to AiSHA"
EMAIL_TAKEN = "A user with this email already exists"
USER_NOT_FOUND = "User not found"
MAX_NAME_LENGTH = 100
MAX_CUSTOM_ROLES = 20
MAX_IMPORT_ROWS = 5000
IMPORT_COLUMNS = ("email", "first_name", "last_name", "role", "tenant_id")
REQUIRED_IMPORT_COLUMNS = ("email", "first_name", "last_name", "role")


# -- values crossing the service boundary ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as callers may see it: no password hash, ever."""

    id: uuid.UUID
    tenant_id: uuid.UUID | None
    email: str
    first_name: str
    last_name: str
    role: str
    custom_roles: list[str]
    status: str
    has_password: bool
    last_login_at: datetime | None
    last_seen_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, user: User) -> UserRecord:
        return cls(
            id=user.id,
            tenant_id=user.tenant_id,
            email=user.email,
            first_name=user.first_name,
            last_name=user.last_name,
            role=user.role,
            custom_roles=list(user.custom_roles or []),
            status=user.status,
            has_password=user.password_hash is not None,
            last_login_at=user.last_login_at,
            last_seen_at=user.last_seen_at,
            created_at=user.created_at,
            updated_at=user.updated_at,
            version=user.version,
        )


@dataclass(frozen=True, slots=True)
class UserFilter:
    q: str | None = None
    role: str | None = None
    status: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class NewUser:
    email: str
    role: str
    first_name: str = ""
    last_name: str = ""
    tenant_id: uuid.UUID | None = None
    password: str | None = None
    send_invitation: bool = False
    custom_roles: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UserChanges:
    """A partial update: None means "leave as it is"."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    role: str | None = None
    status: str | None = None
    custom_roles: list[str] | None = None
    tenant_id: uuid.UUID | None = None
    password: str | None = None
    current_password: str | None = None

    def touches_administration(self) -> bool:
        return any(
            v is not None
            for v in (self.email, self.role, self.status, self.custom_roles, self.tenant_id)
        )


@dataclass(frozen=True, slots=True)
class InvitationRecord:
    id: uuid.UUID
    user_id: uuid.UUID
    email: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ImportRow:
    row: int
    email: str
    status: str  # "created" | "error"
    errors: list[str] = field(default_factory=list)
    id: uuid.UUID | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row, "email": self.email, "status": self.status}
        if self.errors:
            out["errors"] = self.errors
        if self.id is not None:
            out["id"] = str(self.id)
        return out


@dataclass(frozen=True, slots=True)
class ImportReport:
    created: int
    rows: list[ImportRow]


@dataclass(frozen=True, slots=True)
class _Invite:
    """An invitation just written; mailed only after its transaction committed."""

    record: InvitationRecord
    token: str
    first_name: str
    tenant_name: str | None


# -- small pure helpers -----------------------------------------------------------------------


def normalize_email(value: str, *, field_name: str = "email") -> str:
    """The stored form of an email: validated syntax (no DNS), normalised, lower case."""
    try:
        return normalised_email(value)
    except EmailNotValidError as exc:
        raise Invalid(
            f"Invalid email: {exc}", details=[{"field": field_name, "message": str(exc)}]
        ) from None


def _email_problem(value: str) -> tuple[str | None, str | None]:
    try:
        return normalize_email(value), None
    except Invalid as exc:
        return None, exc.message


def _clean_name(value: str, field_name: str) -> str:
    value = value.strip()
    if len(value) > MAX_NAME_LENGTH:
        raise Invalid(
            f"{field_name} must be at most {MAX_NAME_LENGTH} characters",
            details=[{"field": field_name, "message": "too long"}],
        )
    return value


def _clean_custom_roles(values: Sequence[str]) -> list[str]:
    cleaned: list[str] = []
    for value in values:
        name = value.strip()
        if not name or len(name) > 50:
            raise Invalid(
                "custom_roles entries must be 1 to 50 characters",
                details=[{"field": "custom_roles", "message": f"bad entry {value!r}"}],
            )
        if name not in cleaned:
            cleaned.append(name)
    if len(cleaned) > MAX_CUSTOM_ROLES:
        raise Invalid(f"At most {MAX_CUSTOM_ROLES} custom_roles per user")
    return cleaned


def _role(value: str) -> Role:
    role = parse_role(value.strip().lower())
    if role is None:
        allowed = ", ".join(r.value for r in Role)
        raise Invalid(
            f"Unknown role {value!r}; use one of: {allowed}",
            details=[{"field": "role", "message": "unknown role"}],
        )
    return role


def is_user_admin(actor: Principal) -> bool:
    return actor.role in ASSIGNABLE_ROLES


def _check_assignable(actor: Principal, role: Role) -> None:
    if role not in ASSIGNABLE_ROLES.get(actor.role, frozenset()):
        raise PermissionDenied(f"You cannot assign the role {role.value}", code="role_not_allowed")


def _check_tenant_for_role(role: Role, tenant_id: uuid.UUID | None) -> None:
    if role is Role.SUPERADMIN and tenant_id is not None:
        raise Invalid(
            "Superadmin users have no tenant; omit tenant_id",
            details=[{"field": "tenant_id", "message": "must be empty for superadmin"}],
        )
    if role is not Role.SUPERADMIN and tenant_id is None:
        raise Invalid(
            f"tenant_id is required for role {role.value}",
            details=[{"field": "tenant_id", "message": "required"}],
        )


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def _revoke_sessions(
    session: Session, user_id: uuid.UUID, reason: str, *, keep: uuid.UUID | None = None
) -> None:
    now = utcnow()
    condition = [AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)]
    if keep is not None:
        condition.append(AuthSession.id != keep)
    session.execute(
        update(AuthSession).where(*condition).values(revoked_at=now, revoked_reason=reason)
    )


def _revoke_open_invitations(session: Session, user_id: uuid.UUID) -> None:
    session.execute(
        update(UserInvitation)
        .where(
            UserInvitation.user_id == user_id,
            UserInvitation.accepted_at.is_(None),
            UserInvitation.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )


def _email_exists(session: Session, email: str, *, other_than: uuid.UUID | None = None) -> bool:
    condition: list[ColumnElement[bool]] = [func.lower(User.email) == email]
    if other_than is not None:
        condition.append(User.id != other_than)
    return bool(session.scalar(select(exists().where(*condition))))


class UserService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        passwords: PasswordHashing,
        gate: AuthGate,
        mailer: Mailer,
    ) -> None:
        self._settings = settings
        self._db = db
        self._passwords = passwords
        self._gate = gate
        self._mailer = mailer

    # -- plumbing ------------------------------------------------------------------------------
    async def _in_scope(
        self, actor: Principal, fn: Callable[[Session], T], *, write: bool = True
    ) -> T:
        """Run in the actor's tenant (RLS applies) or, for a superadmin, in system scope."""
        if actor.is_superadmin or actor.tenant_id is None:
            return await self._db.run(fn, system=True, write=write)
        return await self._db.run(fn, tenant_id=actor.tenant_id, write=write)

    @staticmethod
    def _visible_user(session: Session, actor: Principal, user_id: uuid.UUID) -> User:
        """The live user `actor` may address, or NotFound (other tenants' users included)."""
        user = session.get(User, user_id)
        if user is None or user.deleted_at is not None:
            raise NotFound(USER_NOT_FOUND)
        if user.id == actor.user_id or actor.is_superadmin:
            return user
        if (
            is_user_admin(actor)
            and actor.tenant_id is not None
            and user.tenant_id == actor.tenant_id
        ):
            return user
        raise NotFound(USER_NOT_FOUND)

    @staticmethod
    def _new_invitation(
        user: User, invited_by: uuid.UUID | None, tenant_name: str | None
    ) -> tuple[UserInvitation, _Invite]:
        """An invitation row for `user` (already flushed, so it has an id) and its mail."""
        token = new_secret()
        invitation = UserInvitation(
            id=uuid.uuid4(),
            user_id=user.id,
            tenant_id=user.tenant_id,
            token_hash=digest(token),
            invited_by=invited_by,
            expires_at=utcnow() + INVITATION_TTL,
        )
        record = InvitationRecord(invitation.id, user.id, user.email, invitation.expires_at)
        return invitation, _Invite(record, token, user.first_name, tenant_name)

    def _invite(self, session: Session, user: User, invited_by: uuid.UUID | None) -> _Invite:
        tenant_name = None
        if user.tenant_id is not None:
            tenant_name = session.scalar(select(Tenant.name).where(Tenant.id == user.tenant_id))
        invitation, invite = self._new_invitation(user, invited_by, tenant_name)
        session.add(invitation)
        session.flush()
        return invite

    def invitation_link(self, token: str) -> str:
        return f"{self._settings.FRONTEND_URL.rstrip('/')}/accept-invitation?token={token}"

    def _mail_invitation(self, invite: _Invite) -> None:
        greeting = f"Hello {invite.first_name}," if invite.first_name else "Hello,"
        where = f" to {invite.tenant_name}" if invite.tenant_name else ""
        expires = invite.record.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        body = (
            f"{greeting}\n\n"
            f"You have been invited{where} on AiSHA CRM as {invite.record.email}.\n"
            "Open this link to set your password and sign in:\n\n"
            f"{self.invitation_link(invite.token)}\n\n"
            f"The link expires in 7 days ({expires}) and works once.\n"
            "If you did not expect this invitation you can ignore this message.\n"
        )
        self._mailer.send(OutgoingMail(invite.record.email, INVITATION_SUBJECT, body))

    @staticmethod
    def require_admin(actor: Principal, what: str) -> None:
        if not is_user_admin(actor):
            raise PermissionDenied(f"{what} requires an administrator")

    async def bootstrap_open(self) -> bool:
        """True while no user exists: the first-run window of guide 2.5 Option 2."""
        return not await self._db.run(_any_user, system=True, write=False)

    # -- creation --------------------------------------------------------------------------------
    async def create_superadmin(
        self, email: str, password: str, first_name: str, last_name: str
    ) -> UserRecord:
        """The CLI's `create-superadmin`: no caller, no tenant, password set directly."""
        new = NewUser(
            email=email,
            role=Role.SUPERADMIN.value,
            first_name=first_name,
            last_name=last_name,
            password=password,
        )
        return await self._create(None, new, bootstrap=False)

    async def create_user(self, actor: Principal | None, new: NewUser) -> UserRecord:
        """Create one user.  `actor=None` is the first-run bootstrap: allowed only while the
        users table is empty, and only for a superadmin with a password (guide 2.5 Option 2)."""
        if actor is None:
            if await self._db.run(_any_user, system=True, write=False):
                raise Unauthorized("Authentication required", code="auth_required")
        else:
            if not is_user_admin(actor):
                raise PermissionDenied("Only administrators can create users")
        return await self._create(actor, new, bootstrap=actor is None)

    async def _create(
        self, actor: Principal | None, new: NewUser, *, bootstrap: bool
    ) -> UserRecord:
        email = normalize_email(new.email)
        role = _role(new.role)
        first = _clean_name(new.first_name, "first_name")
        last = _clean_name(new.last_name, "last_name")
        custom_roles = _clean_custom_roles(new.custom_roles)
        tenant_id = new.tenant_id
        if actor is not None:
            _check_assignable(actor, role)
            if not actor.is_superadmin and tenant_id != actor.tenant_id:
                raise PermissionDenied(TENANT_ACCESS_DENIED, code="tenant_access_denied")
        _check_tenant_for_role(role, tenant_id)
        if bootstrap and role is not Role.SUPERADMIN:
            raise Invalid("The first user must be a superadmin (role: superadmin)")
        if new.password is not None and new.send_invitation:
            raise Invalid("Give either a password or send_invitation, not both")
        if new.password is None and not new.send_invitation:
            raise Invalid("Give a password or set send_invitation to true")
        if bootstrap and new.password is None:
            raise Invalid("The first superadmin needs a password")
        hashed: str | None = None
        if new.password is not None:
            check_new_password(new.password)
            hashed = await self._passwords.hash(new.password)
        invited_by = actor.user_id if actor is not None else None

        def write(session: Session) -> tuple[UserRecord, _Invite | None]:
            if bootstrap:
                _lock_bootstrap(session)
                if _any_user(session):
                    raise Unauthorized("Authentication required", code="auth_required")
            if tenant_id is not None:
                live = session.scalar(
                    select(Tenant.id).where(Tenant.id == tenant_id, Tenant.deleted_at.is_(None))
                )
                if live is None:
                    raise NotFound("Tenant not found", code="tenant_not_found")
            now = utcnow()
            fields = {
                "password_hash": hashed,
                "first_name": first,
                "last_name": last,
                "role": role.value,
                "custom_roles": custom_roles,
                "status": ACTIVE if hashed is not None else INVITED,
                "password_changed_at": now if hashed is not None else None,
            }
            existing = session.scalar(select(User).where(func.lower(User.email) == email))
            if existing is None:
                user = User(tenant_id=tenant_id, email=email, **fields)
                session.add(user)
            elif existing.deleted_at is not None and existing.tenant_id == tenant_id:
                # Re-adding someone who was deleted from this tenant brings their account
                # back (same id, so records they owned are theirs again) with the new details.
                user = existing
                user.deleted_at = None
                for name, value in fields.items():
                    setattr(user, name, value)
            else:
                raise Conflict(EMAIL_TAKEN, code="email_taken")
            session.flush()
            invite = self._invite(session, user, invited_by) if hashed is None else None
            return UserRecord.of(user), invite

        try:
            record, invite = await self._db.run(write, system=True)
        except IntegrityError:  # a concurrent insert of the same email won the race
            raise Conflict(EMAIL_TAKEN, code="email_taken") from None
        if invite is not None:
            self._mail_invitation(invite)
        return record

    # -- reading -----------------------------------------------------------------------------------
    async def list_users(
        self, actor: Principal, tenant_id: uuid.UUID | None, filters: UserFilter
    ) -> Page[UserRecord]:
        """Admins list their tenant; a superadmin every user, or one tenant's when named."""
        if not is_user_admin(actor):
            raise PermissionDenied("Listing users requires an administrator")
        if not actor.is_superadmin:
            if tenant_id is not None and tenant_id != actor.tenant_id:
                raise PermissionDenied(TENANT_ACCESS_DENIED, code="tenant_access_denied")
            tenant_id = actor.tenant_id
        role = _role(filters.role).value if filters.role else None
        if filters.status is not None and filters.status not in USER_STATUSES:
            raise Invalid(
                f"Unknown status {filters.status!r}; use one of: {', '.join(USER_STATUSES)}"
            )

        def read(session: Session) -> Page[UserRecord]:
            condition: list[ColumnElement[bool]] = [User.deleted_at.is_(None)]
            if tenant_id is not None:
                condition.append(User.tenant_id == tenant_id)
            if role is not None:
                condition.append(User.role == role)
            if filters.status is not None:
                condition.append(User.status == filters.status)
            if filters.q:
                pattern = _like(filters.q.strip())
                full_name = func.lower(User.first_name + " " + User.last_name)
                condition.append(
                    or_(
                        func.lower(User.email).like(pattern, escape="\\"),
                        full_name.like(pattern, escape="\\"),
                    )
                )
            total = session.scalar(select(func.count()).select_from(User).where(*condition)) or 0
            rows = session.scalars(
                select(User)
                .where(*condition)
                .order_by(User.email, User.id)
                .limit(filters.limit)
                .offset(filters.offset)
            ).all()
            return Page([UserRecord.of(u) for u in rows], total, filters.limit, filters.offset)

        if tenant_id is None:
            return await self._db.run(read, system=True, write=False)
        return await self._db.run(read, tenant_id=tenant_id, write=False)

    async def get_user(self, actor: Principal, user_id: uuid.UUID) -> UserRecord:
        return await self._in_scope(
            actor, lambda s: UserRecord.of(self._visible_user(s, actor, user_id)), write=False
        )

    async def sync_from_auth(self, actor: Principal) -> UserRecord:
        """Users are the auth store here, so "sync" is a fresh read of the caller's record."""
        if actor.user_id is None:
            raise BadRequest("This API key does not act for a user", code="no_user")
        return await self.get_user(actor, actor.user_id)

    async def heartbeat(self, actor: Principal) -> datetime:
        """Presence: `last_seen_at = now`.  A Core update on purpose: presence is not a
        change of the record, so it neither bumps `version` nor enters the change feed."""
        if actor.user_id is None:
            raise BadRequest("This API key does not act for a user", code="no_user")
        user_id = actor.user_id
        now = utcnow()

        def write(session: Session) -> None:
            done = session.execute(
                update(User)
                .where(User.id == user_id, User.deleted_at.is_(None))
                .values(last_seen_at=now)
            )
            if getattr(done, "rowcount", 1) == 0:
                raise NotFound(USER_NOT_FOUND)

        await self._in_scope(actor, write)
        return now

    # -- changes -------------------------------------------------------------------------------------
    async def update_user(
        self, actor: Principal, user_id: uuid.UUID, changes: UserChanges
    ) -> UserRecord:
        is_self = actor.user_id == user_id
        admin = is_user_admin(actor)
        if not admin and not is_self:
            raise NotFound(USER_NOT_FOUND)
        if is_self and not admin and changes.touches_administration():
            raise PermissionDenied(
                "You may change only your own name and password", code="self_service_only"
            )
        first = (
            _clean_name(changes.first_name, "first_name")
            if changes.first_name is not None
            else None
        )
        last = (
            _clean_name(changes.last_name, "last_name") if changes.last_name is not None else None
        )
        email = normalize_email(changes.email) if changes.email is not None else None
        role = _role(changes.role) if changes.role is not None else None
        custom_roles = (
            _clean_custom_roles(changes.custom_roles) if changes.custom_roles is not None else None
        )
        if changes.status is not None and changes.status not in SETTABLE_STATUSES:
            raise Invalid(
                f"status must be one of: {', '.join(SETTABLE_STATUSES)}",
                details=[{"field": "status", "message": "not settable"}],
            )
        if role is not None:
            _check_assignable(actor, role)
        if (
            changes.tenant_id is not None
            and not actor.is_superadmin
            and changes.tenant_id != actor.tenant_id
        ):
            raise PermissionDenied(TENANT_ACCESS_DENIED, code="tenant_access_denied")

        expected_hash: str | None = None
        new_hash: str | None = None
        if changes.password is not None:
            check_new_password(changes.password)
            if is_self:
                if not changes.current_password:
                    raise Invalid(
                        "current_password is required to change your password",
                        details=[{"field": "current_password", "message": "required"}],
                    )
                expected_hash = await self._in_scope(
                    actor,
                    lambda s: self._visible_user(s, actor, user_id).password_hash,
                    write=False,
                )
                ok, _ = await self._passwords.verify(expected_hash, changes.current_password)
                if not ok:
                    raise Invalid(
                        "current_password is not correct",
                        details=[{"field": "current_password", "message": "incorrect"}],
                        code="wrong_password",
                    )
            new_hash = await self._passwords.hash(changes.password)

        def write(session: Session) -> tuple[UserRecord, bool]:
            user = self._visible_user(session, actor, user_id)
            current_role = parse_role(user.role)
            if is_self and (
                (role is not None and role.value != user.role)
                or (changes.status is not None and changes.status != user.status)
            ):
                raise PermissionDenied(
                    "You cannot change your own role or status", code="self_role_change"
                )
            if changes.tenant_id is not None and changes.tenant_id != user.tenant_id:
                raise Invalid(
                    "A user's tenant cannot be changed; create a user in the other tenant"
                )
            if (
                role is not None
                and role is not current_role
                and Role.SUPERADMIN
                in (
                    role,
                    current_role,
                )
            ):
                raise Invalid(
                    "Superadmins have no tenant: create a new user instead of changing the role"
                    " to or from superadmin"
                )
            auth_changed = False
            if first is not None:
                user.first_name = first
            if last is not None:
                user.last_name = last
            if email is not None and email != user.email:
                if _email_exists(session, email, other_than=user.id):
                    raise Conflict(EMAIL_TAKEN, code="email_taken")
                user.email = email
                auth_changed = True
            if role is not None and role.value != user.role:
                user.role = role.value
                auth_changed = True
            if custom_roles is not None and custom_roles != list(user.custom_roles or []):
                user.custom_roles = custom_roles
                auth_changed = True
            if changes.status is not None and changes.status != user.status:
                if changes.status == ACTIVE and user.password_hash is None:
                    raise Invalid(
                        "This user has not set a password yet: resend the invitation or set"
                        " a password"
                    )
                user.status = changes.status
                auth_changed = True
                if changes.status == DISABLED:
                    _revoke_sessions(session, user.id, "disabled")
            if new_hash is not None:
                if is_self and user.password_hash != expected_hash:
                    raise Conflict("The password changed meanwhile; try again")
                user.password_hash = new_hash
                user.password_changed_at = utcnow()
                if user.status == INVITED:
                    user.status = ACTIVE
                _revoke_open_invitations(session, user.id)
                _revoke_sessions(
                    session, user.id, "password_changed", keep=actor.session_id if is_self else None
                )
                auth_changed = True
            session.flush()
            return UserRecord.of(user), auth_changed

        scope_system = email is not None or actor.is_superadmin or actor.tenant_id is None
        try:
            if scope_system:
                record, auth_changed = await self._db.run(write, system=True)
            else:
                record, auth_changed = await self._db.run(write, tenant_id=actor.tenant_id)
        except IntegrityError:
            raise Conflict(EMAIL_TAKEN, code="email_taken") from None
        if auth_changed:
            self._gate.forget_user(user_id)
        return record

    async def delete_user(self, actor: Principal, user_id: uuid.UUID) -> UserRecord:
        """Soft delete: tombstone, disable, revoke sessions and open invitations."""
        if not is_user_admin(actor):
            raise PermissionDenied("Deleting users requires an administrator")
        if actor.user_id == user_id:
            raise PermissionDenied("You cannot delete your own account", code="self_delete")

        def write(session: Session) -> UserRecord:
            user = self._visible_user(session, actor, user_id)
            user.deleted_at = utcnow()
            user.status = DISABLED
            _revoke_sessions(session, user.id, "user_deleted")
            _revoke_open_invitations(session, user.id)
            session.flush()
            return UserRecord.of(user)

        record = await self._in_scope(actor, write)
        self._gate.forget_user(user_id)
        return record

    async def resend_invitation(self, actor: Principal, user_id: uuid.UUID) -> InvitationRecord:
        """Revoke the user's open invitations and mail a fresh one (7 more days)."""
        if not is_user_admin(actor):
            raise PermissionDenied("Inviting users requires an administrator")

        def write(session: Session) -> _Invite:
            user = self._visible_user(session, actor, user_id)
            if user.status != INVITED or user.password_hash is not None:
                raise Conflict(
                    f"This user is {user.status}, not waiting for an invitation;"
                    " a user with a password can use password reset",
                    code="not_invited",
                )
            _revoke_open_invitations(session, user.id)
            return self._invite(session, user, actor.user_id)

        invite = await self._in_scope(actor, write)
        self._mail_invitation(invite)
        return invite.record

    # -- bulk import ---------------------------------------------------------------------------------
    async def bulk_import(
        self, actor: Principal, default_tenant: uuid.UUID | None, data: bytes
    ) -> ImportReport:
        """Validate a whole CSV file, then create every row in one transaction or none.

        Columns: email, first_name, last_name, role, tenant_id (UUID or slug; blank means
        `default_tenant`, i.e. the admin's own tenant).  Every user is created 'invited' and
        mailed an invitation.  Any bad row rejects the file with a per-row report (422).
        """
        if not is_user_admin(actor):
            raise PermissionDenied("Importing users requires an administrator")
        if not actor.is_superadmin:
            if default_tenant is not None and default_tenant != actor.tenant_id:
                raise PermissionDenied(TENANT_ACCESS_DENIED, code="tenant_access_denied")
            default_tenant = actor.tenant_id
        rows = parse_import_csv(data)

        def write(session: Session) -> tuple[ImportReport, list[_Invite]]:
            report, prepared = _validate_import(session, actor, default_tenant, rows)
            if any(r.status == "error" for r in report):
                bad = sum(1 for r in report if r.status == "error")
                raise Invalid(
                    f"Import rejected: {bad} of {len(report)} rows have errors;"
                    " nothing was imported",
                    details=[r.as_dict() for r in report],
                    code="import_rejected",
                )
            users = [
                User(
                    tenant_id=p.tenant_id,
                    email=p.email,
                    first_name=p.first_name,
                    last_name=p.last_name,
                    role=p.role.value,
                    status=INVITED,
                )
                for p in prepared
            ]
            session.add_all(users)
            session.flush()
            tenant_ids = {p.tenant_id for p in prepared}
            names: dict[uuid.UUID, str] = {
                row.id: row.name
                for row in session.execute(
                    select(Tenant.id, Tenant.name).where(Tenant.id.in_(tenant_ids))
                )
            }
            invites: list[_Invite] = []
            for user in users:
                invitation, invite = self._new_invitation(
                    user, actor.user_id, names.get(user.tenant_id) if user.tenant_id else None
                )
                session.add(invitation)
                invites.append(invite)
            session.flush()
            created = [
                ImportRow(p.row, u.email, "created", id=u.id)
                for p, u in zip(prepared, users, strict=True)
            ]
            return ImportReport(len(created), created), invites

        try:
            report, invites = await self._db.run(write, system=True)
        except IntegrityError:
            raise Conflict(
                "Another change created one of these emails meanwhile; import again",
                code="email_taken",
            ) from None
        for invite in invites:
            self._mail_invitation(invite)
        return report


# -- bulk import internals ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CsvRow:
    row: int
    values: dict[str, str]
    extra: bool


@dataclass(frozen=True, slots=True)
class _Prepared:
    row: int
    email: str
    first_name: str
    last_name: str
    role: Role
    tenant_id: uuid.UUID


def parse_import_csv(data: bytes) -> list[_CsvRow]:
    """Decode and split the file; problems with the file as a whole raise here."""
    text = decode_csv(data)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=csv_delimiter(text))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise BadRequest(f"The file is not valid CSV: {exc}", code="bad_csv") from None
    columns = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED_IMPORT_COLUMNS if c not in columns]
    if missing:
        raise Invalid(
            f"The first line must be the header {','.join(IMPORT_COLUMNS)};"
            f" missing column(s): {', '.join(missing)}",
            code="bad_header",
        )
    rows: list[_CsvRow] = []
    try:
        for number, fields in enumerate(reader, start=1):
            if not any(f.strip() for f in fields):
                continue
            if len(rows) >= MAX_IMPORT_ROWS:
                raise PayloadTooLarge(
                    f"At most {MAX_IMPORT_ROWS} rows per import; split the file",
                    code="too_many_rows",
                )
            values = {
                column: fields[i].strip() if i < len(fields) else ""
                for i, column in enumerate(columns)
                if column in IMPORT_COLUMNS
            }
            rows.append(_CsvRow(number, values, extra=len(fields) > len(columns)))
    except csv.Error as exc:
        raise BadRequest(f"The file is not valid CSV: {exc}", code="bad_csv") from None
    if not rows:
        raise Invalid("The file has a header but no rows", code="no_rows")
    return rows


def _validate_import(
    session: Session, actor: Principal, default_tenant: uuid.UUID | None, rows: list[_CsvRow]
) -> tuple[list[ImportRow], list[_Prepared]]:
    tenants = _resolve_tenants(session, {r.values.get("tenant_id", "") for r in rows})
    emails: dict[str, str | None] = {}
    for r in rows:
        raw = r.values.get("email", "")
        emails[raw] = _email_problem(raw)[0] if raw else None
    candidates = {e for e in emails.values() if e}
    taken: set[str] = set()
    if candidates:
        for chunk_start in range(0, len(candidates), 500):
            chunk = sorted(candidates)[chunk_start : chunk_start + 500]
            taken.update(
                session.scalars(
                    select(func.lower(User.email)).where(func.lower(User.email).in_(chunk))
                )
            )
    seen: dict[str, int] = {}
    report: list[ImportRow] = []
    prepared: list[_Prepared] = []
    for r in rows:
        errors: list[str] = []
        raw_email = r.values.get("email", "")
        email = emails.get(raw_email)
        if r.extra:
            errors.append("more fields than the header has columns")
        if not raw_email:
            errors.append("email is required")
        elif email is None:
            errors.append(_email_problem(raw_email)[1] or "invalid email")
        elif email in seen:
            errors.append(f"duplicate email in the file (also row {seen[email]})")
        elif email in taken:
            errors.append(EMAIL_TAKEN)
        if email is not None and email not in seen:
            seen[email] = r.row
        first = r.values.get("first_name", "")
        last = r.values.get("last_name", "")
        for name, value in (("first_name", first), ("last_name", last)):
            if len(value) > MAX_NAME_LENGTH:
                errors.append(f"{name} must be at most {MAX_NAME_LENGTH} characters")
        role = parse_role(r.values.get("role", "").lower())
        if role is None:
            errors.append(f"unknown role {r.values.get('role', '')!r}")
        elif role is Role.SUPERADMIN:
            errors.append("superadmin users cannot be imported")
        elif role not in ASSIGNABLE_ROLES.get(actor.role, frozenset()):
            errors.append(f"you cannot assign the role {role.value}")
        tenant_ref = r.values.get("tenant_id", "")
        tenant_id: uuid.UUID | None
        if tenant_ref:
            tenant_id = tenants.get(tenant_ref)
            if tenant_id is None:
                errors.append(
                    TENANT_ACCESS_DENIED
                    if not actor.is_superadmin
                    else f"unknown tenant {tenant_ref}"
                )
            elif not actor.is_superadmin and tenant_id != actor.tenant_id:
                errors.append(TENANT_ACCESS_DENIED)
                tenant_id = None
        else:
            tenant_id = default_tenant
            if tenant_id is None:
                errors.append("tenant_id is required (or name the tenant with X-Tenant-ID)")
        if errors or email is None or role is None or tenant_id is None:
            report.append(ImportRow(r.row, raw_email, "error", errors))
            continue
        report.append(ImportRow(r.row, email, "ok"))
        prepared.append(_Prepared(r.row, email, first, last, role, tenant_id))
    return report, prepared


def _resolve_tenants(session: Session, refs: set[str]) -> dict[str, uuid.UUID]:
    refs = {r for r in refs if r}
    if not refs:
        return {}
    ids: list[uuid.UUID] = []
    slugs: list[str] = []
    for ref in refs:
        try:
            ids.append(uuid.UUID(ref))
        except ValueError:
            slugs.append(ref.lower())
    found = session.execute(
        select(Tenant.id, Tenant.slug).where(
            Tenant.deleted_at.is_(None), or_(Tenant.id.in_(ids), Tenant.slug.in_(slugs))
        )
    ).all()
    by_id = {str(row.id): row.id for row in found}
    by_slug = {row.slug: row.id for row in found}
    out: dict[str, uuid.UUID] = {}
    for ref in refs:
        try:
            key = str(uuid.UUID(ref))
            if key in by_id:
                out[ref] = by_id[key]
        except ValueError:
            if ref.lower() in by_slug:
                out[ref] = by_slug[ref.lower()]
    return out


def _any_user(session: Session) -> bool:
    return bool(session.scalar(select(exists().where(User.id.is_not(None)))))


def _lock_bootstrap(session: Session) -> None:
    """Serialise first-run bootstraps: SQLite writers already are (BEGIN IMMEDIATE); on
    PostgreSQL a transaction-level advisory lock makes "table empty?" + insert atomic."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(0x4A15A_B007)))


__all__ = [
    "ImportReport",
    "ImportRow",
    "InvitationRecord",
    "NewUser",
    "UserChanges",
    "UserFilter",
    "UserRecord",
    "UserService",
    "normalize_email",
]
