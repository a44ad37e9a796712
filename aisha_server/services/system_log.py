"""Writes operational events to `system_logs` in batches, off the request path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from aisha_server.db.base import utcnow
from aisha_server.db.models import SystemLog
from aisha_server.db.uow import Database

log = logging.getLogger("aisha.system_log")


@dataclass(slots=True)
class LogEntry:
    level: str
    source: str
    message: str
    tenant_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    ip_address: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class SystemLogWriter:
    def __init__(self, db: Database, *, flush_interval: float = 1.0, batch: int = 500) -> None:
        self._db = db
        self._pending: list[dict[str, Any]] = []
        self._interval = flush_interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def write(self, entry: LogEntry) -> None:
        self._pending.append(
            {
                "id": uuid.uuid4(),
                "tenant_id": entry.tenant_id,
                "level": entry.level,
                "source": entry.source,
                "message": entry.message,
                "user_id": entry.user_id,
                "ip_address": entry.ip_address,
                "metadata_": entry.metadata,
                "created_at": utcnow(),
            }
        )
        if len(self._pending) >= self._batch:
            self._wake.set()

    async def flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []

        def insert_rows(session: Session) -> None:
            session.execute(insert(SystemLog), rows)

        try:
            await self._db.run(insert_rows, system=True)
        except Exception as exc:  # the log must never take the server down
            log.error("could not write %d system_logs rows: %s", len(rows), exc)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="aisha-system-log")

    async def _run(self) -> None:
        while not self._stopping:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as its timeout fires, and stop() would wait forever
            try:
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
