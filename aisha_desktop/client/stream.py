"""`ChangeStream`: the WebSocket `/api/sync/stream` that says when the tenant's change feed
moved.  The handshake carries the bearer token; a refused one is renewed through the API
client's single-flight refresh and the handshake tried once more.  Any loss of the
connection (server gone, proxy cut, missed heartbeats, server close) raises `OfflineError`:
the caller reconnects when it wants to."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

import aiohttp
import orjson

from aisha_desktop.client.errors import (
    OfflineError,
    UnexpectedResponse,
    error_from_response,
)

if TYPE_CHECKING:
    from aisha_desktop.client.api import ApiClient

CONNECT_TIMEOUT = 10.0


class ChangeStream:
    def __init__(self, api: ApiClient, *, heartbeat: float = 15.0) -> None:
        self._api = api
        self._heartbeat = heartbeat
        self._session: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def connect(self) -> None:
        from aisha_desktop.client.api import SYNC_STREAM, TENANT_HEADER, USER_AGENT

        url = self._api.base_url + SYNC_STREAM
        token = await self._api.bearer_token()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
            headers={"User-Agent": USER_AGENT},
        )
        try:
            for attempt in range(2):
                try:
                    headers = {"Authorization": f"Bearer {token}"}
                    if self._api.tenant_id:
                        headers[TENANT_HEADER] = self._api.tenant_id
                    self._socket = await self._session.ws_connect(
                        url,
                        headers=headers,
                        heartbeat=self._heartbeat,
                        autoping=True,
                    )
                    return
                except aiohttp.WSServerHandshakeError as exc:
                    if exc.status == 401 and attempt == 0:
                        token = await self._api.renewed_token(token)
                        continue
                    error = error_from_response(
                        exc.status, exc.headers or {}, None, reason=exc.message
                    )
                    raise error from None
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    raise OfflineError(
                        f"The server's change stream at {url} cannot be reached: {exc}"
                    ) from exc
        except BaseException:
            await self.aclose()
            raise

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> int:
        return await self.receive()

    async def receive(self) -> int:
        """The next head the server announces (`hello` first, then `changed`)."""
        socket = self._socket
        if socket is None:
            raise OfflineError("The change stream is not connected")
        while True:
            try:
                message = await socket.receive()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise OfflineError(f"The change stream was lost: {exc}") from exc
            if message.type is aiohttp.WSMsgType.TEXT:
                try:
                    body = orjson.loads(message.data)
                except orjson.JSONDecodeError:
                    raise UnexpectedResponse(
                        "The change stream sent something that is not JSON", status=101
                    ) from None
                if (
                    isinstance(body, dict)
                    and body.get("type") in ("hello", "changed")
                    and isinstance(body.get("seq"), int)
                ):
                    return int(body["seq"])
                continue  # a message kind this client does not know: not its business
            if message.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue
            raise OfflineError(f"The change stream was closed ({message.type.name})")

    async def aclose(self) -> None:
        socket, session = self._socket, self._session
        self._socket = self._session = None
        try:
            if socket is not None:
                await socket.close()
        finally:
            if session is not None:
                await session.close()
