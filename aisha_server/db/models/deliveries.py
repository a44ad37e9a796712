"""The outbox of C.A.R.E. workflow triggers (guide 13.6): one row per event, written in the
transaction that decided the trigger, delivered by the trigger worker and kept afterwards
(status, attempts, last answer) so an admin can see and replay it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from aisha_server.db.base import Base, Timestamps, pk, utcnow

# delivery states: waiting for (another) attempt, answered 2xx, given up (4xx or too old)
PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
STATUSES = (PENDING, DELIVERED, FAILED)


class CareTriggerDelivery(Timestamps, Base):
    __tablename__ = "care_trigger_deliveries"
    __table_args__ = (
        # the worker's claim: due pending rows, oldest due first
        Index(None, "status", "next_attempt_at"),
        # the admin listing, newest first, per tenant (keyset on created_at, id)
        Index(None, "tenant_id", "created_at", "id"),
        Index(None, "created_at", "id"),
    )

    # the event id (X-AISHA-EVENT-ID, payload `event_id`): receivers deduplicate on it
    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    trigger_type: Mapped[str | None] = mapped_column(String(64), default=None)
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[uuid.UUID]
    action_origin: Mapped[str | None] = mapped_column(String(32), default=None)
    reason: Mapped[str | None] = mapped_column(default=None)
    # the exact body sent (serialised and signed once, the same bytes on every attempt)
    body: Mapped[str]
    status: Mapped[str] = mapped_column(String(16), default=PENDING, server_default=PENDING)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    # set while one worker delivers a round; the row is hidden from others until the lease
    # (next_attempt_at) runs out, so a crashed instance's rows come back by themselves
    lease_token: Mapped[uuid.UUID | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    rounds: Mapped[int] = mapped_column(default=0, server_default="0")
    replays: Mapped[int] = mapped_column(default=0, server_default="0")
    last_http_status: Mapped[int | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
