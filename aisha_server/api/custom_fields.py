"""/api/custom-fields: tenant-defined fields per entity (guide 4.4 "Custom Fields", 6.5).

Every user of the tenant reads the definitions; tenant admins and the superadmin (who
names the tenant with `?tenant_id=` or `X-Tenant-ID`) create, change, archive (DELETE)
and restore them.  Archiving never destroys stored values.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from aisha_server import keys
from aisha_server.api.context import principal, tenant_for
from aisha_server.api.routing import Routes
from aisha_server.envelope import success
from aisha_server.errors import NotFound
from aisha_server.services.custom_fields import FieldChanges, NewField

routes = Routes()
TAGS = ("custom-fields",)
FieldType = Literal[
    "text",
    "number",
    "currency",
    "date",
    "datetime",
    "select",
    "multiselect",
    "boolean",
    "email",
    "phone",
    "url",
]


class TenantQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt parameter is a 422, not ignored

    tenant_id: str | None = Field(None, description="superadmin: the tenant (UUID or slug)")


class ListQuery(TenantQuery):
    entity: str | None = Field(
        None, description="contact, account, lead, opportunity, activity or note (plurals too)"
    )
    include_archived: bool = False


class FieldCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    entity: str = Field(examples=["contact"])
    field_name: str = Field(
        max_length=100, pattern=r"^[a-z][a-z0-9_]{0,62}$", examples=["referral_source"]
    )
    field_type: FieldType
    label: str | None = Field(None, max_length=200, examples=["Referral source"])
    options: list[str] | None = Field(
        None, description="select/multiselect only", examples=[["Website", "Referral"]]
    )
    is_required: bool = False
    position: int = Field(0, ge=0, le=1_000_000)


class FieldUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    label: str | None = Field(None, max_length=200)
    options: list[str] | None = None
    is_required: bool | None = None
    position: int | None = Field(None, ge=0, le=1_000_000)
    field_type: FieldType | None = Field(None, description="cannot be changed; refused (422)")


class FieldOut(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    entity: str
    field_name: str
    field_type: str
    label: str | None
    options: list[str] | None
    is_required: bool
    is_archived: bool
    position: int
    version: int
    created_at: datetime
    updated_at: datetime


def _field_id(request: web.Request) -> uuid.UUID:
    raw = request.match_info["field_id"]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"Custom field not found: {raw}", code="custom_field_not_found") from None


async def _tenant(request: web.Request, named: str | None) -> uuid.UUID:
    tenant_id = await tenant_for(request, named)
    assert tenant_id is not None  # required=True
    return tenant_id


@routes.get(
    "/api/custom-fields",
    summary="Custom field definitions of the tenant",
    tags=TAGS,
    query=ListQuery,
    response=list[FieldOut],
    errors=(400, 403, 422),
)
async def list_fields(request: web.Request, query: ListQuery) -> web.Response:
    tenant_id = await _tenant(request, query.tenant_id)
    fields = await request.app[keys.CUSTOM_FIELD_SERVICE].list_fields(
        principal(request),
        tenant_id,
        entity=query.entity,
        include_archived=query.include_archived,
    )
    return success(fields)


@routes.post(
    "/api/custom-fields",
    summary="Define a custom field (admins)",
    tags=TAGS,
    body=FieldCreate,
    response=FieldOut,
    status=201,
    errors=(400, 403, 409, 422),
)
async def create_field(request: web.Request, body: FieldCreate) -> web.Response:
    tenant_id = await _tenant(request, body.tenant_id)
    field = await request.app[keys.CUSTOM_FIELD_SERVICE].create_field(
        principal(request),
        tenant_id,
        NewField(
            entity=body.entity,
            field_name=body.field_name,
            field_type=body.field_type,
            label=body.label,
            options=body.options,
            is_required=body.is_required,
            position=body.position,
        ),
    )
    return success(field, status=201)


@routes.get(
    "/api/custom-fields/{field_id}",
    summary="One custom field definition",
    tags=TAGS,
    query=TenantQuery,
    response=FieldOut,
    errors=(403, 404),
)
async def get_field(request: web.Request, query: TenantQuery) -> web.Response:
    tenant_id = await _tenant(request, query.tenant_id)
    service = request.app[keys.CUSTOM_FIELD_SERVICE]
    return success(await service.get_field(principal(request), tenant_id, _field_id(request)))


async def _update(request: web.Request, body: FieldUpdate) -> web.Response:
    tenant_id = await _tenant(request, body.tenant_id)
    given = frozenset(body.model_fields_set - {"tenant_id"})
    field = await request.app[keys.CUSTOM_FIELD_SERVICE].update_field(
        principal(request),
        tenant_id,
        _field_id(request),
        FieldChanges(
            fields_set=given,
            label=body.label,
            options=body.options,
            is_required=body.is_required,
            position=body.position,
            field_type=body.field_type,
        ),
    )
    return success(field)


@routes.put(
    "/api/custom-fields/{field_id}",
    summary="Change a custom field's label, options, required flag or position (admins)",
    description="Changing field_type is refused (422). Removing a select option that records "
    "use is allowed; their stored values stay as they are.",
    tags=TAGS,
    body=FieldUpdate,
    response=FieldOut,
    errors=(403, 404, 422),
)
async def put_field(request: web.Request, body: FieldUpdate) -> web.Response:
    return await _update(request, body)


@routes.patch(
    "/api/custom-fields/{field_id}",
    summary="Change a custom field (same as PUT; only the given members change)",
    tags=TAGS,
    body=FieldUpdate,
    response=FieldOut,
    errors=(403, 404, 422),
)
async def patch_field(request: web.Request, body: FieldUpdate) -> web.Response:
    return await _update(request, body)


@routes.delete(
    "/api/custom-fields/{field_id}",
    summary="Archive a custom field (stored values are kept; restore brings it back)",
    tags=TAGS,
    query=TenantQuery,
    response=FieldOut,
    errors=(403, 404),
)
async def archive_field(request: web.Request, query: TenantQuery) -> web.Response:
    tenant_id = await _tenant(request, query.tenant_id)
    field = await request.app[keys.CUSTOM_FIELD_SERVICE].set_archived(
        principal(request), tenant_id, _field_id(request), archived=True
    )
    return success(field)


@routes.post(
    "/api/custom-fields/{field_id}/restore",
    summary="Restore an archived custom field",
    tags=TAGS,
    query=TenantQuery,
    response=FieldOut,
    errors=(403, 404),
)
async def restore_field(request: web.Request, query: TenantQuery) -> web.Response:
    tenant_id = await _tenant(request, query.tenant_id)
    field = await request.app[keys.CUSTOM_FIELD_SERVICE].set_archived(
        principal(request), tenant_id, _field_id(request), archived=False
    )
    return success(field)
