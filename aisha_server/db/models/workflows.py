"""Internal workflows (guide 13.10) and their executions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from aisha_server.db.base import Base, Versioned, pk, utcnow


class Workflow(Versioned, Base):
    __tablename__ = "workflow"
    __table_args__ = (Index(None, "tenant_id", "status"),)

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(20), default="draft", server_default="draft")
    is_active: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    trigger_type: Mapped[str] = mapped_column(
        String(50), default="webhook", server_default="webhook"
    )
    nodes: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    connections: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    webhook_secret: Mapped[str | None] = mapped_column(default=None)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", default=dict, server_default=text("'{}'")
    )


class WorkflowExecution(Base):
    __tablename__ = "workflow_execution"
    __table_args__ = (
        Index(None, "workflow_id", "started_at"),
        Index(None, "tenant_id", "started_at"),
    )

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="pending", server_default="pending")
    trigger_payload: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    execution_log: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    error: Mapped[str | None] = mapped_column(default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=utcnow, server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
