"""Rate limits (guide 3.4): per client, stricter on login and password endpoints, shared
through Redis when REDIS_URL is set, and the guide's exact 429 body."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from aisha_server import keys
from aisha_server.app import create_app
from aisha_server.auth.ratelimit import MemoryRateLimiter, RedisRateLimiter
from aisha_server.config import Settings

REDIS_URL = os.environ.get("AISHA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_REDIS = os.environ.get("AISHA_REQUIRE_REDIS") == "1"
TOO_MANY = "Too many requests, please try again later."


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"AUTH_RATE_LIMIT_MAX": 3, "RATE_LIMIT_MAX": 5, "RATE_LIMIT_WINDOW_MS": 60000}


async def assert_limited(resp: Any) -> int:
    assert resp.status == 429
    body = await resp.json()
    assert set(body) == {"status", "message", "retryAfter"}
    assert body["status"] == "error" and body["message"] == TOO_MANY
    retry_after = body["retryAfter"]
    assert isinstance(retry_after, int)
    assert resp.headers["Retry-After"] == str(retry_after)
    return retry_after


async def test_login_limit_answers_the_guides_429(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        resp = await client.post("/api/auth/login", json={})
        assert resp.status == 422
    with caplog.at_level(logging.WARNING, logger="aisha.http"):
        resp = await client.post("/api/auth/login", json={})
    assert await assert_limited(resp) in (59, 60)
    assert "Rate limit exceeded for IP 127.0.0.1" in caplog.text

    # the password endpoints share the strict bucket ...
    for path in ("/api/auth/forgot-password", "/api/auth/reset-password"):
        await assert_limited(await client.post(path, json={}))
    # ... but the general API budget is separate
    assert (await client.get("/api/auth/me")).status == 401


async def test_api_limit_and_exempt_endpoints(client: Any) -> None:
    for _ in range(5):
        assert (await client.get("/api/auth/me")).status == 401
    assert await assert_limited(await client.get("/api/auth/me")) in (59, 60)
    await assert_limited(await client.post("/api/auth/logout"))
    for _ in range(8):
        assert (await client.get("/health")).status == 200
        assert (await client.get("/api/status")).status == 200
    # logging in is counted in its own bucket, so a busy client can still sign in
    assert (await client.post("/api/auth/login", json={})).status == 422


async def test_memory_window_frees_after_the_window() -> None:
    limiter = MemoryRateLimiter()
    verdicts = [await limiter.hit("api", "1.2.3.4", limit=2, window_ms=1000) for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[2].retry_after == 1
    assert (await limiter.hit("api", "5.6.7.8", limit=2, window_ms=1000)).allowed
    assert (await limiter.hit("auth", "1.2.3.4", limit=2, window_ms=1000)).allowed
    await asyncio.sleep(1.05)
    assert (await limiter.hit("api", "1.2.3.4", limit=2, window_ms=1000)).allowed


# -- Redis ----------------------------------------------------------------------------------


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of our own on the local Redis, deleted afterwards."""
    conn = aioredis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await conn.ping()
    except Exception as exc:
        await conn.aclose()
        if REQUIRE_REDIS:
            pytest.fail(f"Redis is required (AISHA_REQUIRE_REDIS=1) but unreachable: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    prefix = f"aisha:test:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        stale = [key async for key in conn.scan_iter(match=f"{prefix}*")]
        if stale:
            await conn.delete(*stale)
        await conn.aclose()


async def test_redis_limiter_counts_across_instances_and_frees(redis_prefix: str) -> None:
    one = RedisRateLimiter(REDIS_URL, prefix=redis_prefix)
    two = RedisRateLimiter(REDIS_URL, prefix=redis_prefix)
    try:
        assert (await one.hit("auth", "9.9.9.9", limit=2, window_ms=1000)).allowed
        assert (await two.hit("auth", "9.9.9.9", limit=2, window_ms=1000)).allowed
        denied = await one.hit("auth", "9.9.9.9", limit=2, window_ms=1000)
        assert not denied.allowed and denied.retry_after == 1
        assert (await two.hit("api", "9.9.9.9", limit=2, window_ms=1000)).allowed
        await asyncio.sleep(1.1)
        assert (await two.hit("auth", "9.9.9.9", limit=2, window_ms=1000)).allowed
    finally:
        await one.close()
        await two.close()


async def test_two_app_instances_share_the_redis_counter(
    aiohttp_client: Any, settings: Settings, redis_prefix: str
) -> None:
    shared = settings.model_copy(update={"REDIS_URL": REDIS_URL})
    clients = []
    for _ in range(2):
        app = create_app(shared)
        configured = app[keys.RATE_LIMITER]
        assert isinstance(configured, RedisRateLimiter)  # REDIS_URL selects the shared limiter
        await configured.close()
        app[keys.RATE_LIMITER] = RedisRateLimiter(REDIS_URL, prefix=redis_prefix)
        clients.append(await aiohttp_client(app))
    first, second = clients

    for client in (first, second, first):
        assert (await client.post("/api/auth/login", json={})).status == 422
    assert await assert_limited(await second.post("/api/auth/login", json={})) in (59, 60)
    await assert_limited(await first.post("/api/auth/login", json={}))


async def test_unreachable_redis_counts_in_memory_instead_of_failing() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", prefix="unused:")
    try:
        verdicts = [await limiter.hit("api", "1.1.1.1", limit=2, window_ms=60000) for _ in range(3)]
    finally:
        await limiter.close()
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[2].retry_after in (59, 60)
