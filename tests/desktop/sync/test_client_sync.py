"""The API client's sync calls: typed answers from the real server, refusals of bad input
before anything is sent, and answers that do not fit the protocol."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aisha_desktop.client import (
    ApiClient,
    MemoryTokenStore,
    NotFound,
    ResyncRequired,
    Tokens,
    UnexpectedResponse,
    ValidationError,
)
from aisha_desktop.client.errors import error_from_response
from tests.desktop.sync.conftest import Live, Team


async def test_pull_push_and_conflicts_are_typed(live: Live, team: Team) -> None:
    api = await live.api(team.admin, direct=True)
    record = await api.create_record("contacts", {"first_name": "Typed", "title": "A"})
    first = await api.pull_changes(None, limit=2)
    assert first.snapshot and first.has_more and len(first.changes) == 2
    assert all(c.op == "upsert" and c.data is not None for c in first.changes)
    await api.update_record("contacts", record["id"], {"title": "B"})
    mutation = {"mutation_id": "m1", "entity_type": "contacts", "id": record["id"],
                "op": "update", "base_version": 1, "fields": {"title": "C"}}  # fmt: skip
    [result] = await api.push("typed-client", [mutation])
    assert result.status == "conflict" and result.version == 2 and not result.replayed
    [conflict] = result.conflicts
    assert (conflict.field, conflict.server_value, conflict.client_value) == ("title", "B", "C")
    assert conflict.server_changed_at is not None
    [again] = await api.push("typed-client", [mutation])
    assert again.replayed and again.status == "conflict"
    assert [c.id for c in await api.conflicts()] == [conflict.id]
    resolved = await api.resolve_conflict(conflict.id, "custom", "D")
    assert resolved.resolution == "custom" and (resolved.record or {})["title"] == "D"
    assert await api.conflicts() == []
    assert [c.id for c in await api.conflicts(include_resolved=True)] == [conflict.id]
    with pytest.raises(NotFound):
        await api.resolve_conflict(uuid.uuid4(), "keep_server")
    [rejected] = await api.push("typed-client", [{**mutation, "mutation_id": "m2",
                                                  "fields": {"shoe_size": 1}}])  # fmt: skip
    assert rejected.status == "rejected" and rejected.error is not None
    assert rejected.error.code == "validation_error"
    with pytest.raises(ValidationError) as bad:
        await api.pull_changes("not-a-cursor")
    assert bad.value.code == "invalid_cursor"


async def test_bad_input_is_refused_before_sending(live: Live, team: Team) -> None:
    api = await live.api(team.admin, direct=True)
    with pytest.raises(ValueError, match="at most 1000"):
        await api.push("c", [{"mutation_id": str(n)} for n in range(1001)])
    with pytest.raises(ValueError, match="resolution"):
        await api.resolve_conflict(uuid.uuid4(), "whatever")
    with pytest.raises(ValueError):
        await api.resolve_conflict("not-a-uuid", "keep_server")


def test_a_410_resync_required_is_its_own_error() -> None:
    gone = error_from_response(410, {}, {"status": "error", "code": "resync_required",
                                         "message": "Resync required"})  # fmt: skip
    assert isinstance(gone, ResyncRequired) and gone.status == 410
    other = error_from_response(410, {}, {"status": "error", "code": "gone", "message": "x"})
    assert not isinstance(other, ResyncRequired)


@pytest.fixture
async def odd_server() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Answers sync calls with whatever `answers[path]` holds, in the API's envelope."""
    answers: dict[str, Any] = {}

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"status": "success", "data": answers[request.path]})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), answers
    finally:
        await server.close()


async def test_answers_that_break_the_protocol_are_unexpected(
    odd_server: tuple[str, dict[str, Any]],
) -> None:
    url, answers = odd_server
    store = MemoryTokenStore(Tokens(access_token="a", refresh_token="r"))
    async with ApiClient(url, token_store=store) as api:
        answers["/api/sync/changes"] = {"changes": [], "has_more": False}  # no cursor
        with pytest.raises(UnexpectedResponse, match="cursor"):
            await api.pull_changes(None)
        answers["/api/sync/changes"] = {"changes": [{"entity_type": "contacts", "id": "x",
                                                     "op": "upsert"}], "cursor": "c"}  # fmt: skip
        with pytest.raises(UnexpectedResponse, match="no data"):
            await api.pull_changes(None)
        answers["/api/sync/push"] = {"results": []}  # fewer results than mutations
        with pytest.raises(UnexpectedResponse, match="does not match"):
            await api.push("c", [{"mutation_id": "m"}])
        answers["/api/sync/push"] = {"results": [{"mutation_id": "m", "status": "maybe"}]}
        with pytest.raises(UnexpectedResponse, match="not a push result"):
            await api.push("c", [{"mutation_id": "m"}])
        answers["/api/sync/conflicts"] = {"not": "a list"}
        with pytest.raises(UnexpectedResponse):
            await api.conflicts()
