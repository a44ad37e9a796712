"""/api/entity-labels/{tenant} (guide 4.4): read, rename and reset a tenant's entity labels."""

from __future__ import annotations

import uuid
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from aisha_server import keys
from aisha_server.api.context import principal, tenant_for
from aisha_server.api.routing import Routes
from aisha_server.envelope import success
from aisha_server.services.entity_labels import LABEL_MAX, LabelChange

routes = Routes()
TAGS = ("entity-labels",)

Label = Annotated[
    str,
    StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=LABEL_MAX),
]


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plural: Label = Field(description='e.g. "Clients"')
    singular: Label | None = Field(
        None, description='e.g. "Client"; omitted keeps the stored one, null restores the default'
    )


class LabelsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: dict[str, LabelIn] = Field(
        min_length=1,
        description="entity key (accounts, contacts, leads, opportunities, activities) -> labels",
    )

    def changes(self) -> dict[str, LabelChange]:
        return {
            key: LabelChange(label.plural, label.singular, "singular" in label.model_fields_set)
            for key, label in self.labels.items()
        }


class ResetQuery(BaseModel):
    entity: str | None = Field(None, description="reset only this entity key")


class LabelOut(BaseModel):
    plural: str
    singular: str
    default_plural: str
    default_singular: str
    customized: bool


async def _tenant_in_path(request: web.Request) -> uuid.UUID:
    tenant_id = await tenant_for(request, request.match_info["tenant"])
    assert tenant_id is not None  # required=True
    return tenant_id


@routes.get(
    "/api/entity-labels/{tenant}",
    summary="Every entity label of a tenant, defaults filled in (tenant UUID or slug)",
    tags=TAGS,
    response=dict[str, LabelOut],
    errors=(403, 404),
)
async def get_labels(request: web.Request) -> web.Response:
    tenant_id = await _tenant_in_path(request)
    service = request.app[keys.ENTITY_LABEL_SERVICE]
    return success(await service.get(principal(request), tenant_id))


@routes.put(
    "/api/entity-labels/{tenant}",
    summary="Rename entities for a tenant (admins); all or nothing",
    tags=TAGS,
    body=LabelsUpdate,
    response=dict[str, LabelOut],
    errors=(403, 404, 422),
)
async def put_labels(request: web.Request, body: LabelsUpdate) -> web.Response:
    tenant_id = await _tenant_in_path(request)
    service = request.app[keys.ENTITY_LABEL_SERVICE]
    return success(await service.update(principal(request), tenant_id, body.changes()))


@routes.delete(
    "/api/entity-labels/{tenant}",
    summary="Reset a tenant's entity labels to the defaults (all, or ?entity=<key>) (admins)",
    tags=TAGS,
    query=ResetQuery,
    response=dict[str, LabelOut],
    errors=(403, 404, 422),
)
async def reset_labels(request: web.Request, query: ResetQuery) -> web.Response:
    tenant_id = await _tenant_in_path(request)
    service = request.app[keys.ENTITY_LABEL_SERVICE]
    return success(await service.reset(principal(request), tenant_id, query.entity))
