"""`GET /api/{entity}/{id}/timeline` for accounts, contacts, leads and opportunities."""

from __future__ import annotations

import uuid

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from aisha_server import keys
from aisha_server.api.context import principal, tenant_for
from aisha_server.api.records import ITEM, Moment, a_noun
from aisha_server.api.routing import Routes
from aisha_server.envelope import success
from aisha_server.errors import BadRequest
from aisha_server.services.records import SPECS
from aisha_server.services.timeline import TIMELINE_ENTITIES

routes = Routes()


class TimelineQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(100, ge=1, le=500)
    cursor: str | None = Field(
        None, max_length=500, description="the previous page's pagination.next_cursor"
    )
    before: Moment | None = Field(
        None, description="entries older than this time (UTC when no offset is given)"
    )
    include_deleted: bool = Field(
        False, description="the timeline of a deleted record too (to look before restoring it)"
    )
    tenant_id: str | None = None


def _mount(entity: str) -> None:
    @routes.get(
        f"/api/{entity}/{ITEM}/timeline",
        summary=f"Timeline of {a_noun(SPECS[entity].singular)}: activities, notes and lifecycle,"
        " newest first",
        tags=(entity,),
        query=TimelineQuery,
    )
    async def timeline(request: web.Request, query: TimelineQuery) -> web.Response:
        try:
            record_id = uuid.UUID(request.match_info["record_id"])
        except ValueError:
            raise BadRequest("Invalid id: not a UUID", code="invalid_id") from None
        tenant_id = await tenant_for(request, query.tenant_id)
        assert tenant_id is not None
        page = await request.app[keys.TIMELINE_SERVICE].timeline(
            principal(request),
            tenant_id,
            entity,
            record_id,
            limit=query.limit,
            before=query.before,
            cursor=query.cursor,
            include_deleted=query.include_deleted,
        )
        return success(
            page.items, pagination={"limit": query.limit, "next_cursor": page.next_cursor}
        )


for _entity in TIMELINE_ENTITIES:
    _mount(_entity)
