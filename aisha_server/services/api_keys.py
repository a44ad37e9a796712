"""API keys (guide 3.4): created by admins, shown once, stored hashed, scoped and expiring.

A key belongs to one tenant.  Without an owner (`user_id`) it acts as an administrator of
its tenant, limited to its permission strings; with an owner it acts as that user.  Keys of
employees (and support) hold read permissions only (guide 3.2, "Read-only API access").
Admins manage every key of their tenant; other users create, see and revoke their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aisha_server.auth.authorize import (
    expand_action,
    has_grant,
    is_read_only,
    permission_problem,
    require_allowed,
)
from aisha_server.auth.gate import AuthGate
from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import Capability, Role, parse_role
from aisha_server.auth.tokens import digest, new_secret
from aisha_server.db.base import utcnow
from aisha_server.db.models import ApiKey, User
from aisha_server.db.uow import Database
from aisha_server.errors import TENANT_ACCESS_DENIED, Invalid, NotFound, PermissionDenied

KEY_PREFIX = "ak_"
DISPLAY_PREFIX_LENGTH = 10
READ_ONLY_ROLES = frozenset({Role.EMPLOYEE, Role.SUPPORT})


@dataclass(frozen=True, slots=True)
class NewApiKey:
    name: str
    permissions: Sequence[str]
    expires_at: datetime | None = None
    user_id: uuid.UUID | None = None


def key_status(key: ApiKey, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def key_view(key: ApiKey, now: datetime | None = None) -> dict[str, Any]:
    """Everything about a key except the key: `key` holds its digest and never leaves."""
    return {
        "id": str(key.id),
        "tenant_id": str(key.tenant_id),
        "name": key.name,
        "key_prefix": key.key_prefix,
        "permissions": list(key.permissions or []),
        "user_id": str(key.user_id) if key.user_id else None,
        "created_by": str(key.created_by) if key.created_by else None,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
        "created_at": key.created_at,
        "status": key_status(key, now or utcnow()),
    }


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(f"Validation failed: {field}", details=[{"field": field, "message": message}])


def validated_permissions(permissions: Sequence[str]) -> list[str]:
    if not permissions:
        raise _invalid("permissions", "at least one permission is required, e.g. 'read:contacts'")
    clean: list[str] = []
    for i, value in enumerate(permissions):
        problem = permission_problem(value)
        if problem is not None:
            raise _invalid(f"permissions.{i}", problem)
        if value not in clean:
            clean.append(value)
    return clean


def _within(actor: Principal, permission: str) -> bool:
    """A key may only hand out what it holds itself (no escalation through a key)."""
    if actor.key_permissions is None:
        return True
    action, _, resource = permission.partition(":") if permission != "*" else ("*", "", "*")
    return all(actor.key_allows(a, resource) for a in expand_action(action))


class ApiKeyService:
    def __init__(self, db: Database, gate: AuthGate) -> None:
        self._db = db
        self._gate = gate

    @staticmethod
    def _manages_all(actor: Principal) -> bool:
        """Admins (and superadmins) manage every key of a tenant; others their own."""
        return actor.can(Capability.USER_MANAGEMENT) or has_grant(actor, "api-keys", "manage")

    async def create(
        self, actor: Principal, tenant_id: uuid.UUID, new: NewApiKey
    ) -> tuple[dict[str, Any], str]:
        """The key's view and its plaintext, which is shown this once and never stored."""
        require_allowed(actor, "api-keys", "create")
        self._same_tenant(actor, tenant_id)
        name = new.name.strip()
        if not name or len(name) > 200:
            raise _invalid("name", "must be 1 to 200 characters")
        permissions = validated_permissions(new.permissions)
        for i, permission in enumerate(permissions):
            if not _within(actor, permission):
                raise PermissionDenied(
                    f"This API key cannot grant {permission!r} (permissions.{i}): "
                    "a key only hands out permissions it holds",
                    code="api_key_scope",
                )
        now = utcnow()
        expires_at = new.expires_at
        if expires_at is not None:
            if expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=UTC)
            if expires_at <= now:
                raise _invalid("expires_at", "must be in the future")
        owner_id = new.user_id
        if not self._manages_all(actor):
            if owner_id is not None and owner_id != actor.user_id:
                raise PermissionDenied(
                    "Only administrators create API keys for other users", code="forbidden"
                )
            owner_id = actor.user_id
        secret = new_secret(KEY_PREFIX)

        def write(session: Session) -> dict[str, Any]:
            if owner_id is not None:
                self._check_owner(session, tenant_id, owner_id, permissions)
            key = ApiKey(
                key=digest(secret),
                key_prefix=secret[:DISPLAY_PREFIX_LENGTH],
                tenant_id=tenant_id,
                user_id=owner_id,
                name=name,
                permissions=permissions,
                expires_at=expires_at,
                created_by=actor.user_id,
            )
            session.add(key)
            session.flush()
            return key_view(key, now)

        view = await self._db.run(write, tenant_id=tenant_id)
        return view, secret

    @staticmethod
    def _check_owner(
        session: Session, tenant_id: uuid.UUID, owner_id: uuid.UUID, permissions: list[str]
    ) -> None:
        owner = session.scalar(
            select(User).where(
                User.id == owner_id, User.tenant_id == tenant_id, User.deleted_at.is_(None)
            )
        )
        if owner is None:
            raise _invalid("user_id", "no such user in this tenant")
        if owner.status != "active":
            raise _invalid("user_id", "the user is not active")
        role = parse_role(owner.role)
        if role in READ_ONLY_ROLES and not is_read_only(permissions):
            raise _invalid(
                "permissions",
                f"a key of a user with role {owner.role} may only hold read permissions "
                "(read-only API access)",
            )

    async def list_keys(self, actor: Principal, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
        require_allowed(actor, "api-keys", "read")
        self._same_tenant(actor, tenant_id)
        everyone = self._manages_all(actor)

        def read(session: Session) -> list[dict[str, Any]]:
            query = select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.deleted_at.is_(None))
            if not everyone:
                query = query.where(ApiKey.user_id == actor.user_id)
            now = utcnow()
            rows = session.scalars(query.order_by(ApiKey.created_at.desc(), ApiKey.id))
            return [key_view(k, now) for k in rows]

        return await self._db.run(read, tenant_id=tenant_id, write=False)

    async def revoke(
        self, actor: Principal, tenant_id: uuid.UUID, key_id: uuid.UUID
    ) -> dict[str, Any]:
        require_allowed(actor, "api-keys", "delete")
        self._same_tenant(actor, tenant_id)
        everyone = self._manages_all(actor)

        def write(session: Session) -> tuple[dict[str, Any], str]:
            key = session.scalar(
                select(ApiKey).where(
                    ApiKey.id == key_id, ApiKey.tenant_id == tenant_id, ApiKey.deleted_at.is_(None)
                )
            )
            if key is None or (not everyone and key.user_id != actor.user_id):
                raise NotFound(f"API key not found: {key_id}", code="api_key_not_found")
            if key.revoked_at is None:
                key.revoked_at = utcnow()
                session.flush()
            return key_view(key), key.key

        view, hashed = await self._db.run(write, tenant_id=tenant_id)
        self._gate.forget_api_key(hashed)
        return view

    @staticmethod
    def _same_tenant(actor: Principal, tenant_id: uuid.UUID) -> None:
        if not actor.is_superadmin and actor.tenant_id != tenant_id:
            raise PermissionDenied(TENANT_ACCESS_DENIED, code="tenant_access_denied")
