"""Health, status, diagnostics and metrics of the running server."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any

import psutil

from aisha_server import __version__
from aisha_server.config import Settings
from aisha_server.db import migrate
from aisha_server.db.uow import Database
from aisha_server.metrics import Metrics


@dataclass(slots=True)
class _Probe:
    at: float
    ok: bool
    latency_ms: float
    error: str | None


class SystemService:
    """Status answers from a database probe at most `probe_ttl` seconds old, so a busy
    `/api/status` does not turn into database load."""

    def __init__(
        self, settings: Settings, db: Database, metrics: Metrics, *, probe_ttl: float = 2.0
    ) -> None:
        self._settings = settings
        self._db = db
        self._metrics = metrics
        self._probe_ttl = probe_ttl
        self._probe: _Probe | None = None
        self._status: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()
        self._process = psutil.Process(os.getpid())
        self.started_at = time.time()

    async def database_probe(self, *, fresh: bool = False) -> _Probe:
        now = time.monotonic()
        probe = self._probe
        if not fresh and probe is not None and now - probe.at <= self._probe_ttl:
            return probe
        async with self._lock:
            probe = self._probe
            if not fresh and probe is not None and time.monotonic() - probe.at <= self._probe_ttl:
                return probe
            try:
                async with asyncio.timeout(5):
                    seconds = await self._db.ping()
                probe = _Probe(time.monotonic(), True, seconds * 1000, None)
            except Exception as exc:
                probe = _Probe(time.monotonic(), False, 0.0, f"{type(exc).__name__}: {exc}")
            self._probe = probe
            return probe

    async def status(self) -> dict[str, Any]:
        """Cached for a second: status is polled by load balancers and dashboards."""
        now = time.monotonic()
        cached = self._status
        if cached is not None and now - cached[0] < 1.0:
            return cached[1]
        probe = await self.database_probe()
        status = {
            "backend": "ok",
            "database": "ok" if probe.ok else "error",
            "database_backend": self._db.dialect,
            "version": __version__,
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "readonly": self._settings.PRODUCTION_READONLY,
        }
        self._status = (now, status)
        return status

    def memory(self) -> dict[str, Any]:
        info = self._process.memory_info()
        return {"rss_bytes": info.rss, "vms_bytes": info.vms}

    def metrics(self) -> dict[str, Any]:
        last_minute = self._metrics.window(60)
        last_5 = self._metrics.window(300)
        return {
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "requests": {
                "total": self._metrics.total_requests,
                "errors_total": self._metrics.total_errors,
                "last_minute": _window(last_minute),
                "last_5_minutes": _window(last_5),
            },
            "latency_ms": {
                "p50": round(last_5.p50_ms, 3),
                "p95": round(last_5.p95_ms, 3),
                "p99": round(last_5.p99_ms, 3),
            },
            "error_rate": round(last_5.error_rate, 5),
            "database_pool": self._db.pool_status(),
            "memory": self.memory(),
            "cpu_percent": self._process.cpu_percent(interval=None),
        }

    async def diagnostics(self) -> dict[str, Any]:
        probe = await self.database_probe(fresh=True)
        head = migrate.head_revision()
        current = (
            await self._db.run(_current_revision, system=True, write=False) if probe.ok else None
        )
        return {
            "database": {
                "backend": self._db.dialect,
                "ok": probe.ok,
                "latency_ms": round(probe.latency_ms, 3),
                "error": probe.error,
                "pool": self._db.pool_status(),
                "schema_revision": current,
                "schema_head": head,
                "schema_up_to_date": current == head,
            },
            "runtime": {
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "pid": os.getpid(),
                "version": __version__,
            },
            "memory": self.memory(),
            "config": {
                "readonly": self._settings.PRODUCTION_READONLY,
                "rate_limit": {
                    "window_ms": self._settings.RATE_LIMIT_WINDOW_MS,
                    "max": self._settings.RATE_LIMIT_MAX,
                    "auth_max": self._settings.AUTH_RATE_LIMIT_MAX,
                    "shared": self._settings.REDIS_URL is not None,
                },
                "smtp_configured": self._settings.SMTP_HOST is not None,
            },
        }


def _window(stats: Any) -> dict[str, Any]:
    return {
        "requests": stats.requests,
        "errors": stats.errors,
        "error_rate": round(stats.error_rate, 5),
        "requests_per_second": round(stats.requests_per_second, 3),
        "p50_ms": round(stats.p50_ms, 3),
        "p95_ms": round(stats.p95_ms, 3),
        "p99_ms": round(stats.p99_ms, 3),
    }


def _current_revision(session: Any) -> str | None:
    from sqlalchemy import text

    row = session.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])
