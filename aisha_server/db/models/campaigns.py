"""AI campaigns (guide 9.5): status and progress live in `metadata` as the guide's SQL reads them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from aisha_server.db.base import Base, Versioned, pk


class AiCampaign(Versioned, Base):
    __tablename__ = "ai_campaigns"
    __table_args__ = (Index(None, "status", "created_at"), Index(None, "tenant_id", "status"))

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(20), default="draft", server_default="draft")
    target_contacts: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    scheduled_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", default=dict, server_default=text("'{}'")
    )
