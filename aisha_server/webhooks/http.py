"""The server's one outbound HTTP client (DESIGN: one client per process, with timeouts).

Built in `create_app` and opened/closed by `cleanup_ctx` (`lifespan`), so the connection
pool lives exactly as long as the server.  Callers pass their own per-request timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from aisha_server import __version__, keys

# a ceiling for anything that forgets its own timeout
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)


class OutboundHttp:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the outbound HTTP client is not open (server not started)")
        return self._session

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=DEFAULT_TIMEOUT,
                headers={"User-Agent": f"AiSHA/{__version__}"},
                # the environment's proxies would see signed payloads: explicit only
                trust_env=False,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def lifespan(app: web.Application) -> AsyncIterator[None]:
    http = app[keys.HTTP]
    await http.open()
    try:
        yield
    finally:
        await http.close()
