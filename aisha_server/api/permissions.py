"""/api/permissions and /api/role-permissions (guide 3.2 "Custom Permissions", superadmin)."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from aisha_server import keys
from aisha_server.api.context import principal
from aisha_server.api.routing import Routes
from aisha_server.envelope import success
from aisha_server.errors import NotFound
from aisha_server.services.permissions import PermissionChanges

routes = Routes()
TAGS = ("permissions",)


class PermissionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["view_sensitive_data"])
    description: str | None = Field(None, max_length=1000)
    resource: str = Field(description="a resource name or '*'", examples=["accounts"])
    action: str = Field(
        description="read, create, update, delete, export, write, manage or '*'",
        examples=["read"],
    )


class PermissionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=1000)
    resource: str | None = None
    action: str | None = None


class PermissionOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    resource: str
    action: str
    roles: list[str] | None = None
    created_at: datetime
    updated_at: datetime


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(
        min_length=1,
        max_length=50,
        description="a base role or a custom role name carried in users.custom_roles",
        examples=["financial_manager"],
    )
    permission_id: uuid.UUID


class GrantQuery(BaseModel):
    role: str | None = Field(None, max_length=50)
    permission_id: uuid.UUID | None = None


class GrantOut(BaseModel):
    id: uuid.UUID
    role: str
    permission_id: uuid.UUID
    permission: PermissionOut
    created_at: datetime


def _uuid_in_path(request: web.Request, name: str, what: str) -> uuid.UUID:
    raw = request.match_info[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"{what} not found: {raw}") from None


@routes.get(
    "/api/permissions",
    summary="Custom permissions, with the roles holding each",
    tags=TAGS,
    response=list[PermissionOut],
    errors=(403,),
)
async def list_permissions(request: web.Request) -> web.Response:
    service = request.app[keys.PERMISSION_SERVICE]
    return success(await service.list_permissions(principal(request)))


@routes.post(
    "/api/permissions",
    summary="Create a custom permission",
    tags=TAGS,
    body=PermissionCreate,
    response=PermissionOut,
    status=201,
    errors=(403, 409, 422),
)
async def create_permission(request: web.Request, body: PermissionCreate) -> web.Response:
    permission = await request.app[keys.PERMISSION_SERVICE].create_permission(
        principal(request),
        name=body.name,
        description=body.description,
        resource=body.resource,
        action=body.action,
    )
    return success(permission, status=201)


@routes.get(
    "/api/permissions/{permission_id}",
    summary="One custom permission",
    tags=TAGS,
    response=PermissionOut,
    errors=(403, 404),
)
async def get_permission(request: web.Request) -> web.Response:
    permission_id = _uuid_in_path(request, "permission_id", "Permission")
    service = request.app[keys.PERMISSION_SERVICE]
    return success(await service.get_permission(principal(request), permission_id))


@routes.put(
    "/api/permissions/{permission_id}",
    summary="Change a custom permission (applies at once to every holder)",
    tags=TAGS,
    body=PermissionUpdate,
    response=PermissionOut,
    errors=(403, 404, 409, 422),
)
async def update_permission(request: web.Request, body: PermissionUpdate) -> web.Response:
    permission_id = _uuid_in_path(request, "permission_id", "Permission")
    permission = await request.app[keys.PERMISSION_SERVICE].update_permission(
        principal(request),
        permission_id,
        PermissionChanges(
            name=body.name, description=body.description, resource=body.resource, action=body.action
        ),
    )
    return success(permission)


@routes.delete(
    "/api/permissions/{permission_id}",
    summary="Delete a custom permission and its grants",
    tags=TAGS,
    errors=(403, 404),
)
async def delete_permission(request: web.Request) -> web.Response:
    permission_id = _uuid_in_path(request, "permission_id", "Permission")
    await request.app[keys.PERMISSION_SERVICE].delete_permission(principal(request), permission_id)
    return success({"id": str(permission_id), "deleted": True})


@routes.get(
    "/api/role-permissions",
    summary="Grants of custom permissions to roles",
    tags=TAGS,
    query=GrantQuery,
    response=list[GrantOut],
    errors=(403, 422),
)
async def list_grants(request: web.Request, query: GrantQuery) -> web.Response:
    grants = await request.app[keys.PERMISSION_SERVICE].list_grants(
        principal(request), role=query.role, permission_id=query.permission_id
    )
    return success(grants)


@routes.post(
    "/api/role-permissions",
    summary="Grant a permission to a role (base or custom role)",
    tags=TAGS,
    body=GrantIn,
    response=GrantOut,
    status=201,
    errors=(403, 404, 409, 422),
)
async def grant_permission(request: web.Request, body: GrantIn) -> web.Response:
    grant = await request.app[keys.PERMISSION_SERVICE].grant(
        principal(request), role=body.role, permission_id=body.permission_id
    )
    return success(grant, status=201)


@routes.delete(
    "/api/role-permissions/{grant_id}",
    summary="Revoke a grant by its id",
    tags=TAGS,
    response=GrantOut,
    errors=(403, 404),
)
async def revoke_grant(request: web.Request) -> web.Response:
    grant_id = _uuid_in_path(request, "grant_id", "Role permission")
    grant = await request.app[keys.PERMISSION_SERVICE].revoke(principal(request), grant_id=grant_id)
    return success(grant)


@routes.delete(
    "/api/role-permissions",
    summary="Revoke the grant of a permission to a role (?role=...&permission_id=...)",
    tags=TAGS,
    query=GrantIn,
    response=GrantOut,
    errors=(403, 404, 422),
)
async def revoke_grant_by_pair(request: web.Request, query: GrantIn) -> web.Response:
    grant = await request.app[keys.PERMISSION_SERVICE].revoke(
        principal(request), role=query.role, permission_id=query.permission_id
    )
    return success(grant)
