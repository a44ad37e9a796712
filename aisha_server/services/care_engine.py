"""The transactional core of C.A.R.E.: what happens, inside one transaction, when an
escalation is detected or a state change is proposed (guide 13.1 architecture):

    detector -> audit ESCALATION_DETECTED -> kill switch -> policy gate -> state engine
             -> workflow trigger (outbox)

Every step writes its `care_audit_log` row in the caller's transaction.  The kill switch
(`CARE_ENABLED`, and the tenant's pause) lets detection and its audit through with
`disposition=action_skipped` and stops everything after it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from aisha_server.care import audit
from aisha_server.care.detector import Escalation
from aisha_server.care.policy import (
    ActionRequest,
    ActionType,
    Decision,
    GateResult,
    Rule,
    evaluate_policy,
)
from aisha_server.care.states import (
    INITIAL_STATE,
    CareState,
    Signal,
    check_transition,
    parse_state,
    target_for,
)
from aisha_server.config import CarePolicyMode, Settings
from aisha_server.db.base import utcnow
from aisha_server.db.models.care import (
    CareApproval,
    CareEscalationKey,
    CarePolicyRule,
    CareTenantControl,
)
from aisha_server.db.models.care import CareState as CareStateRow
from aisha_server.webhooks.delivery import enqueue_care_trigger

ESCALATION_EVENT: Final = "care.escalation_detected"
PLURALS: Final = {
    "lead": "leads",
    "contact": "contacts",
    "account": "accounts",
    "opportunity": "opportunities",
    "activity": "activities",
}


@dataclass(frozen=True, slots=True)
class CareContext:
    """The switches that apply to one tenant in one transaction."""

    care_enabled: bool  # CARE_ENABLED
    paused: bool  # the tenant's pause
    mode: CarePolicyMode
    triggers_enabled: bool
    custom_rules: tuple[Rule, ...] = ()

    @property
    def acting(self) -> bool:
        """May C.A.R.E. act (transitions, triggers) at all?"""
        return self.care_enabled and not self.paused

    @property
    def disposition(self) -> str:
        return audit.ACTION_CANDIDATE if self.acting else audit.ACTION_SKIPPED

    def switches(self) -> dict[str, Any]:
        return {"care_enabled": self.care_enabled, "tenant_paused": self.paused}


def rule_from_row(row: CarePolicyRule) -> Rule:
    states = frozenset(parse_state(s) for s in row.states) if row.states else frozenset(CareState)
    return Rule(
        action_type=row.action_type,
        states=states,
        origin=row.action_origin,
        result=GateResult(row.result),
        reason=row.reason,
        entity_type=row.entity_type,
        rule_id=str(row.id),
    )


def load_context(session: Session, settings: Settings, tenant_id: uuid.UUID) -> CareContext:
    control = session.get(CareTenantControl, tenant_id)
    rules = session.scalars(
        select(CarePolicyRule)
        .where(CarePolicyRule.tenant_id == tenant_id, CarePolicyRule.enabled.is_(True))
        .order_by(CarePolicyRule.priority, CarePolicyRule.created_at, CarePolicyRule.id)
    )
    return CareContext(
        care_enabled=settings.CARE_ENABLED,
        paused=bool(control is not None and control.paused),
        mode=settings.CARE_POLICY_MODE,
        triggers_enabled=settings.CARE_WORKFLOW_TRIGGERS_ENABLED,
        custom_rules=tuple(rule_from_row(r) for r in rules),
    )


def state_row(
    session: Session, tenant_id: uuid.UUID, entity_type: str, entity_id: uuid.UUID
) -> CareStateRow | None:
    return session.scalar(
        select(CareStateRow).where(
            CareStateRow.tenant_id == tenant_id,
            CareStateRow.entity_type == entity_type,
            CareStateRow.entity_id == entity_id,
        )
    )


def current_state(row: CareStateRow | None) -> CareState:
    return parse_state(row.current_state) if row is not None else INITIAL_STATE


@dataclass(slots=True)
class Prefetched:
    """What a batch of escalations looked up in two queries instead of two per escalation:
    the dedupe keys already raised and the state rows of the batch's records (a record
    missing from `states` has none)."""

    raised: set[str] = field(default_factory=set)
    states: dict[tuple[str, uuid.UUID], CareStateRow] = field(default_factory=dict)


def prefetch(
    session: Session,
    tenant_id: uuid.UUID,
    *,
    keys: list[str],
    entity_type: str,
    entity_ids: list[uuid.UUID],
) -> Prefetched:
    raised = set(
        session.scalars(
            select(CareEscalationKey.dedupe_key).where(
                CareEscalationKey.tenant_id == tenant_id, CareEscalationKey.dedupe_key.in_(keys)
            )
        )
    )
    rows = session.scalars(
        select(CareStateRow).where(
            CareStateRow.tenant_id == tenant_id,
            CareStateRow.entity_type == entity_type,
            CareStateRow.entity_id.in_(entity_ids),
        )
    )
    return Prefetched(raised, {(r.entity_type, r.entity_id): r for r in rows})


@dataclass(slots=True)
class Outcome:
    """What one pipeline run did (returned to the API, counted by scans)."""

    escalated: bool = False
    duplicate: bool = False
    skipped: bool = False  # kill switch or pause
    transition: dict[str, Any] | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    approval_ids: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "escalated": self.escalated,
            "duplicate": self.duplicate,
            "action_skipped": self.skipped,
            "transition": self.transition,
            "decisions": self.decisions,
            "approval_ids": self.approval_ids,
            "workflow_event_ids": self.event_ids,
        }


def gate(
    session: Session,
    ctx: CareContext,
    *,
    tenant_id: uuid.UUID,
    action: ActionRequest,
    entity_id: uuid.UUID,
    payload: dict[str, Any],
    metadata: dict[str, Any],
    outcome: Outcome,
) -> Decision:
    """Asks the policy gate, audits the answer, queues `defer` for approval."""
    decision = evaluate_policy(action, mode=ctx.mode, custom_rules=ctx.custom_rules)
    details = {
        **metadata,
        "action_type": action.action_type,
        "action_origin": action.action_origin,
        "policy_gate_result": decision.result.value,
        "policy_source": decision.source,
        "policy_rule_id": decision.rule_id,
        "policy_mode": ctx.mode.value,
        "care_state": action.current_state.value,
    }
    if decision.flags:
        details["policy_flags"] = list(decision.flags)
    if decision.result is GateResult.DEFER:
        approval = CareApproval(
            tenant_id=tenant_id,
            action_type=action.action_type,
            entity_type=action.entity_type,
            entity_id=entity_id,
            action_origin=action.action_origin,
            reason=decision.reason,
            payload=payload,
        )
        session.add(approval)
        session.flush()
        details["approval_id"] = str(approval.id)
        outcome.approval_ids.append(str(approval.id))
    audit.record_audit(
        session,
        tenant_id=tenant_id,
        event_type=audit.ACTION_ALLOWED if decision.proceeds else audit.ACTION_BLOCKED,
        entity_type=action.entity_type,
        entity_id=entity_id,
        action_origin=action.action_origin,
        reason=decision.reason,
        metadata=details,
    )
    outcome.decisions.append({"action_type": action.action_type, **decision.as_dict()})
    return decision


def write_transition(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    entity_type: str,
    entity_id: uuid.UUID,
    row: CareStateRow | None,
    to_state: CareState,
    signal: Signal,
    origin: str,
    reason: str,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """Stores a checked transition in `care_states` and audits `STATE_TRANSITION`."""
    from_state = current_state(row)
    now = utcnow()
    details = {**metadata, "from_state": from_state.value, "to_state": to_state.value}
    details["signal"] = signal.value
    if row is None:
        row = CareStateRow(
            tenant_id=tenant_id,
            entity_type=entity_type,
            entity_id=entity_id,
            current_state=to_state.value,
            previous_state=from_state.value,
            transitioned_at=now,
            transition_reason=reason,
            metadata_=details,
        )
        session.add(row)
    else:
        row.previous_state = from_state.value
        row.current_state = to_state.value
        row.transitioned_at = now
        row.transition_reason = reason
        row.metadata_ = details
        row.updated_at = now
    audit.record_audit(
        session,
        tenant_id=tenant_id,
        event_type=audit.STATE_TRANSITION,
        entity_type=entity_type,
        entity_id=entity_id,
        action_origin=origin,
        reason=reason,
        metadata={**details, "action_origin": origin},
    )
    return {
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "previous_state": from_state.value,
        "current_state": to_state.value,
        "signal": signal.value,
        "transition_reason": reason,
        "transitioned_at": now,
    }


def propose_transition(
    session: Session,
    ctx: CareContext,
    *,
    tenant_id: uuid.UUID,
    entity_type: str,
    entity_id: uuid.UUID,
    to_state: CareState,
    signal: Signal | None,
    origin: str,
    reason: str | None,
    metadata: dict[str, Any],
    outcome: Outcome,
    known: Prefetched | None = None,
) -> None:
    """Checks a transition against the diagram and the gate; applies it or audits why not."""
    row = (
        known.states.get((entity_type, entity_id))
        if known is not None
        else state_row(session, tenant_id, entity_type, entity_id)
    )
    from_state = current_state(row)
    check = check_transition(from_state, to_state, signal)
    base = {**metadata, "from_state": from_state.value, "to_state": to_state.value}
    if signal is not None:
        base["signal"] = signal.value
    refusal: tuple[str, dict[str, Any]] | None = None
    if not ctx.acting:
        refusal = (
            "C.A.R.E. is disabled or paused: no state transitions",
            {**ctx.switches(), "disposition": audit.ACTION_SKIPPED},
        )
        outcome.skipped = True
    elif not check.allowed or check.signal is None:
        refusal = (f"Refused transition: {check.reason}", {"refused_transition": True})
    if refusal is not None:
        why, extra = refusal
        audit.record_audit(
            session,
            tenant_id=tenant_id,
            event_type=audit.ACTION_BLOCKED,
            entity_type=entity_type,
            entity_id=entity_id,
            action_origin=origin,
            reason=why,
            metadata={
                **base,
                **extra,
                "action_type": ActionType.UPDATE_STATE.value,
                "action_origin": origin,
                "policy_gate_result": GateResult.BLOCKED.value,
            },
        )
        outcome.decisions.append(
            {"action_type": "update_state", "policy_gate_result": "blocked", "reason": why, **extra}
        )
        return
    assert check.signal is not None  # allowed checks name their edge's signal
    action = ActionRequest(ActionType.UPDATE_STATE.value, origin, from_state, entity_type)
    text_reason = reason or f"{check.signal.value}: {from_state} -> {to_state}"
    payload = {
        "kind": "update_state",
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "to_state": to_state.value,
        "signal": check.signal.value,
        "reason": text_reason,
        "metadata": metadata,
    }
    decision = gate(
        session,
        ctx,
        tenant_id=tenant_id,
        action=action,
        entity_id=entity_id,
        payload=payload,
        metadata=base,
        outcome=outcome,
    )
    if decision.proceeds:
        outcome.transition = write_transition(
            session,
            tenant_id=tenant_id,
            entity_type=entity_type,
            entity_id=entity_id,
            row=row,
            to_state=to_state,
            signal=check.signal,
            origin=origin,
            reason=text_reason,
            metadata=metadata,
        )


@dataclass(frozen=True, slots=True)
class Situation:
    """An escalation with what it is about: the record that fired it (`signal_*`) and the
    relationship it belongs to (`entity_*`, the payload's anchor)."""

    escalation: Escalation
    signal_entity_type: str
    signal_entity_id: uuid.UUID
    entity_type: str
    entity_id: uuid.UUID
    origin: str
    dedupe_key: str | None
    state_signal: Signal | None = None  # the transition this escalation drives, if any
    meta: dict[str, Any] = field(default_factory=dict)


def already_raised(session: Session, tenant_id: uuid.UUID, key: str) -> bool:
    found = session.scalar(
        select(CareEscalationKey.id).where(
            CareEscalationKey.tenant_id == tenant_id, CareEscalationKey.dedupe_key == key
        )
    )
    return found is not None


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def trigger_payload(
    tenant_id: uuid.UUID,
    situation: Situation,
    *,
    decision: Decision,
    state: CareState,
    previous: CareState | None,
    now: datetime,
) -> dict[str, Any]:
    """The guide's 13.6 contract plus the original's extra fields (care-facts)."""
    escalation = situation.escalation
    plural = PLURALS.get(situation.entity_type, situation.entity_type)
    return {
        "event_id": str(uuid.uuid4()),
        "type": ESCALATION_EVENT,
        "ts": _iso(now),
        "tenant_id": str(tenant_id),
        "entity_type": situation.entity_type,
        "entity_id": str(situation.entity_id),
        "signal_entity_type": situation.signal_entity_type,
        "signal_entity_id": str(situation.signal_entity_id),
        "action_origin": situation.origin,
        "reason": escalation.reason,
        "policy_gate_result": decision.result.value,
        "trigger_type": escalation.trigger_type,
        "care_state": state.value,
        "previous_state": previous.value if previous is not None else None,
        "escalation_detected": True,
        "confidence": escalation.confidence,
        "deep_link": f"/{plural}/{situation.entity_id}",
        "meta": situation.meta,
    }


def handle_escalation(
    session: Session,
    ctx: CareContext,
    *,
    tenant_id: uuid.UUID,
    situation: Situation,
    now: datetime | None = None,
    known: Prefetched | None = None,
) -> Outcome:
    """Audits a detected escalation and, when C.A.R.E. may act, moves the state and queues
    the workflow trigger, each through the policy gate."""
    outcome = Outcome()
    escalation = situation.escalation
    if not escalation.is_escalation:
        return outcome
    now = now or utcnow()
    if situation.dedupe_key is not None:
        if (
            situation.dedupe_key in known.raised
            if known is not None
            else already_raised(session, tenant_id, situation.dedupe_key)
        ):
            outcome.duplicate = True
            return outcome
        session.add(
            CareEscalationKey(
                tenant_id=tenant_id,
                dedupe_key=situation.dedupe_key,
                trigger_type=escalation.trigger_type or "unknown",
                entity_type=situation.signal_entity_type,
                entity_id=situation.signal_entity_id,
                created_at=now,
            )
        )
    outcome.escalated = True
    common = {
        "trigger_type": escalation.trigger_type,
        "signal_entity_type": situation.signal_entity_type,
        "signal_entity_id": str(situation.signal_entity_id),
        "anchor_entity_type": situation.entity_type,
        "anchor_entity_id": str(situation.entity_id),
    }
    audit.record_audit(
        session,
        tenant_id=tenant_id,
        event_type=audit.ESCALATION_DETECTED,
        entity_type=situation.signal_entity_type,
        entity_id=situation.signal_entity_id,
        action_origin=situation.origin,
        reason=escalation.reason,
        metadata={
            **common,
            "disposition": ctx.disposition,
            **ctx.switches(),
            "action_origin": situation.origin,
            "confidence": escalation.confidence,
            "confidence_level": escalation.confidence_level,
            "sentiment": escalation.sentiment,
            "matched_phrases": list(escalation.matched),
            "dedupe_key": situation.dedupe_key,
            "meta": situation.meta,
        },
    )
    if not ctx.acting:
        outcome.skipped = True
        return outcome

    state_key = (situation.signal_entity_type, situation.signal_entity_id)
    row = (
        known.states.get(state_key)
        if known is not None
        else state_row(session, tenant_id, *state_key)
    )
    state = current_state(row)
    previous = parse_state(row.previous_state) if row and row.previous_state else None
    if situation.state_signal is not None:
        target = target_for(state, situation.state_signal)
        if target is not None:
            propose_transition(
                session,
                ctx,
                tenant_id=tenant_id,
                entity_type=situation.signal_entity_type,
                entity_id=situation.signal_entity_id,
                to_state=target,
                signal=situation.state_signal,
                origin=situation.origin,
                reason=escalation.reason,
                metadata=common,
                outcome=outcome,
                known=known,
            )
            if outcome.transition is not None:
                previous, state = state, target

    if not ctx.triggers_enabled:
        return outcome
    action = ActionRequest(
        ActionType.TRIGGER_WORKFLOW.value, situation.origin, state, situation.signal_entity_type
    )
    draft = trigger_payload(
        tenant_id,
        situation,
        decision=Decision(GateResult.ALLOWED, "", "default"),
        state=state,
        previous=previous,
        now=now,
    )
    decision = gate(
        session,
        ctx,
        tenant_id=tenant_id,
        action=action,
        entity_id=situation.signal_entity_id,
        payload={"kind": "trigger_workflow", "trigger": draft},
        metadata={**common, "event_id": draft["event_id"]},
        outcome=outcome,
    )
    if decision.proceeds:
        draft["policy_gate_result"] = decision.result.value
        event_id = enqueue_care_trigger(session, tenant_id=tenant_id, payload=draft)
        outcome.event_ids.append(str(event_id))
    return outcome
