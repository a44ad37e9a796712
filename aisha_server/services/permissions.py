"""Custom permissions and role grants (guide 3.2 "Custom Permissions").

A permission names an action on a resource (`*` for every resource); `role_permissions`
grants it to a role: a base role (`manager` ...) or a custom role name that users carry in
`users.custom_roles` (e.g. `financial_manager`).  Both tables are shared by all tenants, so
managing them is System Config (superadmin).  Every change drops the auth gate's cache, so
grants apply to the next request.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aisha_server.auth.authorize import GRANT_ACTIONS, RESOURCES, require
from aisha_server.auth.gate import AuthGate
from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import Capability
from aisha_server.db.models import Permission, RolePermission
from aisha_server.db.uow import Database
from aisha_server.errors import Conflict, Invalid, NotFound

ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}$")


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(f"Validation failed: {field}", details=[{"field": field, "message": message}])


def check_resource(resource: str) -> str:
    if resource != "*" and resource not in RESOURCES:
        raise _invalid("resource", "one of: *, " + ", ".join(sorted(RESOURCES)))
    return resource


def check_action(action: str) -> str:
    if action not in GRANT_ACTIONS:
        raise _invalid("action", "one of: " + ", ".join(sorted(GRANT_ACTIONS)))
    return action


def check_role(role: str) -> str:
    if not ROLE_NAME.match(role):
        raise _invalid(
            "role", "lower-case letters, digits and underscores, starting with a letter (max 50)"
        )
    return role


@dataclass(frozen=True, slots=True)
class PermissionChanges:
    name: str | None = None
    description: str | None = None
    resource: str | None = None
    action: str | None = None


def permission_view(permission: Permission, roles: list[str] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": str(permission.id),
        "name": permission.name,
        "description": permission.description,
        "resource": permission.resource,
        "action": permission.action,
        "created_at": permission.created_at,
        "updated_at": permission.updated_at,
    }
    if roles is not None:
        view["roles"] = roles
    return view


def grant_view(grant: RolePermission, permission: Permission) -> dict[str, Any]:
    return {
        "id": str(grant.id),
        "role": grant.role,
        "permission_id": str(grant.permission_id),
        "permission": permission_view(permission),
        "created_at": grant.created_at,
    }


def _roles_by_permission(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    out: dict[uuid.UUID, list[str]] = {i: [] for i in ids}
    if ids:
        rows = session.execute(
            select(RolePermission.permission_id, RolePermission.role)
            .where(RolePermission.permission_id.in_(ids))
            .order_by(RolePermission.role)
        )
        for permission_id, role in rows:
            out[permission_id].append(role)
    return out


def _permission(session: Session, permission_id: uuid.UUID) -> Permission:
    permission = session.get(Permission, permission_id)
    if permission is None:
        raise NotFound(f"Permission not found: {permission_id}", code="permission_not_found")
    return permission


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"A permission named {name!r} already exists",
        code="permission_exists",
        details=[{"field": "name", "message": "already in use"}],
    )


class PermissionService:
    def __init__(self, db: Database, gate: AuthGate) -> None:
        self._db = db
        self._gate = gate

    @staticmethod
    def _require(actor: Principal, action: str) -> None:
        require(
            actor,
            Capability.SYSTEM_CONFIG,
            grant=("permissions", action),
            message="Managing permissions is system configuration (superadmin)",
        )

    # -- permissions ----------------------------------------------------------------------
    async def list_permissions(self, actor: Principal) -> list[dict[str, Any]]:
        self._require(actor, "read")

        def read(session: Session) -> list[dict[str, Any]]:
            rows = list(session.scalars(select(Permission).order_by(Permission.name)))
            roles = _roles_by_permission(session, [p.id for p in rows])
            return [permission_view(p, roles[p.id]) for p in rows]

        return await self._db.run(read, system=True, write=False)

    async def get_permission(self, actor: Principal, permission_id: uuid.UUID) -> dict[str, Any]:
        self._require(actor, "read")

        def read(session: Session) -> dict[str, Any]:
            permission = _permission(session, permission_id)
            return permission_view(
                permission, _roles_by_permission(session, [permission.id])[permission.id]
            )

        return await self._db.run(read, system=True, write=False)

    async def create_permission(
        self,
        actor: Principal,
        *,
        name: str,
        resource: str,
        action: str,
        description: str | None = None,
    ) -> dict[str, Any]:
        self._require(actor, "create")
        name = name.strip()
        if not name:
            raise _invalid("name", "must not be empty")
        check_resource(resource)
        check_action(action)

        def write(session: Session) -> dict[str, Any]:
            if session.scalar(select(Permission.id).where(Permission.name == name)) is not None:
                raise _name_taken(name)
            permission = Permission(
                name=name, description=description, resource=resource, action=action
            )
            session.add(permission)
            session.flush()
            return permission_view(permission, [])

        try:
            return await self._db.run(write, system=True)
        except IntegrityError:
            raise _name_taken(name) from None

    async def update_permission(
        self, actor: Principal, permission_id: uuid.UUID, changes: PermissionChanges
    ) -> dict[str, Any]:
        self._require(actor, "update")
        name = changes.name.strip() if changes.name is not None else None
        if name == "":
            raise _invalid("name", "must not be empty")
        if changes.resource is not None:
            check_resource(changes.resource)
        if changes.action is not None:
            check_action(changes.action)

        def write(session: Session) -> dict[str, Any]:
            permission = _permission(session, permission_id)
            if name is not None and name != permission.name:
                taken = session.scalar(select(Permission.id).where(Permission.name == name))
                if taken is not None:
                    raise _name_taken(name)
                permission.name = name
            if changes.description is not None:
                permission.description = changes.description
            if changes.resource is not None:
                permission.resource = changes.resource
            if changes.action is not None:
                permission.action = changes.action
            session.flush()
            return permission_view(
                permission, _roles_by_permission(session, [permission.id])[permission.id]
            )

        try:
            view = await self._db.run(write, system=True)
        except IntegrityError:
            raise _name_taken(name or "") from None
        self._gate.forget_all()
        return view

    async def delete_permission(self, actor: Principal, permission_id: uuid.UUID) -> None:
        """Deletes the permission and every grant of it."""
        self._require(actor, "delete")

        def write(session: Session) -> None:
            _permission(session, permission_id)
            session.execute(
                delete(RolePermission).where(RolePermission.permission_id == permission_id)
            )
            session.execute(delete(Permission).where(Permission.id == permission_id))

        await self._db.run(write, system=True)
        self._gate.forget_all()

    # -- grants ---------------------------------------------------------------------------
    async def list_grants(
        self, actor: Principal, *, role: str | None = None, permission_id: uuid.UUID | None = None
    ) -> list[dict[str, Any]]:
        self._require(actor, "read")

        def read(session: Session) -> list[dict[str, Any]]:
            query = select(RolePermission, Permission).join(
                Permission, Permission.id == RolePermission.permission_id
            )
            if role is not None:
                query = query.where(RolePermission.role == role)
            if permission_id is not None:
                query = query.where(RolePermission.permission_id == permission_id)
            rows = session.execute(query.order_by(RolePermission.role, Permission.name))
            return [grant_view(g, p) for g, p in rows]

        return await self._db.run(read, system=True, write=False)

    async def grant(
        self, actor: Principal, *, role: str, permission_id: uuid.UUID
    ) -> dict[str, Any]:
        self._require(actor, "create")
        check_role(role)

        def write(session: Session) -> dict[str, Any]:
            permission = _permission(session, permission_id)
            exists = session.scalar(
                select(RolePermission.id).where(
                    RolePermission.role == role, RolePermission.permission_id == permission_id
                )
            )
            if exists is not None:
                raise Conflict(
                    f"Role {role!r} already has permission {permission.name!r}",
                    code="grant_exists",
                )
            grant = RolePermission(role=role, permission_id=permission_id)
            session.add(grant)
            session.flush()
            return grant_view(grant, permission)

        try:
            view = await self._db.run(write, system=True)
        except IntegrityError:
            raise Conflict(
                f"Role {role!r} already has this permission", code="grant_exists"
            ) from None
        self._gate.forget_all()
        return view

    async def revoke(
        self,
        actor: Principal,
        *,
        grant_id: uuid.UUID | None = None,
        role: str | None = None,
        permission_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        """Revoke a grant named by its id, or by role and permission."""
        self._require(actor, "delete")

        def write(session: Session) -> dict[str, Any]:
            if grant_id is not None:
                query = select(RolePermission).where(RolePermission.id == grant_id)
            else:
                query = select(RolePermission).where(
                    RolePermission.role == role, RolePermission.permission_id == permission_id
                )
            grant = session.scalar(query)
            if grant is None:
                raise NotFound("Role permission not found", code="grant_not_found")
            view = grant_view(grant, _permission(session, grant.permission_id))
            session.execute(delete(RolePermission).where(RolePermission.id == grant.id))
            return view

        view = await self._db.run(write, system=True)
        self._gate.forget_all()
        return view
