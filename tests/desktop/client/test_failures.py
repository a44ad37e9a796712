"""Failures the client turns into typed errors: an unreachable or silent server, rate
limits, and answers that are not the API's envelope."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aisha_desktop.client import (
    ApiClient,
    AuthError,
    ClientError,
    MemoryTokenStore,
    OfflineError,
    RateLimited,
    ServerError,
    Tokens,
    UnexpectedResponse,
)
from aisha_desktop.client.errors import ApiError, error_from_response, parse_retry_after
from tests.factories import SeededUser


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_server_down_is_offline() -> None:
    async with ApiClient(f"http://127.0.0.1:{_closed_port()}", timeout=2) as api:
        with pytest.raises(OfflineError) as down:
            await api.health()
        assert isinstance(down.value, ConnectionError)
        assert not isinstance(down.value, httpx.HTTPError)
        with pytest.raises(OfflineError):
            await api.login("someone@example.com", "secret")


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[str, list[asyncio.StreamWriter]]]:
    """Accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", held
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_server_that_does_not_answer_is_offline(
    silent_server: tuple[str, list[asyncio.StreamWriter]],
) -> None:
    url, _ = silent_server
    async with ApiClient(url, timeout=0.3) as api:
        with pytest.raises(OfflineError, match="did not answer in time"):
            await api.status()


async def test_a_dropped_connection_is_offline() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with ApiClient(f"http://127.0.0.1:{port}", timeout=2) as api:
            with pytest.raises(OfflineError):
                await api.status()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("settings_overrides", [{"AUTH_RATE_LIMIT_MAX": 2}])
async def test_rate_limited_login(api: ApiClient, admin: SeededUser) -> None:
    for _ in range(2):
        with pytest.raises(AuthError):
            await api.login(admin.email, "wrong")
    with pytest.raises(RateLimited) as limited:
        await api.login(admin.email, admin.password)
    error = limited.value
    assert error.status == 429
    assert error.retry_after is not None and 0 < error.retry_after <= 900
    assert error.message == "Too many requests, please try again later."


# -- answers that are not the envelope, from a real local HTTP server ------------------------


@pytest.fixture
async def odd_server() -> AsyncIterator[str]:
    async def html_502(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")

    async def plain_200(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def crash(request: web.Request) -> web.Response:
        body = {"status": "error", "message": "Internal server error", "code": "internal_error",
                "request_id": "abc-1"}  # fmt: skip
        return web.json_response(body, status=500)

    async def throttle(request: web.Request) -> web.Response:
        body = {"status": "error", "message": "Slow down", "retryAfter": 7}
        return web.json_response(body, status=429)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://elsewhere.example/")

    app = web.Application()
    app.router.add_get("/health", html_502)
    app.router.add_get("/api/status", plain_200)
    app.router.add_get("/api/crash", crash)
    app.router.add_get("/api/throttle", throttle)
    app.router.add_post("/api/auth/login", redirect)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_answers_that_are_not_the_envelope(odd_server: str) -> None:
    store = MemoryTokenStore(Tokens(access_token="a", refresh_token="r"))
    async with ApiClient(odd_server, token_store=store) as api:
        with pytest.raises(ServerError) as gateway:
            await api.health()
        assert gateway.value.status == 502 and gateway.value.message == "Bad Gateway"

        with pytest.raises(UnexpectedResponse) as plain:
            await api.status()
        assert plain.value.status == 200

        with pytest.raises(ServerError) as crashed:
            await api.request("GET", "/api/crash")
        assert crashed.value.request_id == "abc-1"
        assert crashed.value.code == "internal_error"

        with pytest.raises(RateLimited) as throttled:
            await api.request("GET", "/api/throttle")
        assert throttled.value.retry_after == 7  # from the body when the header is missing

        with pytest.raises(UnexpectedResponse) as moved:  # redirects are not followed
            await api.login("a@example.com", "x")
        assert moved.value.status == 302


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 1.5 ") == 1.5
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after("-5") == 0


def test_error_mapping_by_status_and_code() -> None:
    def mapped(status: int, body: object) -> ApiError:
        return error_from_response(status, {}, body, reason="Reason")

    assert type(mapped(403, {"message": "no"})).__name__ == "Forbidden"
    assert type(mapped(409, {"message": "x", "code": "conflict"})).__name__ == "Conflict"
    assert type(mapped(413, {"message": "big"})) is ApiError
    assert mapped(418, None).message == "Reason"
    assert mapped(418, ["not", "a", "dict"]).details is None
    assert isinstance(mapped(503, None), ServerError)
    assert isinstance(mapped(404, {}), ClientError)


def test_bad_server_urls_are_refused() -> None:
    for url in ("ftp://host", "localhost:8000", "http://"):
        with pytest.raises(ValueError):
            ApiClient(url)
