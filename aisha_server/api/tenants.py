"""/api/tenants (guide 4.2-4.4): create, list, read, configure and delete tenants."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from aisha_server import keys
from aisha_server.api.context import principal, tenant_for
from aisha_server.api.routing import Routes
from aisha_server.envelope import success
from aisha_server.services.tenants import (
    ModuleChange,
    TenantChanges,
    valid_currency,
    valid_date_format,
    valid_slug,
    valid_timezone,
)

routes = Routes()
TAGS = ("tenants",)

Timezone = Annotated[str, AfterValidator(valid_timezone)]
Currency = Annotated[str, AfterValidator(valid_currency)]
DateFormat = Annotated[str, AfterValidator(valid_date_format)]
Slug = Annotated[str, AfterValidator(valid_slug)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Status = Literal["active", "suspended", "archived"]


class TenantSettingsIn(BaseModel):
    """Known keys are checked; other keys are kept as given (free JSON)."""

    model_config = ConfigDict(extra="allow")

    timezone: Timezone | None = Field(None, description="IANA time zone, e.g. America/New_York")
    currency: Currency | None = Field(None, description="ISO 4217 code, e.g. USD")
    date_format: DateFormat | None = Field(None, description="e.g. MM/DD/YYYY, YYYY-MM-DD")

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    slug: Slug | None = Field(None, description="derived from the name when omitted")
    status: Status = "active"
    settings: TenantSettingsIn | None = None
    metadata: dict[str, Any] | None = None


class ModuleChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_enabled: StrictBool | None = None
    settings: dict[str, Any] | None = None


class TenantUpdate(BaseModel):
    """Either the guide's flat settings shape (4.4 "Tenant Settings API") or the full one.

    Flat `timezone`/`currency`/`date_format` merge into `settings`; `modules` maps a module
    name to `true`/`false` or `{is_enabled, settings}`.  Name, slug and status are for
    superadmins; settings, metadata and modules for the tenant's admins too.
    """

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    slug: Slug | None = None
    status: Status | None = None
    settings: TenantSettingsIn | None = None
    metadata: dict[str, Any] | None = None
    timezone: Timezone | None = None
    currency: Currency | None = None
    date_format: DateFormat | None = None
    modules: dict[str, StrictBool | ModuleChangeIn] | None = None

    def changes(self) -> TenantChanges:
        settings = self.settings.as_dict() if self.settings is not None else None
        flat = {
            k: v
            for k, v in (
                ("timezone", self.timezone),
                ("currency", self.currency),
                ("date_format", self.date_format),
            )
            if v is not None
        }
        if flat:
            settings = {**(settings or {}), **flat}
        modules = {
            name: ModuleChange(is_enabled=change)
            if isinstance(change, bool)
            else ModuleChange(is_enabled=change.is_enabled, settings=change.settings)
            for name, change in (self.modules or {}).items()
        }
        return TenantChanges(
            name=self.name,
            slug=self.slug,
            status=self.status,
            settings=settings,
            metadata=self.metadata,
            modules=modules,
        )


class TenantListQuery(BaseModel):
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0)
    q: str | None = Field(None, max_length=200, description="search in name and slug")
    status: Status | None = None


class ModuleOut(BaseModel):
    is_enabled: bool
    settings: dict[str, Any] | None


class TenantOut(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    status: Status
    settings: dict[str, Any]
    metadata: dict[str, Any]
    modules: dict[str, ModuleOut] | None = None
    created_at: datetime
    updated_at: datetime
    version: int
    deleted_at: datetime | None = None


@routes.post(
    "/api/tenants",
    summary="Create a tenant with default module settings (superadmin)",
    tags=TAGS,
    body=TenantCreate,
    response=TenantOut,
    status=201,
    errors=(403, 409, 422),
)
async def create_tenant(request: web.Request, body: TenantCreate) -> web.Response:
    tenant = await request.app[keys.TENANT_SERVICE].create(
        principal(request),
        name=body.name,
        slug=body.slug,
        status=body.status,
        settings=body.settings.as_dict() if body.settings is not None else None,
        metadata=body.metadata,
    )
    return success(tenant, status=201)


@routes.get(
    "/api/tenants",
    summary="List tenants (superadmin)",
    tags=TAGS,
    query=TenantListQuery,
    response=list[TenantOut],
    errors=(403, 422),
)
async def list_tenants(request: web.Request, query: TenantListQuery) -> web.Response:
    page = await request.app[keys.TENANT_SERVICE].list_tenants(
        principal(request), limit=query.limit, offset=query.offset, q=query.q, status=query.status
    )
    return success(
        page.items,
        pagination=page.pagination(),
    )


async def _tenant_in_path(request: web.Request) -> uuid.UUID:
    tenant_id = await tenant_for(request, request.match_info["tenant"])
    assert tenant_id is not None  # required=True
    return tenant_id


@routes.get(
    "/api/tenants/{tenant}",
    summary="A tenant with its settings and modules (UUID or slug)",
    tags=TAGS,
    response=TenantOut,
    errors=(403, 404),
)
async def get_tenant(request: web.Request) -> web.Response:
    tenant_id = await _tenant_in_path(request)
    return success(await request.app[keys.TENANT_SERVICE].get(principal(request), tenant_id))


@routes.put(
    "/api/tenants/{tenant}",
    summary="Update tenant settings and modules (admins) or name, slug, status (superadmin)",
    tags=TAGS,
    body=TenantUpdate,
    response=TenantOut,
    errors=(403, 404, 409, 422),
)
async def update_tenant(request: web.Request, body: TenantUpdate) -> web.Response:
    tenant_id = await _tenant_in_path(request)
    tenant = await request.app[keys.TENANT_SERVICE].update(
        principal(request), tenant_id, body.changes()
    )
    return success(tenant)


@routes.delete(
    "/api/tenants/{tenant}",
    summary="Archive and soft-delete a tenant (superadmin)",
    tags=TAGS,
    response=TenantOut,
    errors=(403, 404),
)
async def delete_tenant(request: web.Request) -> web.Response:
    tenant_id = await _tenant_in_path(request)
    return success(await request.app[keys.TENANT_SERVICE].delete(principal(request), tenant_id))
