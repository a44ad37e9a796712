"""Fixed-window rate limits per client (guide 3.4).

In memory per process by default; shared across instances through Redis when `REDIS_URL`
is set.  A hit returns whether the request may pass and, when not, the seconds until the
window frees (the 429's `retryAfter` and `Retry-After`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("aisha.ratelimit")

RETRY_REDIS_AFTER = 5.0  # seconds between reconnection attempts while Redis is unreachable


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: int
    remaining: int


class RateLimiter(Protocol):
    async def hit(self, bucket: str, client: str, *, limit: int, window_ms: int) -> Verdict: ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], list[float]] = {}
        self._last_sweep = 0.0

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    async def hit(self, bucket: str, client: str, *, limit: int, window_ms: int) -> Verdict:
        now = self._now()
        window = window_ms / 1000.0
        key = (bucket, client)
        entry = self._windows.get(key)
        if entry is None or now - entry[0] >= window:
            entry = [now, 0.0]
            self._windows[key] = entry
        entry[1] += 1
        if now - self._last_sweep > window:
            self._sweep(now, window)
        if entry[1] > limit:
            return Verdict(False, max(1, math.ceil(entry[0] + window - now)), 0)
        return Verdict(True, 0, int(limit - entry[1]))

    def _sweep(self, now: float, window: float) -> None:
        self._last_sweep = now
        stale = [k for k, (start, _) in self._windows.items() if now - start >= window]
        for key in stale:
            del self._windows[key]

    async def close(self) -> None:
        self._windows.clear()


class RedisRateLimiter:
    """INCR + PEXPIRE NX + PTTL in one round trip; every instance sees the same counters.

    Redis is an optional helper, not a dependency of every request: while it cannot be
    reached, this instance counts in memory (limits then apply per instance) and says so
    in the log, instead of failing every request with a 500.
    """

    def __init__(self, url: str, *, prefix: str = "aisha:rl:", timeout: float = 0.5) -> None:
        self._redis = aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._prefix = prefix
        self._fallback = MemoryRateLimiter()
        self._degraded_since: float | None = None
        self._last_failure = 0.0

    async def hit(self, bucket: str, client: str, *, limit: int, window_ms: int) -> Verdict:
        key = f"{self._prefix}{bucket}:{client}"
        if (
            self._degraded_since is not None
            and time.monotonic() - self._last_failure < RETRY_REDIS_AFTER
        ):
            # do not pay a connect timeout on every request while Redis is away
            return await self._fallback.hit(bucket, client, limit=limit, window_ms=window_ms)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.pexpire(key, window_ms, nx=True)
                pipe.pttl(key)
                count, _, ttl_ms = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._last_failure = time.monotonic()
            if self._degraded_since is None:
                self._degraded_since = time.monotonic()
                log.warning("[WARN] Redis rate limiter unavailable, counting in memory: %s", exc)
            return await self._fallback.hit(bucket, client, limit=limit, window_ms=window_ms)
        if self._degraded_since is not None:
            self._degraded_since = None
            log.warning("[WARN] Redis rate limiter reachable again")
        if int(count) > limit:
            ttl = int(ttl_ms) if int(ttl_ms) > 0 else window_ms
            return Verdict(False, max(1, math.ceil(ttl / 1000)), 0)
        return Verdict(True, 0, limit - int(count))

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._fallback.close()
        await self._redis.aclose()
