"""`SyncEngine`: keeps a `Replica` in step with the server (Qt-free, plain asyncio).

One loop does the work, one cycle at a time: push the outbox in order (batches, each entry
marked sent before it leaves, so a retry after a lost answer carries the same mutation ids and
the server applies it once), then pull until the feed is drained (a 410 `resync_required`
restarts from a snapshot and keeps the outbox).  A cycle runs on start, on local edits, on
the stream's notifications, and every `poll_interval` while the stream is down.

Failures: unreachable server, 5xx, 429 and garbled answers put the engine `offline` (or
`error`) and it retries with exponential backoff and jitter; the stream's reconnection cuts
the wait short, so it comes back online without anyone asking.  A push refused as a whole
for its content (400, 413, 422) is narrowed down by halving the batch until the one refused
entry is stored as a rejection; other refusals (403 on a read-only server...) keep the
outbox and retry.  A login that ended (`SessionExpired`) parks the engine as `signed_out` until
`kick()` after a new login.

Replica calls run in a worker thread (`asyncio.to_thread`); each is one transaction, so
stopping (or being killed) between them leaves nothing half-applied.  The UI observes plain
callbacks: `subscribe(state)` and `subscribe_changes(entities)`; a Qt bridge re-emits them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from aisha_desktop.client.api import MAX_PUSH, ApiClient
from aisha_desktop.client.errors import (
    ApiError,
    AuthError,
    ClientError,
    OfflineError,
    RateLimited,
    ResyncRequired,
    ServerError,
    UnexpectedResponse,
    ValidationError,
)
from aisha_desktop.client.models import MutationError, PushResult, SyncConflict
from aisha_desktop.replica.store import Replica

log = logging.getLogger("aisha.desktop.sync")

Status = Literal["stopped", "syncing", "online", "offline", "error", "signed_out"]
T = TypeVar("T")
MAX_RESYNCS = 3  # per cycle: a snapshot overtaken by pruning more often than this is a bug


@dataclass(frozen=True, slots=True)
class SyncState:
    status: Status = "stopped"
    stream_connected: bool = False
    pending: int = 0  # outbox entries not yet settled by the server
    conflicts: int = 0
    rejections: int = 0
    last_error: str | None = None
    last_synced_at: datetime | None = None

    @property
    def online(self) -> bool:
        return self.status in ("syncing", "online")


StateCallback = Callable[[SyncState], None]
ChangesCallback = Callable[[frozenset[str]], None]


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: half the step fixed, half random."""
    step = min(cap, base * 2.0 ** max(0, failures - 1))
    return float(step / 2 + rng.uniform(0, step / 2))


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, OfflineError | ServerError | RateLimited | UnexpectedResponse)


