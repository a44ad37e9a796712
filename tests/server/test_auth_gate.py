"""The auth gate's re-checks of session and key state: one database read per session at a
time, and an invalidation (logout, disable, revoke) never undone by a read that began before
it.  Real server, real database (both backends)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from aisha_server import keys
from aisha_server.auth.gate import AuthGate
from aisha_server.errors import Unauthorized
from tests.factories import make_tenant, user_with_headers


class HeldDatabase:
    """The app's database with reads held by the test: a read starts when `go` is set, and
    hands its result back when its own event in `hand_back` is set (`read` tells that one
    has read)."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.go = asyncio.Event()
        self.read = asyncio.Event()
        self.hand_back: list[asyncio.Event] = []
        self.released = False
        self.started = 0
        self.fail: Exception | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def release(self) -> None:
        self.released = True
        self.go.set()
        for event in self.hand_back:
            event.set()

    async def run(self, fn: Any, **kw: Any) -> Any:
        self.started += 1
        back = asyncio.Event()
        if self.released:
            back.set()
        self.hand_back.append(back)
        await self.go.wait()
        if self.fail is not None:
            raise self.fail
        result = await self._db.run(fn, **kw)
        self.read.set()
        await back.wait()
        return result


async def _gate(client: TestClient[Any, Any]) -> tuple[AuthGate, HeldDatabase, str, Any]:
    app = client.app
    tenant = await make_tenant(app)
    user, headers = await user_with_headers(app, "employee", tenant.id)
    held = HeldDatabase(app[keys.DB])
    gate = AuthGate(held, app[keys.TOKENS], ttl=5.0)  # type: ignore[arg-type]
    return gate, held, headers["Authorization"][7:], user


async def test_requests_that_find_a_session_due_share_one_read(
    client: TestClient[Any, Any],
) -> None:
    gate, held, token, user = await _gate(client)
    waiting = [asyncio.ensure_future(gate.principal_for_token(token)) for _ in range(20)]
    await asyncio.sleep(0.05)
    assert held.started == 1 and gate.reads == 1
    held.release()
    principals = await asyncio.gather(*waiting)
    assert {p.user_id for p in principals} == {user.id}
    assert gate.reads == 1
    # cached now: no read at all until the ttl runs out
    assert gate.cached_principal_for_token(token) is not None
    await gate.principal_for_token(token)
    assert gate.reads == 1 and held.started == 1


async def test_a_cancelled_request_leaves_the_read_to_the_others(
    client: TestClient[Any, Any],
) -> None:
    gate, held, token, user = await _gate(client)
    first = asyncio.ensure_future(gate.principal_for_token(token))  # reads
    second = asyncio.ensure_future(gate.principal_for_token(token))  # waits for it
    third = asyncio.ensure_future(gate.principal_for_token(token))  # waits, then is cancelled
    await asyncio.sleep(0.05)
    assert gate.reads == 1
    first.cancel()
    await asyncio.sleep(0.05)
    assert gate.reads == 2  # the second reads instead; the third waits for it
    third.cancel()
    held.release()
    assert (await second).user_id == user.id
    for cancelled in (first, third):
        with pytest.raises(asyncio.CancelledError):
            await cancelled
    assert gate.reads == 2 and gate.cached_principal_for_token(token) is not None


async def test_a_read_under_way_at_logout_does_not_bring_the_session_back(
    client: TestClient[Any, Any],
) -> None:
    app = client.app
    gate, held, token, _ = await _gate(client)
    before = asyncio.ensure_future(gate.principal_for_token(token))
    held.go.set()
    await asyncio.wait_for(held.read.wait(), 10)  # it has read the session: valid
    # logout through the real endpoint; this gate is told as the app's own is
    resp = await client.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200, await resp.text()
    gate.forget_session(app[keys.TOKENS].verify_access(token, now=time.time()).session_id)
    # a request after the logout does not wait for the read from before it
    after = asyncio.ensure_future(gate.principal_for_token(token))
    await asyncio.sleep(0.05)
    assert gate.reads == 2 and not after.done()
    held.hand_back[0].set()
    assert (await before).user_id is not None  # asked before the logout: answered as read
    # but what it read is not cached
    assert gate.cached_principal_for_token(token) is None
    held.release()
    with pytest.raises(Unauthorized) as refused:
        await after
    assert refused.value.code == "session_revoked"
    with pytest.raises(Unauthorized):
        await gate.principal_for_token(token)


async def test_a_failed_read_reaches_every_waiter_and_is_not_cached(
    client: TestClient[Any, Any],
) -> None:
    gate, held, token, user = await _gate(client)

    class Broken(Exception):
        pass

    held.fail = Broken("database went away")
    waiting = [asyncio.ensure_future(gate.principal_for_token(token)) for _ in range(3)]
    await asyncio.sleep(0.05)
    held.release()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, Broken) for r in results) and gate.reads == 1
    # the next request reads again, and succeeds once the database is back
    held.fail = None
    assert (await gate.principal_for_token(token)).user_id == user.id
    assert gate.reads == 2


async def test_api_keys_share_one_read_too(client: TestClient[Any, Any]) -> None:
    app = client.app
    gate, held, _, _ = await _gate(client)
    tenant = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    resp = await client.post(
        "/api/api-keys", json={"name": "gate test", "permissions": ["read:contacts"]}, headers=admin
    )
    assert resp.status == 201, await resp.text()
    key = (await resp.json())["data"]["key"]
    waiting = [asyncio.ensure_future(gate.principal_for_api_key(key)) for _ in range(10)]
    await asyncio.sleep(0.05)
    held.release()
    principals = await asyncio.gather(*waiting)
    assert {p.tenant_id for p in principals} == {tenant.id} and gate.reads == 1


async def test_a_quick_re_check_does_not_queue_behind_other_work(
    client: TestClient[Any, Any],
) -> None:
    """On SQLite the re-check is a quick read on the event loop's own connection: the request
    goes on without yielding, rather than waiting behind every other ready request."""
    app = client.app
    db = app[keys.DB]
    tenant = await make_tenant(app)
    user, headers = await user_with_headers(app, "employee", tenant.id)
    gate = AuthGate(db, app[keys.TOKENS], ttl=5.0)
    ran: list[bool] = []
    asyncio.get_running_loop().call_soon(ran.append, True)
    principal = await gate.principal_for_token(headers["Authorization"][7:])
    assert principal.user_id == user.id and gate.reads == 1
    if db.dialect == "sqlite":
        assert ran == []  # nothing else ran meanwhile
