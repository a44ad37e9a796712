"""Durable delivery of C.A.R.E. workflow triggers (guide 13.6): the outbox and its admin API.

* `enqueue_care_trigger(session, ...)` adds the trigger to the caller's transaction (an
  outbox row): if the decision rolls back, nothing is sent; once it commits, nothing is lost.
  The body is serialised here, once; every attempt sends the same bytes.
* The trigger worker (`aisha_server.workers.care_triggers`) claims due rows with
  `claim_due` (FOR UPDATE SKIP LOCKED and a lease, so several server instances on one
  PostgreSQL never send a row twice at once), and records each attempt with
  `record_attempt` (row + `WORKFLOW_TRIGGERED` audit entry in one transaction).
* `TriggerDeliveries` lists deliveries and replays one for tenant admins and superadmins.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from aisha_server.auth.authorize import TENANT_ADMINS, expand_action
from aisha_server.auth.principal import Principal
from aisha_server.care.audit import ORIGIN_HUMAN, WORKFLOW_TRIGGERED, record_audit
from aisha_server.db.base import utcnow
from aisha_server.db.models.care import CareTenantControl
from aisha_server.db.models.deliveries import (
    DELIVERED,
    FAILED,
    PENDING,
    STATUSES,
    CareTriggerDelivery,
)
from aisha_server.db.uow import Database
from aisha_server.errors import BadRequest, Conflict, NotFound, PermissionDenied
from aisha_server.services.pagination import decode_time_cursor, encode_cursor
from aisha_server.webhooks.signing import canonical_json

ESCALATION_DETECTED_TYPE: Final = "care.escalation_detected"
TRIGGER_DETECTED_TYPE: Final = "care.trigger_detected"
ACTION_TYPE: Final = "workflow_trigger"
REPLAY_ACTION_TYPE: Final = "workflow_trigger_replay"
# the API's resource name (API key permissions `read:care`, `update:care`)
RESOURCE: Final = "care"


def _uuid(value: Any, what: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValueError(f"trigger payload: {what} must be a UUID, got {value!r}") from None


def enqueue_care_trigger(
    session: Session, *, tenant_id: uuid.UUID, payload: Mapping[str, Any]
) -> uuid.UUID:
    """Queue one workflow trigger in the caller's transaction; returns its event id.

    `payload` follows the guide's contract (13.6): `type`, `entity_type`, `entity_id`,
    `trigger_type`, `action_origin`, `reason`, `policy_gate_result`, `meta`, ...  Missing
    `event_id` (a UUID), `type` and `ts` are filled in; `tenant_id` is set from the argument
    (a different one in the payload is a programming error).  Queueing the same event id
    again keeps the first row (also when another tenant's row has that id: nothing of it is
    read or changed).  Whether a trigger may be sent at all (kill switch, policy
    gate) is the caller's decision; the worker also sends nothing while switched off.
    """
    event_id = _uuid(payload["event_id"], "event_id") if "event_id" in payload else uuid.uuid4()
    if "tenant_id" in payload and _uuid(payload["tenant_id"], "tenant_id") != tenant_id:
        raise ValueError("trigger payload: tenant_id differs from the tenant it is queued for")
    if "entity_type" not in payload or "entity_id" not in payload:
        raise ValueError("trigger payload: entity_type and entity_id are required")
    entity_id = _uuid(payload["entity_id"], "entity_id")
    now = utcnow()
    body: dict[str, Any] = {
        "event_id": str(event_id),
        "type": payload.get("type") or ESCALATION_DETECTED_TYPE,
        "ts": payload.get("ts") or now,
        "tenant_id": str(tenant_id),
    }
    body.update((k, v) for k, v in payload.items() if k not in body)
    raw = canonical_json(body).decode("utf-8")
    trigger_type = payload.get("trigger_type")
    values = {
        "id": event_id,
        "tenant_id": tenant_id,
        "event_type": str(body["type"])[:64],
        "trigger_type": str(trigger_type)[:64] if trigger_type is not None else None,
        "entity_type": str(payload["entity_type"])[:50],
        "entity_id": entity_id,
        "action_origin": _opt_str(payload.get("action_origin"), 32),
        "reason": _opt_str(payload.get("reason")),
        "body": raw,
        "status": PENDING,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
    # one statement, no look-up first: an event id already queued keeps its first row
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(CareTriggerDelivery).values(values).on_conflict_do_nothing(index_elements=["id"])
    )
    return event_id


def _opt_str(value: Any, limit: int | None = None) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text[:limit] if limit else text


# -- the worker's side ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """One row a worker holds the lease of, with what it needs to send and audit it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    token: uuid.UUID
    body: bytes
    trigger_type: str | None
    entity_type: str
    entity_id: uuid.UUID
    action_origin: str | None
    reason: str | None
    attempts: int
    rounds: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one POST."""

    http_status: int | None
    error: str | None
    delivered: bool
    retryable: bool
    # seconds the receiver asked us to wait (Retry-After on 429/503)
    retry_after: float | None = None


def _due(now: datetime) -> list[Any]:
    """Pending, due, and not of a tenant an admin has paused.  The pause is read in the same
    statement as the claim, so a pause committed before a claim holds every row the claim
    would have taken (a set read earlier in the cycle let one delivery through)."""
    paused = (
        select(CareTenantControl.tenant_id)
        .where(
            CareTenantControl.tenant_id == CareTriggerDelivery.tenant_id,
            CareTenantControl.paused.is_(True),
        )
        .exists()
    )
    return [
        CareTriggerDelivery.status == PENDING,
        CareTriggerDelivery.next_attempt_at <= now,
        ~paused,
    ]


def any_due(session: Session, *, now: datetime) -> bool:
    """A cheap read before `claim_due`'s write transaction (the worker polls every second)."""
    query = select(CareTriggerDelivery.id).where(*_due(now)).limit(1)
    return session.scalar(query) is not None


