"""C.A.R.E. state and audit tables, column for column as in guide 13.3 and 13.7."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from aisha_server.db.base import Base, Timestamps, pk, utcnow


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
