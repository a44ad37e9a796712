"""Employees: the tenant's people, linked to users by email (guide 3.3).

A user is the login; an employee is the CRM-side person of one tenant, and its department
decides what a manager sees (data scope).  Admins (and superadmins, and holders of a custom
`employees` grant) manage employees; support reads the whole tenant, a manager the employees
of their department, an employee their own record.  Changing an employee's department or
user link changes the linked user's data scope, so the auth gate forgets that user's cached
principal at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aisha_server.auth.authorize import allows
from aisha_server.auth.gate import AuthGate
from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import DataScope
from aisha_server.db.base import utcnow
from aisha_server.db.models import Employee, Tenant, User
from aisha_server.db.uow import Database
from aisha_server.errors import Conflict, Invalid, NotFound, PermissionDenied
from aisha_server.services.pagination import Page
from aisha_server.services.users import normalize_email

T = TypeVar("T")

EMPLOYEE_STATUSES = ("active", "inactive", "on_leave", "terminated")
EMPLOYEE_NOT_FOUND = "Employee not found"
NO_SUCH_USER = "No user with this email in the tenant"
EMAIL_IN_USE = "An employee with this email already exists in the tenant"


@dataclass(frozen=True, slots=True)
class EmployeeRecord:
    id: uuid.UUID
    tenant_id: uuid.UUID
    user_id: uuid.UUID | None
    email: str | None
    first_name: str
    last_name: str
    department: str | None
    title: str | None
    phone: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, row: Employee) -> EmployeeRecord:
        return cls(
            id=row.id,
            tenant_id=row.tenant_id,
            user_id=row.user_id,
            email=row.email,
            first_name=row.first_name,
            last_name=row.last_name,
            department=row.department,
            title=row.title,
            phone=row.phone,
            status=row.status,
            created_at=row.created_at,
            updated_at=row.updated_at,
            version=row.version,
        )


@dataclass(frozen=True, slots=True)
class EmployeeFilter:
    department: str | None = None
    status: str | None = None
    q: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class EmployeeDraft:
    first_name: str
    last_name: str = ""
    user_email: str | None = None
    email: str | None = None
    department: str | None = None
    title: str | None = None
    phone: str | None = None
    status: str = "active"


@dataclass(frozen=True, slots=True)
class EmployeeChanges:
    """None leaves a field as it is; `user_email=""` unlinks the user."""

    first_name: str | None = None
    last_name: str | None = None
    user_email: str | None = None
    email: str | None = None
    department: str | None = None
    title: str | None = None
    phone: str | None = None
    status: str | None = None


def _status(value: str) -> str:
    if value not in EMPLOYEE_STATUSES:
        raise Invalid(
            f"status must be one of: {', '.join(EMPLOYEE_STATUSES)}",
            details=[{"field": "status", "message": "unknown status"}],
        )
    return value


def _text(value: str | None) -> str | None:
    """Blank optional text is stored as NULL."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def _read_scope(actor: Principal) -> ColumnElement[bool] | None:
    """The employees `actor` may read within a tenant; None means all of them."""
    scope = actor.data_scope
    if scope in (DataScope.ALL_TENANTS, DataScope.TENANT) or actor.user_id is None:
        return None
    own = Employee.user_id == actor.user_id
    if scope is DataScope.DEPARTMENT and actor.department:
        return or_(Employee.department == actor.department, own)
    return own


def _linked_user(session: Session, tenant_id: uuid.UUID, email: str) -> User:
    user = session.scalar(
        select(User).where(
            User.tenant_id == tenant_id,
            func.lower(User.email) == email,
            User.deleted_at.is_(None),
        )
    )
    if user is None:
        raise Invalid(NO_SUCH_USER, details=[{"field": "user_email", "message": NO_SUCH_USER}])
    return user


def _email_holder(session: Session, tenant_id: uuid.UUID, email: str) -> Employee | None:
    return session.scalar(
        select(Employee).where(Employee.tenant_id == tenant_id, func.lower(Employee.email) == email)
    )