def claim_due(session: Session, *, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
    """Take the lease of up to `limit` due rows of tenants not paused.  PostgreSQL: `FOR
    UPDATE SKIP LOCKED` lets concurrent instances claim disjoint rows; SQLite: the writer's
    `BEGIN IMMEDIATE` does."""
    query = (
        select(CareTriggerDelivery)
        .where(*_due(now))
        .order_by(CareTriggerDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(of=CareTriggerDelivery, skip_locked=True)
    )
    claimed = []
    for row in session.scalars(query):
        row.lease_token = uuid.uuid4()
        row.next_attempt_at = now + lease
        claimed.append(
            Claimed(
                id=row.id,
                tenant_id=row.tenant_id,
                token=row.lease_token,
                body=row.body.encode("utf-8"),
                trigger_type=row.trigger_type,
                entity_type=row.entity_type,
                entity_id=row.entity_id,
                action_origin=row.action_origin,
                reason=row.reason,
                attempts=row.attempts,
                rounds=row.rounds,
                created_at=row.created_at,
            )
        )
    return claimed


def record_attempt(
    session: Session,
    claimed: Claimed,
    attempt: Attempt,
    *,
    now: datetime,
    final: bool,
    next_round_at: datetime | None,
    give_up: bool,
) -> tuple[int, str] | None:
    """Store one attempt and audit it (`WORKFLOW_TRIGGERED`); returns the attempt number and
    its outcome (`delivered`, `retry`, `retry_later`, `failed`), or None when the lease was
    lost (another instance took the row over after the lease ran out).

    `final` ends the round: delivered, failed for good (not retryable, or `give_up`), or
    back to pending at `next_round_at`.
    """
    row = session.get(CareTriggerDelivery, claimed.id, with_for_update=True)
    if row is None or row.lease_token != claimed.token:
        return None
    row.attempts += 1
    row.last_http_status = attempt.http_status
    row.last_error = attempt.error
    row.last_attempt_at = now
    if attempt.delivered:
        outcome = DELIVERED
        row.status, row.delivered_at, row.lease_token = DELIVERED, now, None
    elif final and (not attempt.retryable or give_up):
        outcome = FAILED
        row.status, row.lease_token = FAILED, None
    elif final:
        outcome = "retry_later"
        assert next_round_at is not None
        row.rounds += 1
        row.status, row.next_attempt_at, row.lease_token = PENDING, next_round_at, None
    else:
        outcome = "retry"
    record_audit(
        session,
        tenant_id=claimed.tenant_id,
        event_type=WORKFLOW_TRIGGERED,
        entity_type=claimed.entity_type,
        entity_id=claimed.entity_id,
        action_origin=claimed.action_origin,
        reason=claimed.reason,
        metadata={
            "action_type": ACTION_TYPE,
            "event_id": str(claimed.id),
            "trigger_type": claimed.trigger_type,
            "http_status": attempt.http_status,
            "attempt": row.attempts,
            "outcome": outcome,
            "error": attempt.error,
        },
    )
    return row.attempts, outcome


def release(session: Session, held: Iterable[Claimed], *, now: datetime) -> int:
    """Give leases back (shutdown mid-round): the rows are due again at once."""
    released = 0
    for claimed in held:
        row = session.get(CareTriggerDelivery, claimed.id, with_for_update=True)
        if row is not None and row.lease_token == claimed.token and row.status == PENDING:
            row.lease_token, row.next_attempt_at = None, now
            released += 1
    return released


def queue_counts(session: Session, tenant_id: uuid.UUID | None = None) -> dict[str, int]:
    """Rows per status (one tenant, or all), for status reports."""
    counts = dict.fromkeys(STATUSES, 0)
    query = select(CareTriggerDelivery.status, func.count()).group_by(CareTriggerDelivery.status)
    if tenant_id is not None:
        query = query.where(CareTriggerDelivery.tenant_id == tenant_id)
    for status, count in session.execute(query):
        counts[str(status)] = int(count)
    return counts


def prune(session: Session, *, older_than: datetime) -> int:
    """Delete delivered and failed rows last changed before `older_than` (pending rows are
    never deleted: they have not been delivered yet)."""
    result = session.execute(
        delete(CareTriggerDelivery).where(
            CareTriggerDelivery.status.in_((DELIVERED, FAILED)),
            CareTriggerDelivery.updated_at < older_than,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


# -- the admin API's side ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    items: list[dict[str, Any]]
    limit: int
    next_cursor: str | None


def _view(row: CareTriggerDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_id": row.id,
        "tenant_id": row.tenant_id,
        "event_type": row.event_type,
        "trigger_type": row.trigger_type,
        "entity_type": row.entity_type,
        "entity_id": row.entity_id,
        "status": row.status,
        "in_flight": row.lease_token is not None,
        "attempts": row.attempts,
        "rounds": row.rounds,
        "replays": row.replays,
        "last_http_status": row.last_http_status,
        "last_error": row.last_error,
        "last_attempt_at": row.last_attempt_at,
        "next_attempt_at": row.next_attempt_at if row.status == PENDING else None,
        "delivered_at": row.delivered_at,
        "created_at": row.created_at,
        "payload": json.loads(row.body),
    }


class TriggerDeliveries:
    """Lists and replays trigger deliveries; tenant admins see their tenant, superadmins any."""

    MAX_LIMIT: Final = 200

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def _require_admin(actor: Principal, action: str) -> None:
        if not all(actor.key_allows(a, RESOURCE) for a in expand_action(action)):
            raise PermissionDenied(
                f"API key lacks permission {action}:{RESOURCE}", code="api_key_scope"
            )
        if actor.role not in TENANT_ADMINS:
            raise PermissionDenied("Permission denied: trigger deliveries are for admins")

    async def list(
        self,
        actor: Principal,
        tenant_id: uuid.UUID | None,
        *,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DeliveryPage:
        """Newest first.  `tenant_id` None lists every tenant (superadmins only)."""
        self._require_admin(actor, "read")
        if tenant_id is None and not actor.is_superadmin:
            raise PermissionDenied("Permission denied: name a tenant")
        if status is not None and status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
        limit = max(1, min(limit, self.MAX_LIMIT))
        after = decode_time_cursor(cursor) if cursor else None
        D = CareTriggerDelivery  # noqa: N806 (reads as the table in the query below)

        def read(session: Session) -> DeliveryPage:
            query = select(D)
            if tenant_id is not None:
                query = query.where(D.tenant_id == tenant_id)
            if status is not None:
                query = query.where(D.status == status)
            if after is not None:
                at, ident = after
                query = query.where(or_(D.created_at < at, and_(D.created_at == at, D.id < ident)))
            rows = list(
                session.scalars(query.order_by(D.created_at.desc(), D.id.desc()).limit(limit + 1))
            )
            more = len(rows) > limit
            rows = rows[:limit]
            return DeliveryPage(
                [_view(r) for r in rows],
                limit,
                encode_cursor([rows[-1].created_at.isoformat(), rows[-1].id]) if more else None,
            )

        if tenant_id is None:
            return await self._db.run(read, system=True, write=False)
        return await self._db.run(read, tenant_id=tenant_id, write=False)

    async def counts(self, actor: Principal, tenant_id: uuid.UUID | None) -> dict[str, int]:
        """Deliveries per status of one tenant (or of all, superadmins)."""
        self._require_admin(actor, "read")
        if tenant_id is None and not actor.is_superadmin:
            raise PermissionDenied("Permission denied: name a tenant")

        def read(session: Session) -> dict[str, int]:
            return queue_counts(session, tenant_id)

        if tenant_id is None:
            return await self._db.run(read, system=True, write=False)
        return await self._db.run(read, tenant_id=tenant_id, write=False)

    async def get(
        self, actor: Principal, tenant_id: uuid.UUID | None, delivery_id: uuid.UUID
    ) -> dict[str, Any]:
        self._require_admin(actor, "read")

        def read(session: Session) -> dict[str, Any]:
            return _view(self._row(session, actor, tenant_id, delivery_id))

        return await self._run(read, actor, tenant_id, write=False)

    async def replay(
        self, actor: Principal, tenant_id: uuid.UUID | None, delivery_id: uuid.UUID
    ) -> dict[str, Any]:
        """Queue the same event (same id and body) for delivery now; audited.  A row being
        delivered at this moment is refused (409): its round decides first."""
        self._require_admin(actor, "update")

        def write(session: Session) -> dict[str, Any]:
            row = self._row(session, actor, tenant_id, delivery_id, lock=True)
            if row.lease_token is not None:
                raise Conflict(
                    "The trigger is being delivered right now; replay it when the attempt ends",
                    code="delivery_in_flight",
                )
            now = utcnow()
            previous = row.status
            row.status, row.next_attempt_at, row.replays = PENDING, now, row.replays + 1
            row.rounds = 0
            record_audit(
                session,
                tenant_id=row.tenant_id,
                event_type=WORKFLOW_TRIGGERED,
                entity_type=row.entity_type,
                entity_id=row.entity_id,
                action_origin=ORIGIN_HUMAN,
                reason=f"Replay requested by {actor.email or actor.user_id}",
                metadata={
                    "action_type": REPLAY_ACTION_TYPE,
                    "event_id": str(row.id),
                    "trigger_type": row.trigger_type,
                    "http_status": row.last_http_status,
                    "attempt": row.attempts,
                    "previous_status": previous,
                    "requested_by": str(actor.user_id) if actor.user_id else None,
                },
            )
            return _view(row)

        return await self._run(write, actor, tenant_id, write=True)

    async def _run(
        self, fn: Any, actor: Principal, tenant_id: uuid.UUID | None, *, write: bool
    ) -> dict[str, Any]:
        if tenant_id is None:
            result: dict[str, Any] = await self._db.run(fn, system=True, write=write)
        else:
            result = await self._db.run(fn, tenant_id=tenant_id, write=write)
        return result

    @staticmethod
    def _row(
        session: Session,
        actor: Principal,
        tenant_id: uuid.UUID | None,
        delivery_id: uuid.UUID,
        *,
        lock: bool = False,
    ) -> CareTriggerDelivery:
        row = session.get(CareTriggerDelivery, delivery_id, with_for_update=lock or None)
        visible = row is not None and (
            row.tenant_id == tenant_id if tenant_id is not None else actor.is_superadmin
        )
        if row is None or not visible:
            raise NotFound(
                f"Trigger delivery not found: {delivery_id}", code="trigger_delivery_not_found"
            )
        return row
