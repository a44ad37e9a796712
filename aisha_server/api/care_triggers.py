"""/api/care/triggers: C.A.R.E. workflow trigger deliveries (guide 13.6) - list, one, replay.

Tenant admins see their tenant's deliveries; superadmins any tenant's (all of them when no
tenant is named).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from aisha_server import keys
from aisha_server.api.context import principal, tenant_for
from aisha_server.api.routing import Routes
from aisha_server.envelope import success
from aisha_server.errors import NotFound

routes = Routes()
TAGS = ("care",)


class DeliveriesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["pending", "delivered", "failed"] | None = None
    tenant_id: str | None = Field(None, description="superadmin: the tenant (default: all)")
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, description="`pagination.next_cursor` of the last page")


class TenantQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None


class DeliveryOut(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    tenant_id: uuid.UUID
    event_type: str
    trigger_type: str | None
    entity_type: str
    entity_id: uuid.UUID
    status: Literal["pending", "delivered", "failed"]
    in_flight: bool = Field(description="a worker is delivering it right now")
    attempts: int
    rounds: int = Field(description="rounds of attempts that ended undelivered")
    replays: int
    last_http_status: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="pending: when it is tried next")
    delivered_at: datetime | None
    created_at: datetime
    payload: dict[str, Any] = Field(description="the body sent (same bytes on every attempt)")


class WorkerOut(BaseModel):
    enabled: bool = Field(description="this server sends triggers")
    disabled_reason: str | None = Field(description="why not (kill switch, missing setting)")
    webhook_host: str | None
    timeout_ms: int
    max_retries: int
    last_run_at: datetime | None
    attempts: int = Field(description="attempts this server made since it started")
    delivered: int
    failed: int


class TriggerStatusOut(BaseModel):
    worker: WorkerOut
    deliveries: dict[str, int] = Field(description="deliveries per status (the tenant's)")


def _delivery_id(request: web.Request) -> uuid.UUID:
    raw = request.match_info["delivery_id"]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(
            f"Trigger delivery not found: {raw}", code="trigger_delivery_not_found"
        ) from None


@routes.get(
    "/api/care/triggers/deliveries",
    summary="Workflow trigger deliveries, newest first (filters: status, tenant)",
    description="Keyset pages: pass `pagination.next_cursor` back as `cursor`.",
    tags=TAGS,
    query=DeliveriesQuery,
    response=list[DeliveryOut],
    errors=(400, 403, 422),
)
async def list_deliveries(request: web.Request, query: DeliveriesQuery) -> web.Response:
    tenant_id = await tenant_for(request, query.tenant_id, required=False)
    page = await request.app[keys.CARE_TRIGGER_DELIVERIES].list(
        principal(request), tenant_id, status=query.status, limit=query.limit, cursor=query.cursor
    )
    return success(page.items, pagination={"limit": page.limit, "next_cursor": page.next_cursor})


@routes.get(
    "/api/care/triggers/status",
    summary="Workflow trigger worker state and deliveries per status",
    tags=TAGS,
    query=TenantQuery,
    response=TriggerStatusOut,
    errors=(403,),
)
async def trigger_status(request: web.Request, query: TenantQuery) -> web.Response:
    tenant_id = await tenant_for(request, query.tenant_id, required=False)
    counts = await request.app[keys.CARE_TRIGGER_DELIVERIES].counts(principal(request), tenant_id)
    return success(
        {"worker": request.app[keys.CARE_TRIGGER_WORKER].snapshot(), "deliveries": counts}
    )


@routes.get(
    "/api/care/triggers/deliveries/{delivery_id}",
    summary="One workflow trigger delivery with its payload and last answer",
    tags=TAGS,
    query=TenantQuery,
    response=DeliveryOut,
    errors=(403, 404),
)
async def get_delivery(request: web.Request, query: TenantQuery) -> web.Response:
    delivery_id = _delivery_id(request)
    tenant_id = await tenant_for(request, query.tenant_id, required=False)
    view = await request.app[keys.CARE_TRIGGER_DELIVERIES].get(
        principal(request), tenant_id, delivery_id
    )
    return success(view)


@routes.post(
    "/api/care/triggers/deliveries/{delivery_id}/replay",
    summary="Send a workflow trigger again (same event id and body); audited",
    description="Queues the delivery for the worker now; 409 while an attempt is running.",
    tags=TAGS,
    query=TenantQuery,
    response=DeliveryOut,
    errors=(403, 404, 409),
    extra={"action": "update"},
)
async def replay_delivery(request: web.Request, query: TenantQuery) -> web.Response:
    delivery_id = _delivery_id(request)
    tenant_id = await tenant_for(request, query.tenant_id, required=False)
    view = await request.app[keys.CARE_TRIGGER_DELIVERIES].replay(
        principal(request), tenant_id, delivery_id
    )
    request.app[keys.CARE_TRIGGER_WORKER].wake()
    return success(view)
