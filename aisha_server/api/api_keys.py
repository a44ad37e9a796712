"""/api/api-keys (guide 3.4): create (the key is returned once), list, revoke."""

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
from aisha_server.services.api_keys import NewApiKey

routes = Routes()
TAGS = ("api-keys",)


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    permissions: list[str] = Field(
        min_length=1,
        max_length=100,
        description="'<action>:<resource>' (read, create, update, delete, export, write, *) "
        "or '*', e.g. ['read:contacts']",
    )
    expires_at: datetime | None = Field(None, description="UTC when no offset is given")
    user_id: uuid.UUID | None = Field(
        None, description="the user the key acts as (admins only; default: the tenant)"
    )
    tenant_id: str | None = Field(None, description="superadmin: the tenant (UUID or slug)")


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    key_prefix: str | None
    permissions: list[str]
    user_id: uuid.UUID | None
    created_by: uuid.UUID | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    status: Literal["active", "expired", "revoked"]


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the API key itself; shown only in this response")


@routes.post(
    "/api/api-keys",
    summary="Create an API key; the key is in this response only",
    tags=TAGS,
    body=ApiKeyCreate,
    response=ApiKeyCreated,
    status=201,
    errors=(403, 422),
)
async def create_api_key(request: web.Request, body: ApiKeyCreate) -> web.Response:
    tenant_id = await tenant_for(request, body.tenant_id)
    assert tenant_id is not None  # required=True
    view, secret = await request.app[keys.API_KEY_SERVICE].create(
        principal(request),
        tenant_id,
        NewApiKey(
            name=body.name,
            permissions=body.permissions,
            expires_at=body.expires_at,
            user_id=body.user_id,
        ),
    )
    return success({**view, "key": secret}, status=201)


@routes.get(
    "/api/api-keys",
    summary="API keys of the tenant (admins: all; others: their own); never the keys",
    tags=TAGS,
    response=list[ApiKeyOut],
    errors=(403,),
)
async def list_api_keys(request: web.Request) -> web.Response:
    tenant_id = await tenant_for(request)
    assert tenant_id is not None
    return success(await request.app[keys.API_KEY_SERVICE].list_keys(principal(request), tenant_id))


@routes.delete(
    "/api/api-keys/{key_id}",
    summary="Revoke an API key (it stops working at once)",
    tags=TAGS,
    response=ApiKeyOut,
    errors=(403, 404),
)
async def revoke_api_key(request: web.Request) -> web.Response:
    raw = request.match_info["key_id"]
    try:
        key_id = uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"API key not found: {raw}", code="api_key_not_found") from None
    tenant_id = await tenant_for(request)
    assert tenant_id is not None
    view = await request.app[keys.API_KEY_SERVICE].revoke(principal(request), tenant_id, key_id)
    return success(view)
