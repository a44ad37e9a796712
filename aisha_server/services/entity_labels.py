"""Per-tenant entity labels (guide 4.4 "Entity Label Customization").

A tenant renames its navigation entities ("Accounts" -> "Clients").  Rows of
`entity_labels (tenant_id, entity_key, custom_label, custom_label_singular)` hold only the
customised keys; every reader gets all keys with the defaults filled in.  `labels_for` is
what other code (the AI prompt injection) reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aisha_server.auth.authorize import require_allowed
from aisha_server.auth.principal import Principal
from aisha_server.db.base import utcnow
from aisha_server.db.changelog import ChangeContext
from aisha_server.db.models import EntityLabel
from aisha_server.db.uow import Database
from aisha_server.errors import TENANT_ACCESS_DENIED, Invalid, PermissionDenied

# entity key -> (default plural, default singular), in navigation order
ENTITY_DEFAULTS: dict[str, tuple[str, str]] = {
    "accounts": ("Accounts", "Account"),
    "contacts": ("Contacts", "Contact"),
    "leads": ("Leads", "Lead"),
    "opportunities": ("Opportunities", "Opportunity"),
    "activities": ("Activities", "Activity"),
}
ENTITY_KEYS: tuple[str, ...] = tuple(ENTITY_DEFAULTS)
LABEL_MAX = 100


@dataclass(frozen=True, slots=True)
class LabelChange:
    plural: str
    singular: str | None = None
    # False: keep the stored singular; True: set it to `singular` (None = back to default)
    singular_given: bool = False


def _invalid(field_name: str, message: str) -> Invalid:
    return Invalid(
        f"Validation failed: {field_name}",
        details=[{"field": field_name, "message": message, "type": "value_error"}],
    )


def _label(field_name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _invalid(field_name, "must be a string")
    cleaned = value.strip()
    if not cleaned or len(cleaned) > LABEL_MAX:
        raise _invalid(field_name, f"must be 1 to {LABEL_MAX} characters")
    return cleaned


def _unknown_entity(field_name: str, key: str) -> Invalid:
    return _invalid(field_name, f"unknown entity {key!r}; one of: {', '.join(ENTITY_KEYS)}")


def validated_changes(changes: Mapping[str, LabelChange]) -> dict[str, LabelChange]:
    """Every change checked (keys, lengths, types) before anything is written."""
    if not changes:
        raise _invalid("labels", "give at least one entity")
    out: dict[str, LabelChange] = {}
    for key, change in changes.items():
        if key not in ENTITY_DEFAULTS:
            raise _unknown_entity(f"labels.{key}", key)
        singular = (
            _label(f"labels.{key}.singular", change.singular)
            if change.singular is not None
            else None
        )
        out[key] = LabelChange(
            _label(f"labels.{key}.plural", change.plural), singular, change.singular_given
        )
    return out


def _rows(session: Session, tenant_id: uuid.UUID) -> dict[str, EntityLabel]:
    rows = session.scalars(select(EntityLabel).where(EntityLabel.tenant_id == tenant_id))
    return {r.entity_key: r for r in rows}


def labels_view(rows: Mapping[str, EntityLabel]) -> dict[str, dict[str, Any]]:
    view: dict[str, dict[str, Any]] = {}
    for key, (plural, singular) in ENTITY_DEFAULTS.items():
        row = rows.get(key)
        live = row is not None and row.deleted_at is None
        view[key] = {
            "plural": row.custom_label if live and row is not None else plural,
            "singular": (row.custom_label_singular if live and row is not None else None)
            or singular,
            "default_plural": plural,
            "default_singular": singular,
            "customized": live,
        }
    return view


class EntityLabelService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def labels_for(self, tenant_id: uuid.UUID) -> dict[str, dict[str, Any]]:
        """Every entity key of the tenant with its plural and singular label (no actor)."""
        return await self._db.run(
            lambda s: labels_view(_rows(s, tenant_id)), tenant_id=tenant_id, write=False
        )

    async def get(self, actor: Principal, tenant_id: uuid.UUID) -> dict[str, dict[str, Any]]:
        _own_tenant(actor, tenant_id)
        require_allowed(actor, "entity-labels", "read")
        return await self.labels_for(tenant_id)

    async def update(
        self, actor: Principal, tenant_id: uuid.UUID, changes: Mapping[str, LabelChange]
    ) -> dict[str, dict[str, Any]]:
        """Upsert the given keys, all or nothing."""
        _own_tenant(actor, tenant_id)
        require_allowed(
            actor, "entity-labels", "update", message="Only administrators may rename entities"
        )
        clean = validated_changes(changes)

        def write(session: Session) -> dict[str, dict[str, Any]]:
            rows = _rows(session, tenant_id)
            for key, change in clean.items():
                row = rows.get(key)
                if row is None:
                    row = EntityLabel(
                        tenant_id=tenant_id,
                        entity_key=key,
                        custom_label=change.plural,
                        custom_label_singular=change.singular,
                    )
                    session.add(row)
                    rows[key] = row
                    continue
                revived = row.deleted_at is not None
                if revived:  # a reset key: its old singular is gone with it
                    row.deleted_at = None
                    row.custom_label_singular = None
                if row.custom_label != change.plural:
                    row.custom_label = change.plural
                if (
                    change.singular_given or change.singular is not None
                ) and row.custom_label_singular != change.singular:
                    row.custom_label_singular = change.singular
            session.flush()
            return labels_view(rows)

        return await self._db.run(write, tenant_id=tenant_id, actor=ChangeContext(actor.user_id))

    async def reset(
        self, actor: Principal, tenant_id: uuid.UUID, entity: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """Back to the defaults: every key, or only `entity`.  Rows are tombstoned (sync)."""
        _own_tenant(actor, tenant_id)
        require_allowed(
            actor, "entity-labels", "delete", message="Only administrators may reset entity labels"
        )
        if entity is not None and entity not in ENTITY_DEFAULTS:
            raise _unknown_entity("entity", entity)

        def write(session: Session) -> dict[str, dict[str, Any]]:
            rows = _rows(session, tenant_id)
            now = utcnow()
            for key, row in rows.items():
                if (entity is None or key == entity) and row.deleted_at is None:
                    row.deleted_at = now
            session.flush()
            return labels_view(rows)

        return await self._db.run(write, tenant_id=tenant_id, actor=ChangeContext(actor.user_id))


def _own_tenant(actor: Principal, tenant_id: uuid.UUID) -> None:
    if not actor.is_superadmin and actor.tenant_id != tenant_id:
        raise PermissionDenied(TENANT_ACCESS_DENIED, code="tenant_access_denied")
