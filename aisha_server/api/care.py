"""/api/care (guide chapter 13): status and tenant pause, states and transitions, escalation
detection, custom policy rules, the approval queue and the audit log.

Nothing a request sends decides the action origin: bodies refuse an `action_origin` field
(extra fields are a 422) and every request acts as `human`.
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
from aisha_server.services.care import AuditFilters, NewRule

routes = Routes()
TAGS = ("care",)

EntityType = Literal["lead", "contact", "account", "opportunity"]
StateName = Literal["cold", "warm", "hot", "won", "lost", "nurture", "stale"]
EventType = Literal[
    "ESCALATION_DETECTED", "ACTION_ALLOWED", "ACTION_BLOCKED", "STATE_TRANSITION",
    "WORKFLOW_TRIGGERED",
]  # fmt: skip


class TenantQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(None, description="superadmin: the tenant (UUID or slug)")


class PauseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    paused: bool
    reason: str | None = Field(None, max_length=500)


class StatesQuery(TenantQuery):
    entity_type: EntityType | None = None
    state: StateName | None = None
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=500, description="`pagination.next_cursor`")


class TransitionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    to_state: StateName
    signal: str | None = Field(
        None, description="optional: the diagram's signal for the edge (refused if it differs)"
    )
    reason: str | None = Field(None, max_length=1000)


class DetectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    entity_type: EntityType
    entity_id: uuid.UUID
    text: str | None = Field(None, max_length=100_000, description="the communication's text")
    sentiment: float | str | None = Field(
        None, description="score in [-1, 1] (negative = unhappy) or negative/neutral/positive"
    )


class AuditQuery(TenantQuery):
    event_type: EventType | None = None
    entity_type: str | None = Field(None, max_length=50)
    entity_id: uuid.UUID | None = None
    action_origin: Literal["human", "care_autonomous"] | None = None
    trigger_type: str | None = Field(None, max_length=64)
    since: datetime | None = Field(None, description="created at or after (UTC)")
    until: datetime | None = Field(None, description="created before (UTC)")
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=500, description="`pagination.next_cursor`")


class RuleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    action_type: str = Field(
        description="send_message, update_state, delete_entity, trigger_workflow, "
        "create_task, create_note, schedule_meeting or *"
    )
    result: Literal["allowed", "blocked", "warn", "defer"]
    reason: str = Field(min_length=1, max_length=500)
    states: list[StateName] = Field(default_factory=list, description="empty = every state")
    action_origin: Literal["human", "care_autonomous"] | None = Field(
        None, description="which origin the rule matches (null = any)"
    )
    entity_type: EntityType | None = None
    priority: int = Field(100, ge=0, le=1_000_000, description="lower runs first")
    enabled: bool = True


class ApprovalsQuery(TenantQuery):
    status: Literal["pending", "approved", "rejected"] | None = "pending"
    limit: int = Field(100, ge=1, le=500)


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    note: str | None = Field(None, max_length=1000)


class AuditOut(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    event_type: str
    entity_type: str
    entity_id: uuid.UUID
    action_origin: str | None
    reason: str | None
    metadata: dict[str, Any]
    created_at: datetime


class StateOut(BaseModel):
    entity_type: str
    entity_id: uuid.UUID
    current_state: str
    previous_state: str | None
    transitioned_at: datetime | None
    transition_reason: str | None
    metadata: dict[str, Any]


async def _tenant(request: web.Request, named: str | None) -> uuid.UUID:
    tenant_id = await tenant_for(request, named)
    assert tenant_id is not None  # required=True
    return tenant_id


def _uuid_param(request: web.Request, name: str, what: str, code: str) -> uuid.UUID:
    raw = request.match_info[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"{what} not found: {raw}", code=code) from None


def _entity(request: web.Request) -> tuple[str, uuid.UUID]:
    entity_type = request.match_info["entity_type"]
    if entity_type not in ("lead", "contact", "account", "opportunity"):
        raise NotFound(f"Unknown C.A.R.E. entity type: {entity_type}", code="entity_not_found")
    return entity_type, _uuid_param(request, "entity_id", entity_type, "entity_not_found")


@routes.get(
    "/api/care/status",
    summary="Effective C.A.R.E. state: kill switch, policy mode, tenant pause, thresholds, "
    "trigger configuration (no secrets), worker last run",
    tags=TAGS,
    query=TenantQuery,
    errors=(400, 403),
)
async def care_status(request: web.Request, query: TenantQuery) -> web.Response:
    tenant_id = await _tenant(request, query.tenant_id)
    return success(await request.app[keys.CARE_SERVICE].status(principal(request), tenant_id))


@routes.put(
    "/api/care/pause",
    summary="Pause or resume C.A.R.E. actions for the tenant at once (admins; audited)",
    tags=TAGS,
    body=PauseBody,
    errors=(400, 403, 422),
)
async def care_pause(request: web.Request, body: PauseBody) -> web.Response:
    tenant_id = await _tenant(request, body.tenant_id)
    status = await request.app[keys.CARE_SERVICE].set_pause(
        principal(request), tenant_id, paused=body.paused, reason=body.reason
    )
    return success(status)


@routes.get(
    "/api/care/states",
    summary="C.A.R.E. states of the tenant's records, latest transition first",
    description="Keyset pages: pass `pagination.next_cursor` back as `cursor`.",
    tags=TAGS,
    query=StatesQuery,
    response=list[StateOut],
    errors=(400, 403, 422),
)
async def list_states(request: web.Request, query: StatesQuery) -> web.Response:
    tenant_id = await _tenant(request, query.tenant_id)
    page = await request.app[keys.CARE_SERVICE].list_states(
        principal(request),
        tenant_id,
        entity_type=query.entity_type,
        state=query.state,
        limit=query.limit,
        cursor=query.cursor,
    )
    return success(page.items, pagination={"limit": page.limit, "next_cursor": page.next_cursor})


@routes.get(
    "/api/care/states/{entity_type}/{entity_id}",
    summary="The C.A.R.E. state of one record (cold when it never transitioned)",
    tags=TAGS,
    query=TenantQuery,
    response=StateOut,
    errors=(403, 404),
)
async def get_state(request: web.Request, query: TenantQuery) -> web.Response:
    entity_type, entity_id = _entity(request)
    tenant_id = await _tenant(request, query.tenant_id)
    state = await request.app[keys.CARE_SERVICE].get_state(
        principal(request), tenant_id, entity_type, entity_id
    )
    return success(state)


@routes.post(
    "/api/care/states/{entity_type}/{entity_id}/transition",
    summary="Move a record to another C.A.R.E. state (admins); refused transitions are "
    "audited and answered 409",
    tags=TAGS,
    body=TransitionBody,
    errors=(403, 404, 409, 422),
)
async def transition(request: web.Request, body: TransitionBody) -> web.Response:
    entity_type, entity_id = _entity(request)
    tenant_id = await _tenant(request, body.tenant_id)
    outcome = await request.app[keys.CARE_SERVICE].transition(
        principal(request),
        tenant_id,
        entity_type=entity_type,
        entity_id=entity_id,
        to_state=body.to_state,
        signal=body.signal,
        reason=body.reason,
    )
    return success(outcome)


@routes.post(
    "/api/care/detect",
    summary="Escalation detection on a communication's text and sentiment; an escalation "
    "runs the C.A.R.E. pipeline (audit, gate, state, trigger)",
    tags=TAGS,
    body=DetectBody,
    errors=(403, 404, 422),
)
async def detect(request: web.Request, body: DetectBody) -> web.Response:
    tenant_id = await _tenant(request, body.tenant_id)
    result = await request.app[keys.CARE_SERVICE].detect(
        principal(request),
        tenant_id,
        entity_type=body.entity_type,
        entity_id=body.entity_id,
        text=body.text,
        sentiment=body.sentiment,
    )
    return success(result)


@routes.get(
    "/api/care/audit",
    summary="C.A.R.E. audit log, newest first (filters: event type, entity, origin, trigger, "
    "time range)",
    description="Keyset pages: pass `pagination.next_cursor` back as `cursor`.",
    tags=TAGS,
    query=AuditQuery,
    response=list[AuditOut],
    errors=(400, 403, 422),
)
async def list_audit(request: web.Request, query: AuditQuery) -> web.Response:
    tenant_id = await _tenant(request, query.tenant_id)
    filters = AuditFilters(
        event_type=query.event_type,
        entity_type=query.entity_type,
        entity_id=query.entity_id,
        action_origin=query.action_origin,
        trigger_type=query.trigger_type,
        since=query.since,
        until=query.until,
    )
    page = await request.app[keys.CARE_SERVICE].list_audit(
        principal(request), tenant_id, filters, limit=query.limit, cursor=query.cursor
    )
    return success(page.items, pagination={"limit": page.limit, "next_cursor": page.next_cursor})


@routes.get(
    "/api/care/rules",
    summary="The tenant's custom policy rules (evaluated before the default table)",
    tags=TAGS,
    query=TenantQuery,
    errors=(403,),
)
async def list_rules(request: web.Request, query: TenantQuery) -> web.Response:
    tenant_id = await _tenant(request, query.tenant_id)
    return success(await request.app[keys.CARE_SERVICE].list_rules(principal(request), tenant_id))


@routes.post(
    "/api/care/rules",
    summary="Add a custom policy rule (admins)",
    tags=TAGS,
    body=RuleBody,
    status=201,
    errors=(403, 422),
)
async def create_rule(request: web.Request, body: RuleBody) -> web.Response:
    tenant_id = await _tenant(request, body.tenant_id)
    rule = await request.app[keys.CARE_SERVICE].create_rule(
        principal(request),
        tenant_id,
        NewRule(
            action_type=body.action_type,
            result=body.result,
            reason=body.reason,
            states=list(body.states),
            action_origin=body.action_origin,
            entity_type=body.entity_type,
            priority=body.priority,
            enabled=body.enabled,
        ),
    )
    return success(rule, status=201)


@routes.delete(
    "/api/care/rules/{rule_id}",
    summary="Remove a custom policy rule (admins)",
    tags=TAGS,
    query=TenantQuery,
    errors=(403, 404),
)
async def delete_rule(request: web.Request, query: TenantQuery) -> web.Response:
    rule_id = _uuid_param(request, "rule_id", "Policy rule", "care_rule_not_found")
    tenant_id = await _tenant(request, query.tenant_id)
    removed = await request.app[keys.CARE_SERVICE].delete_rule(
        principal(request), tenant_id, rule_id
    )
    return success(removed)


@routes.get(
    "/api/care/approvals",
    summary="Actions the policy gate deferred to a human (default: pending)",
    tags=TAGS,
    query=ApprovalsQuery,
    errors=(403, 422),
)
async def list_approvals(request: web.Request, query: ApprovalsQuery) -> web.Response:
    tenant_id = await _tenant(request, query.tenant_id)
    items = await request.app[keys.CARE_SERVICE].list_approvals(
        principal(request), tenant_id, status=query.status, limit=query.limit
    )
    return success(items)


async def _decide(request: web.Request, body: DecisionBody, *, approve: bool) -> web.Response:
    approval_id = _uuid_param(request, "approval_id", "Approval", "care_approval_not_found")
    tenant_id = await _tenant(request, body.tenant_id)
    decided = await request.app[keys.CARE_SERVICE].decide(
        principal(request), tenant_id, approval_id, approve=approve, note=body.note
    )
    return success(decided)


@routes.post(
    "/api/care/approvals/{approval_id}/approve",
    summary="Approve a deferred action: it runs now (admins; audited ACTION_ALLOWED)",
    tags=TAGS,
    body=DecisionBody,
    errors=(403, 404, 409),
)
async def approve(request: web.Request, body: DecisionBody) -> web.Response:
    return await _decide(request, body, approve=True)


@routes.post(
    "/api/care/approvals/{approval_id}/reject",
    summary="Reject a deferred action (admins; audited ACTION_BLOCKED)",
    tags=TAGS,
    body=DecisionBody,
    errors=(403, 404, 409),
)
async def reject(request: web.Request, body: DecisionBody) -> web.Response:
    return await _decide(request, body, approve=False)
