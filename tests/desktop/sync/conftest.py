"""A real AiSHA server on 127.0.0.1 (SQLite and PostgreSQL) behind a TCP proxy the tests can
cut, restore, or have drop the answer of a push after the server received it; users of one
tenant; and replicas with sync engines talking through the proxy."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aisha_desktop.client import ApiClient
from aisha_desktop.replica import Replica
from aisha_desktop.sync import SyncEngine
from tests.factories import SeededUser, make_tenant, make_user


class Proxy:
    """Forwards 127.0.0.1:port to the server.  `cut()` closes the port and every
    connection (the server looks gone); `restore()` listens on the same port again;
    `drop_next(marker)` lets the next request holding `marker` reach the server, then hangs
    up on the client instead of passing the answer on."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.dropped = 0
        self._marker: bytes | None = None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._ends: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # closing both ends lets each handler finish and close what it opened itself
        for end in list(self._ends):
            end.close()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5)
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        await self.start()

    def drop_next(self, marker: bytes) -> None:
        self._marker = marker

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._ends.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            self._ends.add(upstream)
            if self._server is None:  # cut while connecting
                return
            drop = asyncio.Event()
            up = upstream

            async def to_server() -> None:
                while data := await reader.read(65536):
                    if self._marker is not None and self._marker in data:
                        self._marker = None
                        drop.set()
                    up.write(data)
                    await up.drain()

            async def to_client() -> None:
                while data := await up_reader.read(65536):
                    if drop.is_set():  # the server answered (so it committed): hang up
                        self.dropped += 1
                        return
                    writer.write(data)
                    await writer.drain()

            pumps = [asyncio.ensure_future(to_server()), asyncio.ensure_future(to_client())]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except OSError:
            pass
        finally:
            for end in (writer, upstream):
                if end is not None:
                    self._ends.discard(end)
                    end.close()
                    with contextlib.suppress(Exception):
                        await end.wait_closed()
            self._handlers.discard(task)


@dataclass
class Live:
    app: web.Application
    url: str  # the server itself
    proxy: Proxy  # the way replicas reach it
    tmp: Path
    clients: list[ApiClient] = field(default_factory=list)
    engines: list[SyncEngine] = field(default_factory=list)
    replicas: list[Replica] = field(default_factory=list)

    async def api(self, user: SeededUser, *, direct: bool = False) -> ApiClient:
        """A client logged in as `user`, through the proxy unless `direct`."""
        client = ApiClient(self.url if direct else self.proxy.url, timeout=10)
        self.clients.append(client)
        await client.login(user.email, user.password)
        return client

    async def engine(self, user: SeededUser, name: str | None = None, **options: Any) -> SyncEngine:
        """A replica of `user` in its own data directory, with an engine through the proxy
        (fast backoff; no stream and no polling unless asked for)."""
        api = await self.api(user)
        data_dir = self.tmp / (name or f"desk-{uuid.uuid4().hex[:8]}")
        replica = Replica.open(data_dir, self.proxy.url, str(user.tenant_id), str(user.id))
        self.replicas.append(replica)
        settings: dict[str, Any] = {
            "poll_interval": 3600.0,
            "backoff_base": 0.05,
            "backoff_cap": 0.3,
            "use_stream": False,
            "page_size": 500,
        }
        settings.update(options)
        engine = SyncEngine(api, replica, **settings)
        self.engines.append(engine)
        return engine


@dataclass
class Team:
    tenant_id: uuid.UUID
    admin: SeededUser
    admin2: SeededUser
    employee: SeededUser
    peer: SeededUser


@pytest.fixture
async def live(app: web.Application, tmp_path: Path) -> AsyncIterator[Live]:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    assert server.port is not None
    proxy = Proxy(server.port)
    await proxy.start()
    state = Live(app, str(server.make_url("")).rstrip("/"), proxy, tmp_path)
    try:
        yield state
    finally:
        for engine in state.engines:
            await engine.stop(grace=5)
        for replica in state.replicas:
            replica.close()
        for client in state.clients:
            await client.aclose()
        await proxy.cut()
        # before the database fixture drops the database: shutdown still writes to it
        await server.close()


@pytest.fixture
async def team(live: Live) -> Team:
    tenant = await make_tenant(live.app, "Replica Co")
    admin = await make_user(live.app, role="admin", tenant_id=tenant.id)
    admin2 = await make_user(live.app, role="admin", tenant_id=tenant.id)
    employee = await make_user(live.app, role="employee", tenant_id=tenant.id, department="A")
    peer = await make_user(live.app, role="employee", tenant_id=tenant.id, department="B")
    return Team(tenant.id, admin, admin2, employee, peer)


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Wait until `check()` holds (polling), or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
