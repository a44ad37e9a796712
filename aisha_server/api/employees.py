"""Routes of /api/employees (guide 3.3 "Employee Management")."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from aisha_server import keys
from aisha_server.api.context import principal, tenant_for
from aisha_server.api.routing import Routes
from aisha_server.envelope import success
from aisha_server.errors import NotFound
from aisha_server.services.employees import (
    EmployeeChanges,
    EmployeeDraft,
    EmployeeFilter,
    EmployeeRecord,
)

routes = Routes()

TAGS = ("employees",)


class EmployeeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: uuid.UUID
    user_id: uuid.UUID | None = Field(description="The linked login, if any")
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


class EmployeeListQuery(BaseModel):
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0)
    q: str | None = Field(None, max_length=200, description="Name, email or title contains")
    department: str | None = Field(None, max_length=100)
    status: str | None = Field(None, max_length=20)
    tenant_id: str | None = Field(None, description="Superadmin: the tenant to list")


class CreateEmployeeBody(BaseModel):
    """Guide 3.3: `user_email` links the employee to an existing user of the tenant."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    user_email: str | None = Field(None, max_length=320, description="Email of the user")
    email: str | None = Field(None, max_length=320, description="For an employee without login")
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field("", max_length=100)
    department: str | None = Field(None, max_length=100)
    title: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=50)
    status: str = Field("active", description="active, inactive, on_leave or terminated")


class UpdateEmployeeBody(BaseModel):
    """Changed fields only; `user_email: ""` removes the link to a user."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(None, description="Must be the employee's tenant")
    user_email: str | None = Field(None, max_length=320)
    email: str | None = Field(None, max_length=320)
    first_name: str | None = Field(None, min_length=1, max_length=100)
    last_name: str | None = Field(None, max_length=100)
    department: str | None = Field(None, max_length=100)
    title: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=50)
    status: str | None = None


class DeletedOut(BaseModel):
    id: uuid.UUID
    deleted: bool


def _out(record: EmployeeRecord) -> EmployeeOut:
    return EmployeeOut.model_validate(record)


def _employee_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["employee_id"])
    except ValueError:
        raise NotFound("Employee not found") from None


@routes.get(
    "/api/employees",
    summary="List employees (data scope applies)",
    description=(
        "Admins and support see their tenant's employees, managers their department's, "
        "employees their own record.  `data` is the page; `pagination` gives limit, offset "
        "and the total count."
    ),
    tags=TAGS,
    query=EmployeeListQuery,
    response=list[EmployeeOut],
)
async def list_employees(request: web.Request, query: EmployeeListQuery) -> web.Response:
    tenant = await tenant_for(request, None, required=False)
    filters = EmployeeFilter(
        department=query.department,
        status=query.status or None,
        q=query.q,
        limit=query.limit,
        offset=query.offset,
    )
    page = await request.app[keys.EMPLOYEE_SERVICE].list_employees(
        principal(request), tenant, filters
    )
    return success(
        [_out(e) for e in page.items],
        pagination=page.pagination(),
    )


@routes.post(
    "/api/employees",
    summary="Create an employee (optionally linked to a user by email)",
    tags=TAGS,
    body=CreateEmployeeBody,
    response=EmployeeOut,
    status=201,
    errors=(409,),
)
async def create_employee(request: web.Request, body: CreateEmployeeBody) -> web.Response:
    tenant = await tenant_for(request, body.tenant_id)
    draft = EmployeeDraft(
        first_name=body.first_name,
        last_name=body.last_name,
        user_email=body.user_email,
        email=body.email,
        department=body.department,
        title=body.title,
        phone=body.phone,
        status=body.status,
    )
    record = await request.app[keys.EMPLOYEE_SERVICE].create_employee(
        principal(request), tenant, draft
    )
    return success(_out(record), status=201)


@routes.get(
    "/api/employees/{employee_id}",
    summary="Get an employee",
    tags=TAGS,
    response=EmployeeOut,
)
async def get_employee(request: web.Request) -> web.Response:
    tenant = await tenant_for(request, None, required=False)
    record = await request.app[keys.EMPLOYEE_SERVICE].get_employee(
        principal(request), tenant, _employee_id(request)
    )
    return success(_out(record))


async def _update(request: web.Request, body: UpdateEmployeeBody) -> web.Response:
    tenant = await tenant_for(request, body.tenant_id, required=False)
    changes = EmployeeChanges(
        first_name=body.first_name,
        last_name=body.last_name,
        user_email=body.user_email,
        email=body.email,
        department=body.department,
        title=body.title,
        phone=body.phone,
        status=body.status,
    )
    record = await request.app[keys.EMPLOYEE_SERVICE].update_employee(
        principal(request), tenant, _employee_id(request), changes
    )
    return success(_out(record))


@routes.put(
    "/api/employees/{employee_id}",
    summary="Update an employee (a department change updates the user's data scope)",
    tags=TAGS,
    body=UpdateEmployeeBody,
    response=EmployeeOut,
    errors=(409,),
)
async def put_employee(request: web.Request, body: UpdateEmployeeBody) -> web.Response:
    return await _update(request, body)


@routes.patch(
    "/api/employees/{employee_id}",
    summary="Update some fields of an employee",
    tags=TAGS,
    body=UpdateEmployeeBody,
    response=EmployeeOut,
    errors=(409,),
)
async def patch_employee(request: web.Request, body: UpdateEmployeeBody) -> web.Response:
    return await _update(request, body)


@routes.delete(
    "/api/employees/{employee_id}",
    summary="Delete an employee (soft delete)",
    tags=TAGS,
    response=DeletedOut,
)
async def delete_employee(request: web.Request) -> web.Response:
    tenant = await tenant_for(request, None, required=False)
    record = await request.app[keys.EMPLOYEE_SERVICE].delete_employee(
        principal(request), tenant, _employee_id(request)
    )
    return success(DeletedOut(id=record.id, deleted=True))