class SyncEngine:
    def __init__(
        self,
        api: ApiClient,
        replica: Replica,
        client_id: str | None = None,
        *,
        poll_interval: float = 30.0,
        push_batch: int = 200,
        page_size: int = 1000,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        use_stream: bool = True,
        stream_heartbeat: float = 15.0,
        rng: random.Random | None = None,
    ) -> None:
        """`client_id` defaults to the replica's own, which stays the same across runs (the
        server recognises retried mutations by client id and mutation id)."""
        self.api = api
        self.replica = replica
        self.client_id = client_id or replica.client_id
        self.poll_interval = poll_interval
        self.push_batch = max(1, min(push_batch, MAX_PUSH))
        self.page_size = page_size
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.use_stream = use_stream
        self.stream_heartbeat = stream_heartbeat
        self._rng = rng or random.Random()
        self._state = SyncState()
        self._state_callbacks: list[StateCallback] = []
        self._change_callbacks: list[ChangesCallback] = []
        self._cycle_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._reachable = asyncio.Event()  # the stream (re)connected: the server is back
        self._stopping = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._conflicts_stale = True

    # -- observing -----------------------------------------------------------------------
    @property
    def state(self) -> SyncState:
        return self._state

    def subscribe(self, callback: StateCallback) -> Callable[[], None]:
        """Call `callback(state)` whenever the state changes; returns the unsubscriber."""
        self._state_callbacks.append(callback)
        return lambda: self._state_callbacks.remove(callback)

    def subscribe_changes(self, callback: ChangesCallback) -> Callable[[], None]:
        """Call `callback(entities)` after rows of those entities changed in the replica."""
        self._change_callbacks.append(callback)
        return lambda: self._change_callbacks.remove(callback)

    def _set(self, **changes: Any) -> None:
        state = dataclasses.replace(self._state, **changes)
        if state == self._state:
            return
        self._state = state
        for callback in list(self._state_callbacks):
            try:
                callback(state)
            except Exception:
                log.exception("sync state callback failed")

    def _changed(self, entities: set[str]) -> None:
        if not entities:
            return
        frozen = frozenset(entities)
        for callback in list(self._change_callbacks):
            try:
                callback(frozen)
            except Exception:
                log.exception("sync changes callback failed")

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def _count(self) -> None:
        def counts() -> tuple[int, int, int]:
            r = self.replica
            return r.pending_count(), r.conflict_count(), r.rejection_count()

        pending, conflicts, rejections = await self._db(counts)
        self._set(pending=pending, conflicts=conflicts, rejections=rejections)

    # -- lifetime ------------------------------------------------------------------------
    async def start(self) -> None:
        if self._runner is not None:
            return
        self._stopping.clear()
        await self._count()
        self._wake.set()
        self._runner = asyncio.create_task(self._run(), name="aisha-sync")
        if self.use_stream:
            self._listener = asyncio.create_task(self._listen(), name="aisha-sync-stream")

    async def stop(self, grace: float | None = None) -> None:
        """Stop after the step in flight (a push's answer is settled, a page applied);
        after `grace` seconds the step is cancelled instead - the outbox keeps what was
        not settled, and a retried push is recognised by the server."""
        runner, listener = self._runner, self._listener
        self._runner = self._listener = None
        self._stopping.set()
        self._wake.set()
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if runner is not None:
            done, _ = await asyncio.wait({runner}, timeout=grace)
            if not done:
                runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        self._stopping.clear()
        self._set(status="stopped", stream_connected=False)

    def kick(self) -> None:
        """Sync soon (after a local edit, a new login, or the user's "sync now")."""
        self._wake.set()

    # -- local edits (shown at once, pushed by the loop) ------------------------------------
    async def create(
        self, entity: str, fields: Mapping[str, Any], record_id: str | None = None
    ) -> dict[str, Any]:
        row = await self._db(self.replica.local_create, entity, fields, record_id)
        await self._edited(entity)
        return row

    async def update(
        self, entity: str, record_id: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        row = await self._db(self.replica.local_update, entity, record_id, fields)
        await self._edited(entity)
        return row

    async def delete(self, entity: str, record_id: str) -> None:
        await self._db(self.replica.local_delete, entity, record_id)
        await self._edited(entity)

    async def update_many(
        self, entity: str, record_ids: Sequence[str], fields: Mapping[str, Any]
    ) -> int:
        """The same change to several records, all or none; how many it changed."""
        changed = await self._db(self.replica.local_update_many, entity, record_ids, fields)
        await self._edited(entity)
        return changed

    async def delete_many(self, entity: str, record_ids: Sequence[str]) -> int:
        """Delete several records, all or none; how many."""
        deleted = await self._db(self.replica.local_delete_many, entity, record_ids)
        await self._edited(entity)
        return deleted

    async def _edited(self, entity: str) -> None:
        self._changed({entity})
        await self._count()
        self.kick()

    async def resolve_conflict(
        self, conflict_id: str, resolution: str, value: Any = None
    ) -> SyncConflict:
        """Resolve on the server (keep_server, take_mine, custom) and take the record it
        answers with; the next pull brings the rest."""
        resolved = await self.api.resolve_conflict(conflict_id, resolution, value)
        await self._db(self.replica.settle_conflict, resolved)
        self._changed({resolved.entity_type})
        await self._count()
        self.kick()
        return resolved

    async def dismiss_rejection(self, mutation_id: str) -> None:
        await self._db(self.replica.dismiss_rejection, mutation_id)
        await self._count()

    # -- one cycle -------------------------------------------------------------------------
    async def sync_now(self) -> None:
        """One push-then-pull cycle now; raises what went wrong (the loop does the same
        and retries)."""
        async with self._cycle_lock:
            self._set(status="syncing")
            await self._push_all()
            await self._pull_all()
            if self._conflicts_stale:
                await self.refresh_conflicts()
            await self._count()
            self._set(status="online", last_error=None, last_synced_at=datetime.now(UTC))

    async def push(self) -> None:
        """Push the whole outbox (no pull)."""
        async with self._cycle_lock:
            await self._push_all()
            await self._count()

    async def pull(self) -> None:
        """Pull until the feed is drained (no push)."""
        async with self._cycle_lock:
            await self._pull_all()
            await self._count()

    async def refresh_conflicts(self) -> None:
        """Take the server's list of open conflicts (those resolved elsewhere go)."""
        conflicts = await self.api.conflicts()
        await self._db(self.replica.replace_conflicts, conflicts)
        self._conflicts_stale = False

    async def _push_all(self) -> None:
        limit = self.push_batch
        while True:
            batch = await self._db(self.replica.next_batch, limit)
            if not batch:
                return
            try:
                results = await self.api.push(self.client_id, [e.mutation() for e in batch])
            except ApiError as exc:
                if not isinstance(exc, ValidationError) and exc.status != 413:
                    # not about the push's content (read-only server, permissions, 5xx,
                    # rate limit): the outbox waits, nothing is turned into a rejection
                    await self._db(self.replica.mark_failed, batch, str(exc))
                    raise
                if len(batch) > 1:
                    limit = max(1, len(batch) // 2)  # find the entry the server refuses
                    continue
                # the server refuses this one entry whatever we do: keep it as a rejection
                entry = batch[0]
                error = MutationError(exc.code or "rejected", exc.message, exc.details)
                results = [
                    PushResult(
                        entry.mutation_id, "rejected", entry.entity, entry.record_id,
                        None, None, [], error, False,
                    )
                ]  # fmt: skip
            except ClientError as exc:
                await self._db(self.replica.mark_failed, batch, str(exc))
                raise
            limit = self.push_batch
            touched = await self._db(self.replica.apply_results, batch, results)
            if any(r.status == "conflict" for r in results):
                self._conflicts_stale = True
            self._changed(touched)
            await self._count()
            if self._stopping.is_set():
                return  # stopping: the rest waits in the outbox

    async def _pull_all(self) -> None:
        """Pull pages until the feed is drained.  The next page is asked for while the
        current one is written (its cursor is known), so the server's time and the
        replica's overlap."""
        resyncs = 0
        since = await self._db(lambda: self.replica.cursor)
        fetch = asyncio.ensure_future(self.api.pull_changes(since, self.page_size))
        try:
            while True:
                try:
                    page = await fetch
                except (ResyncRequired, ValidationError) as exc:
                    stale = isinstance(exc, ResyncRequired) or exc.code == "invalid_cursor"
                    if not stale or since is None or resyncs >= MAX_RESYNCS:
                        raise
                    log.warning("sync cursor refused (%s): rebuilding from a snapshot", exc.code)
                    resyncs += 1
                    await self._db(self.replica.reset_for_resync)
                    since = None
                    fetch = asyncio.ensure_future(self.api.pull_changes(None, self.page_size))
                    continue
                more = page.has_more and not self._stopping.is_set()
                if more:
                    fetch = asyncio.ensure_future(
                        self.api.pull_changes(page.cursor, self.page_size)
                    )
                touched = await self._db(self.replica.apply_page, page, since)
                self._changed(touched)
                if not more:
                    return
                since = page.cursor
        finally:
            if not fetch.done():
                fetch.cancel()
            await asyncio.gather(fetch, return_exceptions=True)

    # -- the loop --------------------------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            delay: float | None
            try:
                await self.sync_now()
            except asyncio.CancelledError:
                raise
            except AuthError as exc:  # the login ended: wait for a new one (kick)
                self._set(status="signed_out", last_error=str(exc))
                await self._wait(self._wake)
                continue
            except Exception as exc:
                failures += 1
                offline = isinstance(exc, OfflineError)
                if not _retriable(exc):
                    log.exception("sync cycle failed")
                self._set(status="offline" if offline else "error", last_error=str(exc))
                delay = backoff_delay(failures, self.backoff_base, self.backoff_cap, self._rng)
                if isinstance(exc, RateLimited) and exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                self._reachable.clear()
                await self._wait(self._reachable, delay)
                continue
            failures = 0
            idle = None if self._state.stream_connected else self.poll_interval
            await self._wait(self._wake, idle)

    async def _wait(self, event: asyncio.Event, seconds: float | None = None) -> None:
        """Until `event`, stop, or `seconds` passed."""
        waiters = {
            asyncio.ensure_future(event.wait()),
            asyncio.ensure_future(self._stopping.wait()),
        }
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _listen(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                async with self.api.change_stream(heartbeat=self.stream_heartbeat) as stream:
                    async for _seq in stream:
                        if not self._state.stream_connected:
                            failures = 0
                            self._set(stream_connected=True)
                            self._reachable.set()
                        self.kick()  # hello (we may have missed changes) or changed
            except asyncio.CancelledError:
                raise
            except ClientError as exc:
                log.debug("sync stream down: %s", exc)
            except Exception:
                log.exception("sync stream failed")
            self._set(stream_connected=False)
            failures += 1
            delay = backoff_delay(failures, self.backoff_base, self.backoff_cap, self._rng)
            await self._wait(self._stopping, delay)
