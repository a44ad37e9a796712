"""The C.A.R.E. workflow trigger worker (guide 13.6): sends queued triggers, durably.

Every poll it claims due rows of `care_trigger_deliveries` (a lease; several instances on one
PostgreSQL claim disjoint rows) and delivers each in a *round*: one attempt plus up to
`CARE_WORKFLOW_WEBHOOK_MAX_RETRIES` retries (0 = none) with exponential backoff, on timeouts,
network errors, 5xx and 429 only.  Each attempt is stored and audited as it happens.  A
round that ends without delivery leaves the row pending for a later round (exponential, up
to an hour apart), across restarts, until it is delivered or is `give_up_after` old (then
`failed`, still listed and replayable).  Any other 4xx fails the row at once.

Kill switch (13.2): nothing is sent unless `CARE_ENABLED` and
`CARE_WORKFLOW_TRIGGERS_ENABLED` are true and the URL and secret are set; queued rows wait.
A tenant an admin has paused (`PUT /api/care/pause`) has its rows held from the first claim
after the pause commits (the claim statement itself reads the pause); a round already under
way finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session
from yarl import URL

from aisha_server import keys
from aisha_server.config import Settings
from aisha_server.db.base import utcnow
from aisha_server.db.models.deliveries import FAILED
from aisha_server.db.uow import Database
from aisha_server.webhooks.delivery import (
    Attempt,
    Claimed,
    any_due,
    claim_due,
    prune,
    record_attempt,
    release,
)
from aisha_server.webhooks.http import OutboundHttp
from aisha_server.webhooks.sender import post_signed

log = logging.getLogger("aisha.care.triggers")


@dataclass(frozen=True, slots=True)
class DeliveryTiming:
    poll_interval: float = 1.0
    # waits between attempts of one round: base, 2*base, 4*base ... at most cap (seconds);
    # a longer Retry-After is honoured up to the cap
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    # waits between rounds: base, 2*base ... at most cap (seconds)
    round_base: float = 60.0
    round_cap: float = 3600.0
    # a row still undelivered this long after it was queued is marked failed
    give_up_after: timedelta = timedelta(days=3)
    # rounds delivered at once; a worker claims no more rows than this, so every claimed row
    # starts its round at once and finishes within its lease
    concurrency: int = 4
    # delivered and failed rows are deleted after the audit retention; checked this often
    prune_interval: float = 6 * 3600.0

    def backoff(self, retry: int, retry_after: float | None) -> float:
        return min(max(self.backoff_base * 2.0**retry, retry_after or 0.0), self.backoff_cap)

    def round_delay(self, rounds_done: int, retry_after: float | None) -> float:
        delay = min(self.round_base * 2.0 ** min(rounds_done, 30), self.round_cap)
        return max(delay, min(retry_after or 0.0, self.round_cap))


def disabled_reason(settings: Settings) -> str | None:
    """Why triggers are not sent, or None when they are (13.2 kill switch, 13.6 config)."""
    if not settings.CARE_ENABLED:
        return "CARE_ENABLED is false (kill switch)"
    if not settings.CARE_WORKFLOW_TRIGGERS_ENABLED:
        return "CARE_WORKFLOW_TRIGGERS_ENABLED is false"
    url = settings.CARE_WORKFLOW_ESCALATION_WEBHOOK_URL
    if not url:
        return "CARE_WORKFLOW_ESCALATION_WEBHOOK_URL is not set"
    try:
        parsed = URL(url)
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        return "CARE_WORKFLOW_ESCALATION_WEBHOOK_URL is not an http(s) URL"
    if not settings.CARE_WORKFLOW_WEBHOOK_SECRET:
        return "CARE_WORKFLOW_WEBHOOK_SECRET is not set (triggers are always signed)"
    return None


class CareTriggerWorker:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        http: OutboundHttp,
        *,
        timing: DeliveryTiming | None = None,
    ) -> None:
        self._db = db
        self._http = http
        self.timing = timing or DeliveryTiming()
        self.disabled_reason = disabled_reason(settings)
        self.retention = timedelta(days=settings.CARE_AUDIT_LOG_RETENTION_DAYS)
        self._url = settings.CARE_WORKFLOW_ESCALATION_WEBHOOK_URL or ""
        self._secret = settings.CARE_WORKFLOW_WEBHOOK_SECRET or ""
        self._timeout = settings.CARE_WORKFLOW_WEBHOOK_TIMEOUT_MS / 1000.0
        self._retries = settings.CARE_WORKFLOW_WEBHOOK_MAX_RETRIES
        self._wake = asyncio.Event()
        self._held: dict[uuid.UUID, Claimed] = {}
        self.last_run_at: datetime | None = None
        self.attempts = 0
        self.delivered = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return self.disabled_reason is None

    @property
    def lease(self) -> timedelta:
        """Long enough for a whole round, so no other instance takes a row mid-round."""
        seconds = (self._retries + 1) * self._timeout + self._retries * self.timing.backoff_cap
        return timedelta(seconds=seconds + 60.0)

    def wake(self) -> None:
        """Look for due rows now (after a commit that queued one) instead of at the next poll."""
        self._wake.set()

    def snapshot(self) -> dict[str, Any]:
        """For status reports: the switch and this instance's counters (never the URL's
        path or query, which often carry a token, nor the secret)."""
        return {
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "webhook_host": URL(self._url).host if self._url and self.enabled else None,
            "timeout_ms": round(self._timeout * 1000),
            "max_retries": self._retries,
            "last_run_at": self.last_run_at,
            "attempts": self.attempts,
            "delivered": self.delivered,
            "failed": self.failed,
        }

    async def prune(self) -> int:
        """Delete delivered and failed rows older than the audit retention."""
        cutoff = utcnow() - self.retention
        removed: int = await self._db.run(lambda s: prune(s, older_than=cutoff), system=True)
        if removed:
            log.info("pruned %d workflow trigger deliveries past retention", removed)
        return removed

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled; leases held at cancellation are handed back.  Switched off, it
        only prunes."""
        loop = asyncio.get_running_loop()
        next_prune = loop.time()
        try:
            while True:
                if loop.time() >= next_prune:
                    next_prune = loop.time() + self.timing.prune_interval
                    try:
                        await self.prune()
                    except Exception:
                        log.exception("could not prune workflow trigger deliveries")
                if not self.enabled:
                    await self._sleep(next_prune - loop.time())
                    continue
                try:
                    claimed = await self.run_once()
                except Exception:
                    log.exception("Workflow trigger delivery failed unexpectedly")
                    claimed = 0
                if claimed < self.timing.concurrency:
                    await self._sleep(self.timing.poll_interval)
        finally:
            await self._release_held()

    async def _sleep(self, seconds: float) -> None:
        """Until `wake()` or `seconds`.  asyncio.timeout, not wait_for: on Python 3.11
        wait_for can swallow a cancellation that arrives as its timeout fires, and the
        server's shutdown then waits for this loop forever (seen as a test teardown hang)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await self._wake.wait()
        self._wake.clear()

    async def run_once(self) -> int:
        """Claim up to `concurrency` due rows and deliver a round of each, side by side;
        returns how many."""
        if not self.enabled:
            return 0
        now = utcnow()
        self.last_run_at = now

        def due(session: Session) -> bool:
            return any_due(session, now=now)

        if not await self._db.run(due, system=True, write=False):
            return 0

        def claim(session: Session) -> list[Claimed]:
            return claim_due(session, now=now, lease=self.lease, limit=self.timing.concurrency)

        claimed = await self._db.run(claim, system=True)
        if not claimed:
            return 0
        for row in claimed:
            self._held[row.id] = row

        async def one(row: Claimed) -> None:
            try:
                await self._round(row)
            except Exception:
                log.exception("Workflow trigger failed: event %s", row.id)
                # leave the lease: the row comes back when it runs out
                self._held.pop(row.id, None)

        async with asyncio.TaskGroup() as group:
            for row in claimed:
                group.create_task(one(row))
        return len(claimed)

    async def _round(self, row: Claimed) -> None:
        client = self._http.session
        for retry in range(self._retries + 1):
            attempt = await post_signed(
                client,
                self._url,
                row.body,
                secret=self._secret,
                event_id=str(row.id),
                timeout_s=self._timeout,
            )
            final = attempt.delivered or not attempt.retryable or retry == self._retries
            recorded = await self._record(row, attempt, final=final)
            if recorded is None:
                log.warning("Workflow trigger %s: lease lost, round abandoned", row.id)
                self._held.pop(row.id, None)
                return
            number, outcome = recorded
            self.attempts += 1
            if attempt.delivered:
                self.delivered += 1
            elif final:
                log.warning(
                    "Workflow trigger failed: event %s attempt %d: %s",
                    row.id,
                    number,
                    attempt.error,
                )
                if outcome == FAILED:
                    self.failed += 1
            if final:
                self._held.pop(row.id, None)
                return
            await asyncio.sleep(self.timing.backoff(retry, attempt.retry_after))

    async def _record(
        self, row: Claimed, attempt: Attempt, *, final: bool
    ) -> tuple[int, str] | None:
        now = utcnow()
        give_up = (
            final
            and not attempt.delivered
            and attempt.retryable
            and now - row.created_at >= self.timing.give_up_after
        )
        next_round_at = now + timedelta(
            seconds=self.timing.round_delay(row.rounds, attempt.retry_after)
        )

        def write(session: Session) -> tuple[int, str] | None:
            return record_attempt(
                session,
                row,
                attempt,
                now=now,
                final=final,
                next_round_at=next_round_at,
                give_up=give_up,
            )

        return await self._db.run(write, system=True)

    async def _release_held(self) -> None:
        held = list(self._held.values())
        self._held.clear()
        if not held:
            return
        now = utcnow()
        try:
            await self._db.run(lambda s: release(s, held, now=now), system=True)
        except Exception:
            log.exception(
                "could not hand back %d trigger leases; they expire by themselves", len(held)
            )


async def lifespan(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the worker's task runs while the server does (switched off: pruning only)."""
    worker = app[keys.CARE_TRIGGER_WORKER]
    if not worker.enabled:
        log.info("C.A.R.E. workflow triggers are off: %s", worker.disabled_reason)
    task = asyncio.create_task(worker.run(), name="aisha-care-triggers")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
