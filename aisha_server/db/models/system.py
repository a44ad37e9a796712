"""System-wide settings and the operational log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from aisha_server.db.base import Base, JSONType, Timestamps, pk, utcnow


class SystemSetting(Timestamps, Base):
    __tablename__ = "system_settings"

    id: Mapped[uuid.UUID] = pk()
    setting_key: Mapped[str] = mapped_column(String(200), unique=True)
    setting_value: Mapped[Any] = mapped_column(JSONType, nullable=True, default=None)
    description: Mapped[str | None] = mapped_column(default=None)


class SystemLog(Base):
    """Lifecycle events and auth failures; `tenant_id` is null for system-wide events."""

    __tablename__ = "system_logs"
    __table_args__ = (Index(None, "created_at"), Index(None, "tenant_id", "created_at"))

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), default=None
    )
    level: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(100))
    message: Mapped[str]
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    ip_address: Mapped[str | None] = mapped_column(String(64), default=None)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", default=dict, server_default=text("'{}'")
    )
    created_at: Mapped[datetime] = mapped_column(
        default=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )
