"""The sync tables: the per-tenant change log and its counter, pushed mutations (for
idempotent retries) and the conflicts a push recorded.  See aisha_server/db/changelog.py and
aisha_server/services/sync.py."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from aisha_server.db.base import Base, JSONType, pk, utcnow


def _tenant_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)


class SyncCounter(Base):
    """One row per tenant: the last change sequence handed out and how far the log has been
    pruned.  Writers take the next numbers by updating this row in their own transaction, so
    the row lock orders them: a change numbered n commits before any numbered above n exists."""

    __tablename__ = "sync_counters"

    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # changes with seq <= pruned_seq have been removed (tombstone retention)
    pruned_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class SyncChange(Base):
    """One committed change to a synced row: the field-level audit trail and the pull feed."""

    __tablename__ = "sync_changes"
    __table_args__ = (
        Index(None, "tenant_id", "entity", "record_id", "seq"),
        Index(None, "tenant_id", "created_at"),
    )

    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entity: Mapped[str] = mapped_column(String(50))
    record_id: Mapped[uuid.UUID]
    op: Mapped[str] = mapped_column(String(10))  # upsert | delete
    version: Mapped[int]
    # {field: [old, new]} of what changed (every set field on creation, old = null)
    changes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # the record's data scope after the change (before = these overlaid with changes' olds)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    assigned_to: Mapped[uuid.UUID | None] = mapped_column(default=None)
    department: Mapped[str | None] = mapped_column(String(100), default=None)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    client_id: Mapped[str | None] = mapped_column(String(100), default=None)
    mutation_id: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncMutation(Base):
    """A pushed mutation's stored result: a retried push answers from here, applying nothing."""

    __tablename__ = "sync_mutations"
    __table_args__ = (Index(None, "created_at"),)

    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    mutation_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    result: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncConflict(Base):
    """A pushed edit the server did not apply because the same field (or the whole record, by
    deletion) changed on the server since the client's base version.  Both values are kept."""

    __tablename__ = "sync_conflicts"
    __table_args__ = (
        Index(None, "tenant_id", "user_id", "resolved_at"),
        Index(None, "tenant_id", "entity", "record_id"),
    )

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(50))
    record_id: Mapped[uuid.UUID]
    field: Mapped[str] = mapped_column(String(100))  # "_deleted" when the record was deleted
    base_version: Mapped[int]
    server_version: Mapped[int]
    server_value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    client_value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    server_actor_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    server_changed_at: Mapped[datetime | None] = mapped_column(default=None)
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)  # who pushed
    client_id: Mapped[str] = mapped_column(String(100))
    mutation_id: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    resolution: Mapped[str | None] = mapped_column(String(20), default=None)
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    resolved_value: Mapped[Any] = mapped_column(JSONType, nullable=True, default=None)
