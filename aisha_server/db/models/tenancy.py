"""Tenants and their configuration: modules, entity labels, custom fields, integrations, webhooks."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from aisha_server.db.base import Base, Versioned, pk


class Tenant(Versioned, Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = pk()
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", default=dict, server_default=text("'{}'")
    )


class ModuleSetting(Versioned, Base):
    __tablename__ = "module_settings"
    __table_args__ = (UniqueConstraint("tenant_id", "module_name"),)

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    module_name: Mapped[str] = mapped_column(String(100))
    is_enabled: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    settings: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class EntityLabel(Versioned, Base):
    __tablename__ = "entity_labels"
    __table_args__ = (UniqueConstraint("tenant_id", "entity_key"),)

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    entity_key: Mapped[str] = mapped_column(String(50))
    custom_label: Mapped[str] = mapped_column(String(100))
    custom_label_singular: Mapped[str | None] = mapped_column(String(100), default=None)


class CustomField(Versioned, Base):
    __tablename__ = "custom_fields"
    __table_args__ = (UniqueConstraint("tenant_id", "entity", "field_name"),)

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(50))
    field_name: Mapped[str] = mapped_column(String(100))
    field_type: Mapped[str] = mapped_column(String(20))
    label: Mapped[str | None] = mapped_column(String(200), default=None)
    options: Mapped[list[Any] | None] = mapped_column(default=None)
    is_required: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    is_archived: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    position: Mapped[int] = mapped_column(default=0, server_default="0")


class TenantIntegration(Versioned, Base):
    __tablename__ = "tenant_integrations"
    __table_args__ = (Index(None, "tenant_id", "integration_type"),)

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    integration_type: Mapped[str] = mapped_column(String(50))
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    credentials: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    is_active: Mapped[bool] = mapped_column(default=True, server_default=text("true"))


class Webhook(Versioned, Base):
    """Outbound lifecycle webhooks (9.5): tenant-scoped, active, subscribed to events or `*`."""

    __tablename__ = "webhook"
    __table_args__ = (Index(None, "tenant_id", "is_active"),)

    id: Mapped[uuid.UUID] = pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    url: Mapped[str]
    event_types: Mapped[list[str]] = mapped_column(default=list, server_default=text("'[]'"))
    secret: Mapped[str | None] = mapped_column(default=None)
    description: Mapped[str | None] = mapped_column(default=None)
    is_active: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", default=dict, server_default=text("'{}'")
    )


__all__ = ["CustomField", "EntityLabel", "ModuleSetting", "Tenant", "TenantIntegration", "Webhook"]
