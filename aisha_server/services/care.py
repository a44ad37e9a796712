"""C.A.R.E. for the API, the worker and the CLI (guide chapter 13): status and the tenant
pause, states and transitions, escalation detection, custom policy rules, the approval
queue, the audit log, scheduled scans and audit retention.

Who may do what: every user of a tenant reads its C.A.R.E. status; administrators and
managers read states and the audit log; administrators pause, transition, write rules and
decide approvals.  Every request acts as `human` (`policy.classify_origin`); only the
scheduled scans act as `care_autonomous`.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar, cast
from urllib.parse import urlsplit

import orjson
from sqlalchemy import CursorResult, Select, delete, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import Capability
from aisha_server.care import audit
from aisha_server.care.detector import detect_escalation, normalise
from aisha_server.care.policy import ActionType, GateResult, classify_origin
from aisha_server.care.states import (
    ENTITY_TYPES,
    CareState,
    Signal,
    check_transition,
    parse_state,
)
from aisha_server.config import Settings
from aisha_server.db.base import utcnow
from aisha_server.db.models import Account, Contact, Lead, Opportunity, Tenant
from aisha_server.db.models.care import (
    CareApproval,
    CareAuditLog,
    CareEscalationKey,
    CarePolicyRule,
    CareScanCursor,
    CareTenantControl,
)
from aisha_server.db.models.care import CareState as CareStateRow
from aisha_server.db.uow import Database
from aisha_server.errors import Conflict, Invalid, NotFound, PermissionDenied
from aisha_server.services.care_engine import (
    CareContext,
    Outcome,
    Situation,
    current_state,
    handle_escalation,
    load_context,
    propose_transition,
    state_row,
    write_transition,
)
from aisha_server.services.care_scan import TenantScan, scan_tenant
from aisha_server.services.pagination import decode_time_cursor, encode_cursor
from aisha_server.webhooks.delivery import enqueue_care_trigger

log = logging.getLogger("aisha.care")

ENTITY_MODELS: Final[dict[str, type[Any]]] = {
    "lead": Lead,
    "contact": Contact,
    "account": Account,
    "opportunity": Opportunity,
}
APPROVAL_STATUSES: Final = ("pending", "approved", "rejected")
R = TypeVar("R")
MAX_PAGE: Final = 500


def _require_admin(actor: Principal, what: str) -> None:
    if not actor.can(Capability.USER_MANAGEMENT):
        raise PermissionDenied(f"Only administrators {what}", code="forbidden")


def _require_reader(actor: Principal, what: str = "read C.A.R.E. states and audit entries") -> None:
    if not actor.can(Capability.ADVANCED_REPORTS):
        raise PermissionDenied(f"Only administrators and managers {what}", code="forbidden")


def _invalid(field_name: str, message: str) -> Invalid:
    return Invalid(
        f"Validation failed: {field_name}", details=[{"field": field_name, "message": message}]
    )


def _newest_first(
    session: Session,
    query: Select[R],
    stamp: InstrumentedAttribute[datetime | None],
    row_id: InstrumentedAttribute[uuid.UUID],
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    view: Callable[[R], dict[str, Any]],
) -> KeysetPage:
    """One keyset page, newest first on (stamp, id); `after` is the decoded cursor."""
    if after is not None:
        query = query.where(or_(stamp < after[0], (stamp == after[0]) & (row_id < after[1])))
    rows = session.scalars(query.order_by(stamp.desc(), row_id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        value = getattr(last, stamp.key)
        if value is not None:
            next_cursor = encode_cursor([value.isoformat(), getattr(last, row_id.key)])
    return KeysetPage([view(r) for r in page], limit, next_cursor)


def audit_view(row: CareAuditLog) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "tenant_id": str(row.tenant_id),
        "event_type": row.event_type,
        "entity_type": row.entity_type,
        "entity_id": str(row.entity_id),
        "action_origin": row.action_origin,
        "reason": row.reason,
        "metadata": row.metadata_ or {},
        "created_at": row.created_at,
    }


def state_view(row: CareStateRow) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "tenant_id": str(row.tenant_id),
        "entity_type": row.entity_type,
        "entity_id": str(row.entity_id),
        "current_state": row.current_state,
        "previous_state": row.previous_state,
        "transitioned_at": row.transitioned_at,
        "transition_reason": row.transition_reason,
        "metadata": row.metadata_ or {},
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def rule_view(row: CarePolicyRule) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "tenant_id": str(row.tenant_id),
        "action_type": row.action_type,
        "states": list(row.states or []),
        "action_origin": row.action_origin,
        "entity_type": row.entity_type,
        "result": row.result,
        "reason": row.reason,
        "priority": row.priority,
        "enabled": row.enabled,
        "created_by": str(row.created_by) if row.created_by else None,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def approval_view(row: CareApproval) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "tenant_id": str(row.tenant_id),
        "action_type": row.action_type,
        "entity_type": row.entity_type,
        "entity_id": str(row.entity_id),
        "action_origin": row.action_origin,
        "reason": row.reason,
        "payload": row.payload or {},
        "status": row.status,
        "decided_by": str(row.decided_by) if row.decided_by else None,
        "decided_at": row.decided_at,
        "decision_note": row.decision_note,
        "created_at": row.created_at,
    }


@dataclass(frozen=True, slots=True)
class AuditFilters:
    event_type: str | None = None
    entity_type: str | None = None
    entity_id: uuid.UUID | None = None
    action_origin: str | None = None
    trigger_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewRule:
    action_type: str
    result: str
    reason: str
    states: list[str] = field(default_factory=list)
    action_origin: str | None = None
    entity_type: str | None = None
    priority: int = 100
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class KeysetPage:
    items: list[dict[str, Any]]
    limit: int
    next_cursor: str | None


@dataclass(slots=True)
class ScanReport:
    started_at: datetime
    finished_at: datetime | None = None
    seconds: float = 0.0
    tenants: list[TenantScan] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": round(self.seconds, 3),
            "tenants": [t.as_dict() for t in self.tenants],
            "escalations": sum(sum(t.escalations.values()) for t in self.tenants),
            "errors": list(self.errors),
        }


class CareService:
    def __init__(self, settings: Settings, db: Database) -> None:
        self._settings = settings
        self._db = db
        self.last_scan: ScanReport | None = None

    # -- status and pause --------------------------------------------------------------
    def _effective(self) -> dict[str, Any]:
        s = self._settings
        return {
            "enabled": s.CARE_ENABLED,
            "policy_mode": s.CARE_POLICY_MODE.value,
            "thresholds": {
                "sentiment": s.CARE_SENTIMENT_THRESHOLD,
                "lead_stagnant_days": s.CARE_LEAD_STAGNANT_DAYS,
                "deal_decay_days": s.CARE_DEAL_DECAY_DAYS,
                "deal_decay_min_amount": s.CARE_DEAL_DECAY_MIN_AMOUNT,
                "activity_overdue_days": s.CARE_ACTIVITY_OVERDUE_THRESHOLD,
                "opportunity_hot_days": s.CARE_OPPORTUNITY_HOT_DAYS,
                "hot_probability": s.CARE_HOT_PROBABILITY,
            },
            "workflow_triggers": {
                "enabled": s.CARE_WORKFLOW_TRIGGERS_ENABLED,
                "webhook_url_configured": bool(s.CARE_WORKFLOW_ESCALATION_WEBHOOK_URL),
                "webhook_host": _host(s.CARE_WORKFLOW_ESCALATION_WEBHOOK_URL),
                "secret_configured": bool(s.CARE_WORKFLOW_WEBHOOK_SECRET),
                "timeout_ms": s.CARE_WORKFLOW_WEBHOOK_TIMEOUT_MS,
                "max_retries": s.CARE_WORKFLOW_WEBHOOK_MAX_RETRIES,
            },
            "audit_log_retention_days": s.CARE_AUDIT_LOG_RETENTION_DAYS,
        }

    async def status(self, actor: Principal, tenant_id: uuid.UUID) -> dict[str, Any]:
        """The effective C.A.R.E. state for one tenant (never a secret)."""

        def read(session: Session) -> dict[str, Any]:
            control = session.get(CareTenantControl, tenant_id)
            last = session.scalar(
                select(func.max(CareScanCursor.scanned_at)).where(
                    CareScanCursor.tenant_id == tenant_id
                )
            )
            pending = session.scalar(
                select(func.count())
                .select_from(CareApproval)
                .where(CareApproval.tenant_id == tenant_id, CareApproval.status == "pending")
            )
            return {
                "paused": bool(control and control.paused),
                "paused_at": control.paused_at if control else None,
                "paused_by": str(control.paused_by) if control and control.paused_by else None,
                "pause_reason": control.pause_reason if control else None,
                "last_scan_at": last,
                "pending_approvals": int(pending or 0),
            }

        tenant = await self._db.run(read, tenant_id=tenant_id, write=False)
        effective = self._effective()
        acting = effective["enabled"] and not tenant["paused"]
        last = self.last_scan
        return {
            **effective,
            "tenant_id": str(tenant_id),
            "tenant_paused": tenant["paused"],
            "paused_at": tenant["paused_at"],
            "paused_by": tenant["paused_by"],
            "pause_reason": tenant["pause_reason"],
            "acting": acting,
            "disposition": audit.ACTION_CANDIDATE if acting else audit.ACTION_SKIPPED,
            "pending_approvals": tenant["pending_approvals"],
            "worker": {
                "enabled": self._settings.CARE_WORKER_ENABLED,
                "interval_seconds": self._settings.CARE_SCAN_INTERVAL_SECONDS,
                "batch_size": self._settings.CARE_SCAN_BATCH_SIZE,
                "last_run_at": tenant["last_scan_at"],
                "this_instance_last_run": last.as_dict() if last else None,
            },
        }

    async def set_pause(
        self, actor: Principal, tenant_id: uuid.UUID, *, paused: bool, reason: str | None
    ) -> dict[str, Any]:
        """Pauses or resumes C.A.R.E. actions of one tenant at once; audited."""
        _require_admin(actor, "pause or resume C.A.R.E.")
        origin = classify_origin(actor)

        def write(session: Session) -> None:
            control = session.get(CareTenantControl, tenant_id)
            if control is None:
                control = CareTenantControl(tenant_id=tenant_id)
                session.add(control)
            was = bool(control.paused)
            control.paused = paused
            control.paused_at = utcnow() if paused else None
            control.paused_by = actor.user_id if paused else None
            control.pause_reason = reason if paused else None
            control.updated_at = utcnow()
            audit.record_audit(
                session,
                tenant_id=tenant_id,
                event_type=audit.ACTION_ALLOWED,
                entity_type="tenant",
                entity_id=tenant_id,
                action_origin=origin,
                reason=reason or ("C.A.R.E. paused" if paused else "C.A.R.E. resumed"),
                metadata={
                    "action_type": "tenant_pause" if paused else "tenant_resume",
                    "action_origin": origin,
                    "policy_gate_result": GateResult.ALLOWED.value,
                    "paused": paused,
                    "was_paused": was,
                    "user_id": str(actor.user_id) if actor.user_id else None,
                },
            )

        await self._db.run(write, tenant_id=tenant_id)
        return await self.status(actor, tenant_id)

    # -- states ------------------------------------------------------------------------
    async def list_states(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        *,
        entity_type: str | None,
        state: str | None,
        limit: int,
        cursor: str | None,
    ) -> KeysetPage:
        _require_reader(actor)
        if state is not None:
            try:
                state = parse_state(state).value
            except ValueError as exc:
                raise _invalid("state", str(exc)) from None
        after = decode_time_cursor(cursor) if cursor else None

        def read(session: Session) -> KeysetPage:
            query = select(CareStateRow).where(CareStateRow.tenant_id == tenant_id)
            if entity_type:
                query = query.where(CareStateRow.entity_type == entity_type)
            if state:
                query = query.where(CareStateRow.current_state == state)
            return _newest_first(
                session, query, CareStateRow.transitioned_at, CareStateRow.id, after, limit,
                state_view,
            )  # fmt: skip

        return await self._db.run(read, tenant_id=tenant_id, write=False)

    async def get_state(
        self, actor: Principal, tenant_id: uuid.UUID, entity_type: str, entity_id: uuid.UUID
    ) -> dict[str, Any]:
        _require_reader(actor)

        def read(session: Session) -> dict[str, Any]:
            self._entity_exists(session, tenant_id, entity_type, entity_id)
            row = state_row(session, tenant_id, entity_type, entity_id)
            if row is None:  # never transitioned: the initial state
                return {
                    "entity_type": entity_type,
                    "entity_id": str(entity_id),
                    "current_state": CareState.COLD.value,
                    "previous_state": None,
                    "transitioned_at": None,
                    "transition_reason": None,
                    "metadata": {},
                }
            return state_view(row)

        return await self._db.run(read, tenant_id=tenant_id, write=False)

    @staticmethod
    def _entity_exists(
        session: Session, tenant_id: uuid.UUID, entity_type: str, entity_id: uuid.UUID
    ) -> None:
        model = ENTITY_MODELS.get(entity_type)
        if model is None:
            raise _invalid("entity_type", f"must be one of {list(ENTITY_TYPES)}")
        found = session.scalar(
            select(model.id).where(
                model.id == entity_id, model.tenant_id == tenant_id, model.deleted_at.is_(None)
            )
        )
        if found is None:
            raise NotFound(f"{entity_type} not found: {entity_id}", code="entity_not_found")

    async def transition(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        *,
        entity_type: str,
        entity_id: uuid.UUID,
        to_state: str,
        signal: str | None,
        reason: str | None,
    ) -> dict[str, Any]:
        """A transition asked for by an administrator: checked against the diagram and the
        gate like any other; refused ones are audited and answered with 409."""
        _require_admin(actor, "change C.A.R.E. states")
        try:
            target = parse_state(to_state)
        except ValueError as exc:
            raise _invalid("to_state", str(exc)) from None
        try:
            named = Signal(signal) if signal is not None else None
        except ValueError:
            raise _invalid("signal", f"one of {[s.value for s in Signal]}") from None
        origin = classify_origin(actor)

        def write(session: Session) -> Outcome:
            self._entity_exists(session, tenant_id, entity_type, entity_id)
            ctx = load_context(session, self._settings, tenant_id)
            outcome = Outcome()
            propose_transition(
                session,
                ctx,
                tenant_id=tenant_id,
                entity_type=entity_type,
                entity_id=entity_id,
                to_state=target,
                signal=named,
                origin=origin,
                reason=reason,
                metadata={"requested_by": str(actor.user_id) if actor.user_id else None},
                outcome=outcome,
            )
            return outcome

        outcome = await self._db.run(write, tenant_id=tenant_id)
        if outcome.transition is None:
            why = outcome.decisions[-1]["reason"] if outcome.decisions else "refused"
            raise Conflict(
                f"Transition refused: {why}", code="care_transition_refused",
                details=outcome.as_dict(),
            )  # fmt: skip
        return outcome.as_dict()

    # -- detection ---------------------------------------------------------------------
    async def detect(
        self,
        actor: Principal | None,
        tenant_id: uuid.UUID,
        *,
        entity_type: str,
        entity_id: uuid.UUID,
        text: Any,
        sentiment: Any,
    ) -> dict[str, Any]:
        """Escalation detection on a communication (call transcript, email, ...); when it
        escalates, the C.A.R.E. pipeline runs.  The same text and sentiment for the same
        record is raised once.  Administrators and managers (and integrations' API keys)."""
        if actor is not None:
            _require_reader(actor, "run C.A.R.E. detection")
        escalation = detect_escalation(
            text, sentiment, threshold=self._settings.CARE_SENTIMENT_THRESHOLD
        )
        origin = classify_origin(actor)
        fingerprint = hashlib.sha256(
            orjson.dumps([normalise(text) if isinstance(text, str) else repr(text), sentiment])
        ).hexdigest()[:32]

        def write(session: Session) -> Outcome:
            self._entity_exists(session, tenant_id, entity_type, entity_id)
            if not escalation.is_escalation:
                return Outcome()
            ctx = load_context(session, self._settings, tenant_id)
            situation = Situation(
                escalation=escalation,
                signal_entity_type=entity_type,
                signal_entity_id=entity_id,
                entity_type=entity_type,
                entity_id=entity_id,
                origin=origin,
                dedupe_key=f"{escalation.trigger_type}:{entity_id}:{fingerprint}",
                meta={"sentiment": escalation.sentiment, "confidence": escalation.confidence},
            )
            return handle_escalation(session, ctx, tenant_id=tenant_id, situation=situation)

        outcome = await self._db.run(write, tenant_id=tenant_id)
        return {**escalation.as_dict(), **outcome.as_dict()}

    def communication_in(
        self, session: Session, tenant_id: uuid.UUID, entity: str, record: Mapping[str, Any]
    ) -> None:
        """An activity or note was written (the records service calls this in its
        transaction): its text goes through escalation detection, and an escalation about
        the lead, contact, account or opportunity it belongs to runs the C.A.R.E. pipeline
        (audited; acting only when C.A.R.E. may).  The same text on the same record is
        raised once.  A failure here is logged and never undoes the operator's write."""
        text = " ".join(
            str(record[f]) for f in ("subject", "title", "description", "content") if record.get(f)
        )
        anchor_type = str(record.get("related_type") or "").lower().removesuffix("s")
        anchor_type = "opportunity" if anchor_type == "opportunitie" else anchor_type
        anchor_id = record.get("related_id")
        if not text or anchor_type not in ENTITY_MODELS or anchor_id is None:
            return
        escalation = detect_escalation(
            text, None, threshold=self._settings.CARE_SENTIMENT_THRESHOLD
        )
        if not escalation.is_escalation:
            return
        signal_type = "activity" if entity == "activities" else "note"
        fingerprint = hashlib.sha256(normalise(text).encode()).hexdigest()[:32]
        try:
            with session.begin_nested():
                model = ENTITY_MODELS[anchor_type]
                anchor = uuid.UUID(str(anchor_id))
                alive = session.scalar(
                    select(model.id).where(
                        model.id == anchor, model.tenant_id == tenant_id,
                        model.deleted_at.is_(None),
                    )
                )  # fmt: skip
                if alive is None:
                    return
                situation = Situation(
                    escalation=escalation,
                    signal_entity_type=signal_type,
                    signal_entity_id=uuid.UUID(str(record["id"])),
                    entity_type=anchor_type,
                    entity_id=anchor,
                    origin=classify_origin(None),  # C.A.R.E. acts, not the operator
                    dedupe_key=f"{escalation.trigger_type}:{record['id']}:{fingerprint}",
                    meta={"confidence": escalation.confidence, "source": signal_type},
                )
                handle_escalation(
                    session, load_context(session, self._settings, tenant_id),
                    tenant_id=tenant_id, situation=situation,
                )  # fmt: skip
        except Exception:  # the operator's activity or note is written regardless
            log.exception("C.A.R.E. detection failed for %s %s", signal_type, record.get("id"))

    # -- rules -------------------------------------------------------------------------
    async def list_rules(self, actor: Principal, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
        _require_reader(actor)

        def read(session: Session) -> list[dict[str, Any]]:
            rows = session.scalars(
                select(CarePolicyRule)
                .where(CarePolicyRule.tenant_id == tenant_id)
                .order_by(CarePolicyRule.priority, CarePolicyRule.created_at, CarePolicyRule.id)
            )
            return [rule_view(r) for r in rows]

        return await self._db.run(read, tenant_id=tenant_id, write=False)

    @staticmethod
    def _check_rule(new: NewRule) -> NewRule:
        actions = {a.value for a in ActionType} | {"*"}
        if new.action_type not in actions:
            raise _invalid("action_type", f"one of {sorted(actions)}")
        if new.result not in {r.value for r in GateResult}:
            raise _invalid("result", f"one of {[r.value for r in GateResult]}")
        states: list[str] = []
        for i, value in enumerate(new.states):
            try:
                states.append(parse_state(value).value)
            except ValueError as exc:
                raise _invalid(f"states.{i}", str(exc)) from None
        if new.action_origin not in (None, audit.ORIGIN_HUMAN, audit.ORIGIN_AUTONOMOUS):
            raise _invalid("action_origin", "human, care_autonomous or null (any)")
        if new.entity_type is not None and new.entity_type not in ENTITY_TYPES:
            raise _invalid("entity_type", f"one of {list(ENTITY_TYPES)} or null (any)")
        if not new.reason.strip():
            raise _invalid("reason", "must not be empty")
        return NewRule(
            new.action_type, new.result, new.reason.strip(), sorted(set(states)),
            new.action_origin, new.entity_type, new.priority, new.enabled,
        )  # fmt: skip

    async def create_rule(
        self, actor: Principal, tenant_id: uuid.UUID, new: NewRule
    ) -> dict[str, Any]:
        _require_admin(actor, "write C.A.R.E. policy rules")
        rule = self._check_rule(new)

        def write(session: Session) -> dict[str, Any]:
            row = CarePolicyRule(
                tenant_id=tenant_id,
                action_type=rule.action_type,
                states=rule.states,
                action_origin=rule.action_origin,
                entity_type=rule.entity_type,
                result=rule.result,
                reason=rule.reason,
                priority=rule.priority,
                enabled=rule.enabled,
                created_by=actor.user_id,
            )
            session.add(row)
            session.flush()
            return rule_view(row)

        return await self._db.run(write, tenant_id=tenant_id)

    async def delete_rule(
        self, actor: Principal, tenant_id: uuid.UUID, rule_id: uuid.UUID
    ) -> dict[str, Any]:
        _require_admin(actor, "write C.A.R.E. policy rules")

        def write(session: Session) -> dict[str, Any]:
            row = session.scalar(
                select(CarePolicyRule).where(
                    CarePolicyRule.id == rule_id, CarePolicyRule.tenant_id == tenant_id
                )
            )
            if row is None:
                raise NotFound(f"Policy rule not found: {rule_id}", code="care_rule_not_found")
            view = rule_view(row)
            session.delete(row)
            return view

        return await self._db.run(write, tenant_id=tenant_id)

    # -- approvals ---------------------------------------------------------------------
    async def list_approvals(
        self, actor: Principal, tenant_id: uuid.UUID, *, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        _require_reader(actor)
        if status is not None and status not in APPROVAL_STATUSES:
            raise _invalid("status", f"one of {list(APPROVAL_STATUSES)}")

        def read(session: Session) -> list[dict[str, Any]]:
            query = select(CareApproval).where(CareApproval.tenant_id == tenant_id)
            if status:
                query = query.where(CareApproval.status == status)
            rows = session.scalars(
                query.order_by(CareApproval.created_at.desc(), CareApproval.id.desc()).limit(limit)
            )
            return [approval_view(r) for r in rows]

        return await self._db.run(read, tenant_id=tenant_id, write=False)

    async def decide(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        approval_id: uuid.UUID,
        *,
        approve: bool,
        note: str | None,
    ) -> dict[str, Any]:
        """Approves (the deferred action runs now) or rejects a queued action; audited."""
        _require_admin(actor, "decide C.A.R.E. approvals")
        decider = classify_origin(actor)

        def write(session: Session) -> dict[str, Any]:
            row = session.scalar(
                select(CareApproval).where(
                    CareApproval.id == approval_id, CareApproval.tenant_id == tenant_id
                )
            )
            if row is None:
                raise NotFound(f"Approval not found: {approval_id}", code="care_approval_not_found")
            if row.status != "pending":
                raise Conflict(f"Approval already {row.status}", code="care_approval_decided")
            ctx = load_context(session, self._settings, tenant_id)
            if approve and not ctx.acting:
                raise Conflict(
                    "C.A.R.E. is disabled or paused for this tenant; approve once it acts again",
                    code="care_not_acting",
                )
            result: dict[str, Any] = {}
            if approve:
                result = self._execute(session, ctx, row)
            row.status = "approved" if approve else "rejected"
            row.decided_by = actor.user_id
            row.decided_at = utcnow()
            row.decision_note = note
            audit.record_audit(
                session,
                tenant_id=tenant_id,
                event_type=audit.ACTION_ALLOWED if approve else audit.ACTION_BLOCKED,
                entity_type=row.entity_type,
                entity_id=row.entity_id,
                action_origin=row.action_origin,
                reason=note or ("approved by an administrator" if approve else "rejected"),
                metadata={
                    "action_type": row.action_type,
                    "action_origin": row.action_origin,
                    "policy_gate_result": (
                        GateResult.ALLOWED.value if approve else GateResult.BLOCKED.value
                    ),
                    "approval_id": str(row.id),
                    "decided_by": str(actor.user_id) if actor.user_id else None,
                    "decided_as": decider,
                    **result,
                },
            )
            return {**approval_view(row), "result": result}

        return await self._db.run(write, tenant_id=tenant_id)

    def _execute(self, session: Session, ctx: CareContext, row: CareApproval) -> dict[str, Any]:
        payload = row.payload or {}
        kind = payload.get("kind")
        if kind == "trigger_workflow":
            if not ctx.triggers_enabled:
                raise Conflict(
                    "Workflow triggers are disabled (CARE_WORKFLOW_TRIGGERS_ENABLED=false)",
                    code="care_triggers_disabled",
                )
            trigger = {**payload["trigger"], "policy_gate_result": GateResult.ALLOWED.value}
            event_id = enqueue_care_trigger(session, tenant_id=row.tenant_id, payload=trigger)
            return {"event_id": str(event_id)}
        if kind == "update_state":
            entity_id = uuid.UUID(payload["entity_id"])
            state = state_row(session, row.tenant_id, row.entity_type, entity_id)
            target = parse_state(payload["to_state"])
            signal = Signal(payload["signal"])
            check = check_transition(current_state(state), target, signal)
            if not check.allowed:
                raise Conflict(f"Transition no longer possible: {check.reason}")
            transition = write_transition(
                session,
                tenant_id=row.tenant_id,
                entity_type=row.entity_type,
                entity_id=entity_id,
                row=state,
                to_state=target,
                signal=signal,
                origin=row.action_origin,
                reason=str(payload.get("reason") or "approved"),
                metadata={**(payload.get("metadata") or {}), "approval_id": str(row.id)},
            )
            return {"transition": orjson.loads(orjson.dumps(transition, default=str))}
        raise Conflict(f"Approval of unknown kind {kind!r} cannot run", code="care_approval_kind")

    # -- audit -------------------------------------------------------------------------
    async def list_audit(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        filters: AuditFilters,
        *,
        limit: int,
        cursor: str | None,
    ) -> KeysetPage:
        """Newest first, keyset pages on (created_at, id)."""
        _require_reader(actor)
        if filters.event_type is not None and filters.event_type not in audit.EVENT_TYPES:
            raise _invalid("event_type", f"one of {list(audit.EVENT_TYPES)}")
        after = decode_time_cursor(cursor) if cursor else None

        def read(session: Session) -> KeysetPage:
            t = CareAuditLog
            query = select(t).where(t.tenant_id == tenant_id)
            if filters.event_type:
                query = query.where(t.event_type == filters.event_type)
            if filters.entity_type:
                query = query.where(t.entity_type == filters.entity_type)
            if filters.entity_id:
                query = query.where(t.entity_id == filters.entity_id)
            if filters.action_origin:
                query = query.where(t.action_origin == filters.action_origin)
            if filters.trigger_type:
                query = query.where(t.metadata_["trigger_type"].as_string() == filters.trigger_type)
            if filters.since:
                query = query.where(t.created_at >= filters.since)
            if filters.until:
                query = query.where(t.created_at < filters.until)
            return _newest_first(session, query, t.created_at, t.id, after, limit, audit_view)

        return await self._db.run(read, tenant_id=tenant_id, write=False)

    async def prune(self, now: datetime | None = None) -> int:
        """Deletes audit entries (and escalation keys) older than the retention (13.7)."""
        cutoff = (now or utcnow()) - timedelta(days=self._settings.CARE_AUDIT_LOG_RETENTION_DAYS)

        def write(session: Session) -> int:
            result = session.execute(delete(CareAuditLog).where(CareAuditLog.created_at < cutoff))
            removed = cast(CursorResult[Any], result).rowcount
            session.execute(delete(CareEscalationKey).where(CareEscalationKey.created_at < cutoff))
            return int(removed or 0)

        return await self._db.run(write, system=True)

    # -- scans -------------------------------------------------------------------------
    async def scan(
        self,
        *,
        tenant_id: uuid.UUID | None = None,
        now: datetime | None = None,
        rescan: bool = False,
    ) -> ScanReport:
        """One scheduled scan of every active tenant (or one): each tenant in its own
        transaction, so one tenant's failure does not undo another's.  `rescan` forgets the
        cursors first (rows written with old timestamps behind them are read again; the
        dedupe keys still keep situations already raised from being raised twice)."""
        started = time.perf_counter()
        report = ScanReport(started_at=utcnow())

        def tenants(session: Session) -> list[uuid.UUID]:
            query = select(Tenant.id).where(Tenant.status == "active")
            if tenant_id is not None:
                query = select(Tenant.id).where(Tenant.id == tenant_id)
            return list(session.scalars(query.order_by(Tenant.id)))

        ids = await self._db.run(tenants, system=True, write=False)
        if tenant_id is not None and not ids:
            raise NotFound(f"Tenant not found: {tenant_id}", code="tenant_not_found")
        dialect = self._db.dialect
        for tid in ids:

            def write(session: Session, tid: uuid.UUID = tid) -> TenantScan:
                if rescan:
                    session.execute(delete(CareScanCursor).where(CareScanCursor.tenant_id == tid))
                ctx = load_context(session, self._settings, tid)
                return scan_tenant(session, self._settings, ctx, tid, now=now, dialect=dialect)

            try:
                report.tenants.append(await self._db.run(write, tenant_id=tid))
            except Exception as exc:  # one tenant's failure must not stop the others
                log.exception("C.A.R.E. scan of tenant %s failed", tid)
                report.errors.append(f"{tid}: {type(exc).__name__}: {exc}")
        report.finished_at = utcnow()
        report.seconds = time.perf_counter() - started
        self.last_scan = report
        return report


def _host(url: str | None) -> str | None:
    return urlsplit(url).hostname if url else None
