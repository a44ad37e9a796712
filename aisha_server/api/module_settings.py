"""/api/module-settings (guide 4.4): a tenant's modules, enabled or not, and their settings.

The tenant comes from the token; a superadmin names it with `?tenant_id=` or `X-Tenant-ID`.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from aisha_server import keys
from aisha_server.api.context import principal, tenant_for
from aisha_server.api.routing import Routes
from aisha_server.envelope import success

routes = Routes()
TAGS = ("modules",)


class ModuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_enabled: StrictBool | None = None
    settings: dict[str, Any] | None = Field(
        None,
        description="merged into the stored settings (null removes a key); checked for "
        "realtime_voice {ptt_enabled, auto_play_responses: bool}, opportunities {stages: "
        "unique non-empty strings}, workflows {max_workflows: int >= 0}",
    )


class ModuleOut(BaseModel):
    module_name: str
    is_enabled: bool
    settings: dict[str, Any]


async def _tenant(request: web.Request) -> uuid.UUID:
    tenant_id = await tenant_for(request)
    assert tenant_id is not None  # required=True
    return tenant_id


@routes.get(
    "/api/module-settings",
    summary="Every module of the tenant with is_enabled and settings (defaults filled in)",
    tags=TAGS,
    response=list[ModuleOut],
    errors=(400, 403),
)
async def list_modules(request: web.Request) -> web.Response:
    tenant_id = await _tenant(request)
    service = request.app[keys.MODULE_SETTINGS_SERVICE]
    return success(await service.list_modules(principal(request), tenant_id))


@routes.get(
    "/api/module-settings/{module_name}",
    summary="One module of the tenant",
    tags=TAGS,
    response=ModuleOut,
    errors=(400, 403, 404),
)
async def get_module(request: web.Request) -> web.Response:
    tenant_id = await _tenant(request)
    service = request.app[keys.MODULE_SETTINGS_SERVICE]
    return success(
        await service.get(principal(request), tenant_id, request.match_info["module_name"])
    )


@routes.put(
    "/api/module-settings/{module_name}",
    summary="Enable or disable a module and merge its settings (admins)",
    tags=TAGS,
    body=ModuleUpdate,
    response=ModuleOut,
    errors=(400, 403, 404, 422),
)
async def put_module(request: web.Request, body: ModuleUpdate) -> web.Response:
    tenant_id = await _tenant(request)
    service = request.app[keys.MODULE_SETTINGS_SERVICE]
    return success(
        await service.update(
            principal(request),
            tenant_id,
            request.match_info["module_name"],
            is_enabled=body.is_enabled,
            settings=body.settings,
        )
    )
