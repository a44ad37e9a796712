"""C.A.R.E. state and audit tables, column for column as in guide 13.3 and 13.7."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from aisha_server.db.base import Base, Timestamps, pk, utcnow
from aisha_server.db.models.crm import Activity


class CareState(Timestamps, Base):
    __tablename__ = "care_states"
    __table_args__ = (
        Index(None, "tenant_id", "entity_type", "entity_id", unique=True),
        Index(None, "tenant_id", "transitioned_at"),
        Index(None, "updated_at"),
    )

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    entity_type: Mapped[str]
    entity_id: Mapped[uuid.UUID]
    current_state: Mapped[str]
    previous_state: Mapped[str | None] = mapped_column(default=None)
    transitioned_at: Mapped[datetime | None] = mapped_column(
        default=utcnow, server_default=func.now()
    )
    transition_reason: Mapped[str | None] = mapped_column(default=None)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column(
        "metadata", default=dict, server_default=text("'{}'")
    )


class CareAuditLog(Base):
    __tablename__ = "care_audit_log"
    __table_args__ = (
        Index(None, "tenant_id", "event_type", "created_at"),
        Index(None, "created_at"),
    )

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    event_type: Mapped[str]
    entity_type: Mapped[str]
    entity_id: Mapped[uuid.UUID]
    action_origin: Mapped[str | None] = mapped_column(String(32), default=None)
    reason: Mapped[str | None] = mapped_column(default=None)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column(
        "metadata", default=dict, server_default=text("'{}'")
    )
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow, server_default=func.now())


# -- C.A.R.E. controls (not in the guide's schema; migration 0008) ---------------------------


class CareTenantControl(Base):
    """Per-tenant pause: an admin stops C.A.R.E. actions for one tenant without a restart."""

    __tablename__ = "care_tenant_controls"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    paused: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    paused_at: Mapped[datetime | None] = mapped_column(default=None)
    paused_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    pause_reason: Mapped[str | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, server_default=func.now(), onupdate=utcnow
    )


class CarePolicyRule(Timestamps, Base):
    """A tenant's own policy rule, evaluated before the default table (guide 13.5)."""

    __tablename__ = "care_policy_rules"
    __table_args__ = (Index(None, "tenant_id", "priority"),)

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    action_type: Mapped[str] = mapped_column(String(50))
    # C.A.R.E. states the rule applies to; empty = every state
    states: Mapped[list[str]] = mapped_column(default=list, server_default=text("'[]'"))
    action_origin: Mapped[str | None] = mapped_column(String(32), default=None)
    entity_type: Mapped[str | None] = mapped_column(String(50), default=None)
    result: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str]
    priority: Mapped[int] = mapped_column(default=100, server_default="100")
    enabled: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(default=None)


class CareApproval(Timestamps, Base):
    """An action the gate deferred (`defer`): waits for an admin to approve or reject it."""

    __tablename__ = "care_approvals"
    __table_args__ = (Index(None, "tenant_id", "status", "created_at"),)

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    action_type: Mapped[str] = mapped_column(String(50))
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[uuid.UUID]
    action_origin: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(default=None)
    # what approving does: e.g. the workflow trigger's payload, the state transition
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    decided_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decision_note: Mapped[str | None] = mapped_column(default=None)


class CareEscalationKey(Base):
    """One row per escalation raised: the same situation (same key) is never raised twice."""

    __tablename__ = "care_escalation_keys"
    __table_args__ = (
        Index(None, "tenant_id", "dedupe_key", unique=True),
        Index(None, "created_at"),
    )

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    trigger_type: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class CareScanCursor(Base):
    """How far each scheduled check has read a tenant's records (its time column, then id):
    a scan reads only rows that crossed the threshold since the last one."""

    __tablename__ = "care_scan_cursors"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    check_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[datetime | None] = mapped_column(default=None)
    last_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    scanned_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


# The overdue-activity check reads activities by due date inside a tenant (any status); the
# (tenant_id, status, due_date) index of crm.py cannot serve that range.
Index("ix_activities_tenant_id_due_date", Activity.tenant_id, Activity.due_date)
