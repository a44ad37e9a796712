"""A record's timeline: its activities and notes, its creation, and every later change of
its fields (old and new values, who, when) from the sync change log, newest first.

Entries are ordered by (`at`, `id`) descending; `id` breaks ties between entries of the same
moment (a bulk import gives many activities one `created_at`).  A page's `next_cursor`
holds the last entry's (`at`, `id`), and the next page starts strictly after it, so paging
neither repeats nor skips an entry.  `before` (a time) is kept for callers that page by time
alone; it cannot tell apart entries of the same moment."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aisha_server.auth.authorize import allows
from aisha_server.auth.principal import Principal
from aisha_server.db.models import Activity, Note
from aisha_server.db.models.sync import SyncChange
from aisha_server.db.uow import Database
from aisha_server.errors import BadRequest, Invalid
from aisha_server.services.pagination import decode_cursor, encode_cursor
from aisha_server.services.records import SPECS, EntitySpec, RecordService, record_view

TIMELINE_ENTITIES = ("accounts", "contacts", "leads", "opportunities")
MAX_ITEMS = 500


@dataclass(frozen=True, slots=True)
class TimelinePage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def _key(item: dict[str, Any]) -> tuple[datetime, str]:
    return item["at"], str(item["id"])


def decode_timeline_cursor(cursor: str) -> tuple[datetime, str]:
    at, entry = decode_cursor(cursor)
    try:
        moment = datetime.fromisoformat(at)
    except (TypeError, ValueError):
        raise BadRequest("Invalid cursor", code="invalid_cursor") from None
    if moment.tzinfo is None or not isinstance(entry, str) or not entry:
        raise BadRequest("Invalid cursor", code="invalid_cursor")
    return moment, entry


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
        cursor: str | None = None,
        include_deleted: bool = False,
    ) -> TimelinePage:
        if entity not in TIMELINE_ENTITIES:
            raise Invalid(f"{entity} have no timeline")
        if before is not None and cursor is not None:
            raise BadRequest("Give either cursor or before, not both", code="invalid_cursor")
        after = decode_timeline_cursor(cursor) if cursor is not None else None
        # visibility, permission and module checks exactly as a GET of the record
        record = await self._records.get(
            actor, tenant_id, entity, record_id, include_deleted=include_deleted
        )
        spec = SPECS[entity]
        limit = max(1, min(limit, MAX_ITEMS))
        kinds: list[tuple[EntitySpec, type[Any]]] = [
            (SPECS[name], model)
            for name, model in (("activities", Activity), ("notes", Note))
            if allows(actor, name, "read")
        ]
        # each source is read newest first: `limit` + 1 entries older than the bound, with the
        # whole group of entries of the same moment as the last of them (their order is by
        # id, in memory), and (after a cursor) every entry of the cursor's own moment
        bound = after[0] if after is not None else before

        def newest(session: Session, query: Any, column: Any, order: Any) -> list[Any]:
            older = query if bound is None else query.where(column < bound)
            rows = list(session.scalars(older.order_by(order).limit(limit + 1)))
            moments = []
            if len(rows) > limit:
                moments.append(getattr(rows[-1], column.key))
            if after is not None:
                moments.append(bound)
            for moment in moments:
                known = set(rows)
                rows += [
                    r for r in session.scalars(query.where(column == moment)) if r not in known
                ]
            return rows

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
                for row in newest(session, query, model.created_at, model.created_at.desc()):
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
            creator = None
            for change in newest(session, query, SyncChange.created_at, SyncChange.seq.desc()):
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
            if creator is None and record["created_at"] is not None:
                creator = session.scalar(
                    select(SyncChange.actor_id)
                    .where(
                        SyncChange.tenant_id == tenant_id,
                        SyncChange.entity == entity,
                        SyncChange.record_id == record_id,
                        SyncChange.version <= 1,
                    )
                    .limit(1)
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
        if after is not None:
            items = [i for i in items if _key(i) < after]
        elif before is not None:
            items = [i for i in items if i["at"] < before]
        items.sort(key=_key, reverse=True)
        page = items[:limit]
        more = len(items) > limit
        next_cursor = (
            encode_cursor([page[-1]["at"].isoformat(), str(page[-1]["id"])]) if more else None
        )
        return TimelinePage(page, next_cursor)


def _change_kind(change: SyncChange) -> str:
    """ "deleted" / "restored" when the tombstone moved, else "change"."""
    moved = change.changes.get("deleted_at")
    if moved is not None:
        return "restored" if moved[1] is None else "deleted"
    return "change"
