"""A record's timeline: its activities and notes, its creation, and every later change of
its fields (old and new values, who, when) from the sync change log, newest first."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aisha_server.auth.authorize import allows
from aisha_server.auth.principal import Principal
from aisha_server.db.models import Activity, Note
from aisha_server.db.models.sync import SyncChange
from aisha_server.db.uow import Database
from aisha_server.errors import Invalid
from aisha_server.services.records import SPECS, EntitySpec, RecordService, record_view

TIMELINE_ENTITIES = ("accounts", "contacts", "leads", "opportunities")
MAX_ITEMS = 500


class TimelineService:
    def __init__(self, db: Database, records: RecordService) -> None:
        self._db = db
        self._records = records

    async def timeline(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        entity: str,
        record_id: uuid.UUID,
        *,
        limit: int = 100,
        before: datetime | None = None,
    ) -> list[dict[str, Any]]:
        if entity not in TIMELINE_ENTITIES:
            raise Invalid(f"{entity} have no timeline")
        # visibility, permission and module checks exactly as a GET of the record
        record = await self._records.get(actor, tenant_id, entity, record_id)
        spec = SPECS[entity]
        limit = max(1, min(limit, MAX_ITEMS))
        kinds: list[tuple[EntitySpec, type[Any]]] = [
            (SPECS[name], model)
            for name, model in (("activities", Activity), ("notes", Note))
            if allows(actor, name, "read")
        ]

        def read(session: Session) -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = []
            for child_spec, model in kinds:
                query = select(model).where(
                    model.tenant_id == tenant_id,
                    model.deleted_at.is_(None),
                    model.related_type == spec.singular,
                    model.related_id == record_id,
                    *RecordService._scope(child_spec, actor),  # the same data scope as lists
                )
                if before is not None:
                    query = query.where(model.created_at < before)
                rows = session.scalars(query.order_by(model.created_at.desc()).limit(limit))
                for row in rows:
                    items.append(
                        {
                            "kind": child_spec.singular,
                            "at": row.created_at,
                            "id": row.id,
                            "record": record_view(child_spec, row),
                        }
                    )
            query = select(SyncChange).where(
                SyncChange.tenant_id == tenant_id,
                SyncChange.entity == entity,
                SyncChange.record_id == record_id,
            )
            if before is not None:
                query = query.where(SyncChange.created_at < before)
            creator = None
            for change in session.scalars(query.order_by(SyncChange.seq.desc()).limit(limit)):
                if change.version <= 1:
                    creator = change.actor_id
                    continue  # the "created" entry stands for it
                items.append(
                    {
                        "kind": _change_kind(change),
                        "at": change.created_at,
                        "id": f"change-{change.seq}",
                        "version": change.version,
                        "actor_id": change.actor_id,
                        "changes": {
                            name: {"old": old, "new": new}
                            for name, (old, new) in sorted(change.changes.items())
                        },
                    }
                )
            items.append(
                {
                    "kind": "created",
                    "at": record["created_at"],
                    "id": record["id"],
                    "actor_id": creator,
                }
            )
            return items

        items = await self._db.run(read, tenant_id=tenant_id, write=False)
        items.sort(key=lambda item: (item["at"], str(item["id"])), reverse=True)
        if before is not None:
            items = [i for i in items if i["at"] < before]
        return items[:limit]


def _change_kind(change: SyncChange) -> str:
    """ "deleted" / "restored" when the tombstone moved, else "change"."""
    moved = change.changes.get("deleted_at")
    if moved is not None:
        return "restored" if moved[1] is None else "deleted"
    return "change"