class EmployeeService:
    def __init__(self, db: Database, gate: AuthGate) -> None:
        self._db = db
        self._gate = gate

    async def _run(
        self, tenant_id: uuid.UUID | None, fn: Callable[[Session], T], *, write: bool = True
    ) -> T:
        if tenant_id is None:
            return await self._db.run(fn, system=True, write=write)
        return await self._db.run(fn, tenant_id=tenant_id, write=write)

    @staticmethod
    def _tenant(actor: Principal, tenant_id: uuid.UUID | None) -> uuid.UUID | None:
        """The tenant the request acts in: a tenant user's own; a superadmin's choice."""
        if actor.is_superadmin:
            return tenant_id
        if tenant_id is not None and tenant_id != actor.tenant_id:
            raise PermissionDenied("Access denied: Invalid tenant", code="tenant_access_denied")
        return actor.tenant_id

    @staticmethod
    def _require(actor: Principal, action: str) -> None:
        if not allows(actor, "employees", action):
            raise PermissionDenied(f"Permission denied: {action} employees")

    @staticmethod
    def _visible(
        session: Session, actor: Principal, tenant_id: uuid.UUID | None, employee_id: uuid.UUID
    ) -> Employee:
        condition: list[ColumnElement[bool]] = [
            Employee.id == employee_id,
            Employee.deleted_at.is_(None),
        ]
        if tenant_id is not None:
            condition.append(Employee.tenant_id == tenant_id)
        scope = _read_scope(actor)
        if scope is not None:
            condition.append(scope)
        row = session.scalar(select(Employee).where(*condition))
        if row is None:
            raise NotFound(EMPLOYEE_NOT_FOUND)
        return row

    # -- reading -------------------------------------------------------------------------------
    async def list_employees(
        self, actor: Principal, tenant_id: uuid.UUID | None, filters: EmployeeFilter
    ) -> Page[EmployeeRecord]:
        tenant = self._tenant(actor, tenant_id)
        if tenant is None and not actor.is_superadmin:
            raise PermissionDenied("Access denied: Invalid tenant", code="tenant_access_denied")
        if filters.status is not None:
            _status(filters.status)

        def read(session: Session) -> Page[EmployeeRecord]:
            condition: list[ColumnElement[bool]] = [Employee.deleted_at.is_(None)]
            if tenant is not None:
                condition.append(Employee.tenant_id == tenant)
            scope = _read_scope(actor)
            if scope is not None:
                condition.append(scope)
            if filters.department is not None:
                condition.append(
                    func.lower(Employee.department) == filters.department.strip().lower()
                    if filters.department.strip()
                    else Employee.department.is_(None)
                )
            if filters.status is not None:
                condition.append(Employee.status == filters.status)
            if filters.q and filters.q.strip():
                pattern = _like(filters.q.strip())
                full_name = func.lower(Employee.first_name + " " + Employee.last_name)
                condition.append(
                    or_(
                        full_name.like(pattern, escape="\\"),
                        func.lower(func.coalesce(Employee.email, "")).like(pattern, escape="\\"),
                        func.lower(func.coalesce(Employee.title, "")).like(pattern, escape="\\"),
                    )
                )
            total = session.scalar(select(func.count()).select_from(Employee).where(*condition))
            found = session.scalars(
                select(Employee)
                .where(*condition)
                .order_by(Employee.last_name, Employee.first_name, Employee.id)
                .limit(filters.limit)
                .offset(filters.offset)
            ).all()
            return Page(
                [EmployeeRecord.of(e) for e in found], total or 0, filters.limit, filters.offset
            )

        return await self._run(tenant, read, write=False)

    async def get_employee(
        self, actor: Principal, tenant_id: uuid.UUID | None, employee_id: uuid.UUID
    ) -> EmployeeRecord:
        tenant = self._tenant(actor, tenant_id)
        return await self._run(
            tenant,
            lambda s: EmployeeRecord.of(self._visible(s, actor, tenant, employee_id)),
            write=False,
        )

    # -- changes ---------------------------------------------------------------------------------
    async def create_employee(
        self, actor: Principal, tenant_id: uuid.UUID | None, draft: EmployeeDraft
    ) -> EmployeeRecord:
        self._require(actor, "create")
        tenant = self._tenant(actor, tenant_id)
        if tenant is None:
            raise Invalid("tenant_id is required", details=[{"field": "tenant_id"}])
        first = (draft.first_name or "").strip()
        if not first:
            raise Invalid("first_name is required", details=[{"field": "first_name"}])
        status = _status(draft.status)
        user_email = (
            normalize_email(draft.user_email, field_name="user_email")
            if (draft.user_email)
            else None
        )
        email = normalize_email(draft.email) if draft.email else None
        if user_email and email and user_email != email:
            raise Invalid("email and user_email differ; a linked employee uses the user's email")

        def write(session: Session) -> EmployeeRecord:
            if session.get(Tenant, tenant) is None:
                raise NotFound("Tenant not found", code="tenant_not_found")
            user = _linked_user(session, tenant, user_email) if user_email else None
            address = user.email if user is not None else email
            if user is not None and session.scalar(
                select(Employee.id).where(
                    Employee.user_id == user.id,
                    Employee.tenant_id == tenant,
                    Employee.deleted_at.is_(None),
                )
            ):
                raise Conflict("This user is already linked to an employee", code="user_linked")
            row = _email_holder(session, tenant, address) if address else None
            if row is not None and row.deleted_at is None:
                raise Conflict(EMAIL_IN_USE, code="employee_email_taken")
            if row is None:  # a tombstoned row with the email comes back instead (unique key)
                row = Employee(tenant_id=tenant)
                session.add(row)
            row.deleted_at = None
            row.user_id = user.id if user is not None else None
            row.email = address
            row.first_name = first
            row.last_name = draft.last_name.strip()
            row.department = _text(draft.department)
            row.title = _text(draft.title)
            row.phone = _text(draft.phone)
            row.status = status
            session.flush()
            return EmployeeRecord.of(row)

        record = await self._write(tenant, write)
        if record.user_id is not None:
            self._gate.forget_user(record.user_id)
        return record

    async def update_employee(
        self,
        actor: Principal,
        tenant_id: uuid.UUID | None,
        employee_id: uuid.UUID,
        changes: EmployeeChanges,
    ) -> EmployeeRecord:
        tenant = self._tenant(actor, tenant_id)
        self._require(actor, "update")
        if changes.status is not None:
            _status(changes.status)
        if changes.first_name is not None and not changes.first_name.strip():
            raise Invalid("first_name cannot be empty", details=[{"field": "first_name"}])
        user_email = (
            normalize_email(changes.user_email, field_name="user_email")
            if changes.user_email
            else changes.user_email  # None: unchanged; "": unlink
        )
        email = normalize_email(changes.email) if changes.email else None
        touched: set[uuid.UUID] = set()

        def write(session: Session) -> EmployeeRecord:
            row = self._visible(session, actor, tenant, employee_id)
            before_user, before_department = row.user_id, row.department
            if user_email == "":
                row.user_id = None
            elif user_email is not None:
                user = _linked_user(session, row.tenant_id, user_email)
                if user.id != row.user_id:
                    other = session.scalar(
                        select(Employee.id).where(
                            Employee.user_id == user.id,
                            Employee.tenant_id == row.tenant_id,
                            Employee.deleted_at.is_(None),
                            Employee.id != row.id,
                        )
                    )
                    if other is not None:
                        raise Conflict(
                            "This user is already linked to an employee", code="user_linked"
                        )
                row.user_id = user.id
                row.email = user.email
            if email is not None and email != row.email:
                if row.user_id is not None and user_email != "":
                    raise Invalid("A linked employee uses the user's email; change the user")
                holder = _email_holder(session, row.tenant_id, email)
                if holder is not None and holder.id != row.id:
                    raise Conflict(EMAIL_IN_USE, code="employee_email_taken")
                row.email = email
            if changes.first_name is not None:
                row.first_name = changes.first_name.strip()
            if changes.last_name is not None:
                row.last_name = changes.last_name.strip()
            if changes.department is not None:
                row.department = _text(changes.department)
            if changes.title is not None:
                row.title = _text(changes.title)
            if changes.phone is not None:
                row.phone = _text(changes.phone)
            if changes.status is not None:
                row.status = changes.status
            session.flush()
            if row.user_id != before_user or row.department != before_department:
                touched.update(u for u in (before_user, row.user_id) if u is not None)
            return EmployeeRecord.of(row)

        record = await self._write(tenant, write)
        for user_id in touched:
            self._gate.forget_user(user_id)
        return record

    async def delete_employee(
        self, actor: Principal, tenant_id: uuid.UUID | None, employee_id: uuid.UUID
    ) -> EmployeeRecord:
        """Soft delete (the tombstone syncs); the linked user loses the department scope."""
        tenant = self._tenant(actor, tenant_id)
        self._require(actor, "delete")

        def write(session: Session) -> EmployeeRecord:
            row = self._visible(session, actor, tenant, employee_id)
            row.deleted_at = utcnow()
            session.flush()
            return EmployeeRecord.of(row)

        record = await self._write(tenant, write)
        if record.user_id is not None:
            self._gate.forget_user(record.user_id)
        return record

    async def _write(self, tenant: uuid.UUID | None, fn: Callable[[Session], T]) -> T:
        try:
            return await self._run(tenant, fn)
        except IntegrityError:  # a concurrent change took the email first
            raise Conflict(EMAIL_IN_USE, code="employee_email_taken") from None


__all__ = [
    "EMPLOYEE_STATUSES",
    "EmployeeChanges",
    "EmployeeDraft",
    "EmployeeFilter",
    "EmployeeRecord",
    "EmployeeService",
]
