"""Sync routes: pull the change feed, push mutations, list and resolve conflicts, and a
WebSocket that says when the tenant's feed moved.  Protocol: aisha_server/services/sync.py."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any, Literal

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aisha_server import keys
from aisha_server.api.context import principal, tenant_for
from aisha_server.api.records import BODIES
from aisha_server.api.routing import Routes, validation_details
from aisha_server.envelope import success
from aisha_server.errors import BadRequest, Invalid
from aisha_server.services.sync import MAX_MUTATIONS, Mutation

routes = Routes()
TAGS = ("sync",)
Token = str  # mutation and client ids: opaque, client-made


class ChangesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: str | None = Field(
        None, max_length=500, description="cursor of the previous page; none starts a snapshot"
    )
    limit: int = Field(500, ge=1, le=5000)
    tenant_id: str | None = None


class MutationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mutation_id: str = Field(min_length=1, max_length=100)
    entity_type: str = Field(min_length=1, max_length=50)
    id: uuid.UUID
    op: Literal["create", "update", "delete"]
    base_version: int | None = Field(None, ge=0)
    fields: dict[str, Any] = Field(default_factory=dict)


class PushBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=100)
    mutations: list[MutationIn] = Field(max_length=MAX_MUTATIONS)
    tenant_id: str | None = None


class ConflictsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_resolved: bool = False
    all: bool = Field(False, description="everyone's conflicts (administrators)")
    tenant_id: str | None = None


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: Literal["keep_server", "take_mine", "custom"]
    value: Any = Field(None, description="the value to keep (resolution=custom)")
    tenant_id: str | None = None


@routes.get(
    "/api/sync/changes",
    summary="Changes visible to the caller since a cursor (snapshot first without one)",
    tags=TAGS,
    query=ChangesQuery,
    errors=(400, 410),
)
async def changes(request: web.Request, query: ChangesQuery) -> web.Response:
    tenant_id = await tenant_for(request, query.tenant_id)
    assert tenant_id is not None
    page = await request.app[keys.SYNC_SERVICE].changes(
        principal(request), tenant_id, query.since, query.limit
    )
    return success(page.as_dict())


def _prepare(item: MutationIn) -> Mutation:
    """The mutation with its fields validated by the entity's own API model; a validation
    error is carried, so it becomes that mutation's rejection and not the whole push's."""
    mutation = Mutation(
        mutation_id=item.mutation_id,
        entity=item.entity_type,
        record_id=item.id,
        op=item.op,
        base_version=item.base_version,
        fields=item.fields,
    )
    models = BODIES.get(item.entity_type)
    if models is None:
        mutation.error = Invalid(
            f"Unknown entity type {item.entity_type!r}",
            details=[{"field": "entity_type", "message": f"one of {sorted(BODIES)}"}],
        )
        return mutation
    if item.op == "delete":
        mutation.values = {}
        return mutation
    model = models["create" if item.op == "create" else "update"]
    fields = {k: v for k, v in item.fields.items() if k != "tenant_id"}
    if "tenant_id" in item.fields:
        mutation.error = Invalid(
            "Validation failed: tenant_id",
            details=[{"field": "tenant_id", "message": "is not a record field"}],
        )
        return mutation
    try:
        parsed = model.model_validate(fields)
    except ValidationError as exc:
        details = validation_details(exc)
        names = ", ".join(sorted({d["field"] for d in details}))
        mutation.error = Invalid(f"Validation failed: {names}", details=details)
        return mutation
    mutation.values = parsed.model_dump(exclude_unset=True, exclude={"tenant_id"})
    return mutation


@routes.post(
    "/api/sync/push",
    summary="Apply a client's mutations in order (idempotent per client_id + mutation_id)",
    tags=TAGS,
    body=PushBody,
)
async def push(request: web.Request, body: PushBody) -> web.Response:
    tenant_id = await tenant_for(request, body.tenant_id)
    assert tenant_id is not None
    seen: set[str] = set()
    for item in body.mutations:
        if item.mutation_id in seen:
            raise BadRequest(
                f"mutation_id {item.mutation_id!r} appears twice in one push",
                code="duplicate_mutation_id",
            )
        seen.add(item.mutation_id)
    results = await request.app[keys.SYNC_SERVICE].push(
        principal(request), tenant_id, body.client_id, [_prepare(m) for m in body.mutations]
    )
    return success({"results": results})


@routes.get(
    "/api/sync/conflicts",
    summary="Open conflicts of the caller's pushes (all=true: everyone's, administrators)",
    tags=TAGS,
    query=ConflictsQuery,
)
async def conflicts(request: web.Request, query: ConflictsQuery) -> web.Response:
    tenant_id = await tenant_for(request, query.tenant_id)
    assert tenant_id is not None
    found = await request.app[keys.SYNC_SERVICE].conflicts(
        principal(request),
        tenant_id,
        include_resolved=query.include_resolved,
        everyone=query.all,
    )
    return success(found)


@routes.post(
    "/api/sync/conflicts/{conflict_id}/resolve",
    summary="Resolve a conflict: keep the server's value, take mine, or a custom value",
    tags=TAGS,
    body=ResolveBody,
)
async def resolve(request: web.Request, body: ResolveBody) -> web.Response:
    try:
        conflict_id = uuid.UUID(request.match_info["conflict_id"])
    except ValueError:
        raise BadRequest("Invalid id: not a UUID", code="invalid_id") from None
    tenant_id = await tenant_for(request, body.tenant_id)
    assert tenant_id is not None
    resolved = await request.app[keys.SYNC_SERVICE].resolve(
        principal(request), tenant_id, conflict_id, body.resolution, body.value
    )
    return success(resolved)


@routes.get(
    "/api/sync/stream",
    summary="WebSocket: {type: hello|changed, seq} whenever the tenant's change feed moves",
    tags=TAGS,
    description="Authenticate like any request (Authorization header). The server sends"
    ' `{"type": "hello", "seq": n}` on connect and `{"type": "changed", "seq": n}` after'
    " commits that changed the tenant's synced data (from any server instance on"
    " PostgreSQL); clients then pull `/api/sync/changes`.",
)
async def stream(request: web.Request) -> web.StreamResponse:
    tenant_id = await tenant_for(request, request.query.get("tenant_id"))
    assert tenant_id is not None
    notifier = request.app[keys.SYNC_NOTIFIER]
    socket = web.WebSocketResponse(heartbeat=20.0)
    if not socket.can_prepare(request).ok:
        raise BadRequest("This endpoint speaks WebSocket only", code="websocket_required")
    queue = notifier.subscribe(tenant_id)
    try:
        await socket.prepare(request)
        head = await request.app[keys.SYNC_SERVICE].head(tenant_id)
        await socket.send_json({"type": "hello", "seq": head})

        async def forward() -> None:
            while True:
                seq = await queue.get()
                await socket.send_json({"type": "changed", "seq": seq})

        sender = asyncio.create_task(forward())
        try:
            async for message in socket:  # clients say nothing; this waits for the close
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
    finally:
        notifier.unsubscribe(tenant_id, queue)
    return socket
