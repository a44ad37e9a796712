"""The C.A.R.E. audit trail (guide 13.7): one `care_audit_log` row per decision or action,
written in the caller's transaction, and one `[CARE_AUDIT]` log line per row so the guide's
`grep "\\[CARE_AUDIT\\]"` recipes work on our logs."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Final

import orjson
from sqlalchemy.orm import Session

from aisha_server.db.models.care import CareAuditLog

log = logging.getLogger("aisha.care")

# Event types of guide 13.7 ("Event Types" table)
ESCALATION_DETECTED: Final = "ESCALATION_DETECTED"
ACTION_ALLOWED: Final = "ACTION_ALLOWED"
ACTION_BLOCKED: Final = "ACTION_BLOCKED"
STATE_TRANSITION: Final = "STATE_TRANSITION"
WORKFLOW_TRIGGERED: Final = "WORKFLOW_TRIGGERED"
EVENT_TYPES: Final = (
    ESCALATION_DETECTED,
    ACTION_ALLOWED,
    ACTION_BLOCKED,
    STATE_TRANSITION,
    WORKFLOW_TRIGGERED,
)

# action_origin values (guide 13.5 "Action Origin Classification")
ORIGIN_HUMAN: Final = "human"
ORIGIN_AUTONOMOUS: Final = "care_autonomous"

# the `[CARE_AUDIT]` line says whether an action may follow (kill switch on) or not (13.2)
ACTION_CANDIDATE: Final = "action_candidate"
ACTION_SKIPPED: Final = "action_skipped"


def audit_line(
    *,
    tenant_id: uuid.UUID,
    event_type: str,
    entity_type: str,
    entity_id: uuid.UUID,
    action_origin: str | None,
    reason: str | None,
    metadata: dict[str, Any],
) -> str:
    """The structured `[CARE_AUDIT]` line: a prefix, the disposition, then the row as JSON."""
    disposition = metadata.get("disposition")
    fields = {
        "tenant_id": str(tenant_id),
        "event_type": event_type,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "action_origin": action_origin,
        "reason": reason,
        "metadata": metadata,
    }
    head = f"[CARE_AUDIT] {disposition}" if disposition else "[CARE_AUDIT]"
    return f"{head} {json.dumps(fields, sort_keys=True, default=str)}"


def record_audit(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    event_type: str,
    entity_type: str,
    entity_id: uuid.UUID,
    action_origin: str | None,
    reason: str | None,
    metadata: dict[str, Any],
) -> None:
    """Adds one audit row to the caller's transaction and logs its `[CARE_AUDIT]` line.

    `metadata["disposition"]`, when given, is `action_candidate` or `action_skipped` (kill
    switch, 13.2) and leads the log line.  Unknown event types are a programming error.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown C.A.R.E. audit event type {event_type!r}")
    session.add(
        CareAuditLog(
            tenant_id=tenant_id,
            event_type=event_type,
            entity_type=entity_type,
            entity_id=entity_id,
            action_origin=action_origin,
            reason=reason,
            # JSON-safe (UUIDs, datetimes as strings), as the log line shows them
            metadata_=orjson.loads(orjson.dumps(metadata, default=str)),
        )
    )
    if log.isEnabledFor(logging.INFO):
        log.info(
            audit_line(
                tenant_id=tenant_id,
                event_type=event_type,
                entity_type=entity_type,
                entity_id=entity_id,
                action_origin=action_origin,
                reason=reason,
                metadata=metadata,
            )
        )
