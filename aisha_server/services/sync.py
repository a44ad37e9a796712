"""Sync: the change feed a replica pulls, the mutations it pushes, and the conflicts between.

Pull (`changes`).  A replica with no cursor first pages through a *snapshot* of everything it
may see (entity by entity, keyset by id), then follows the change log from the sequence the
snapshot started at.  A log page lists each changed row once, with the row as it is now: a
record the caller may see arrives whole (so one that *enters* the caller's scope needs nothing
special), one it may no longer see arrives as a removal if the caller could have held it (it
was in the caller's scope before or after one of the page's changes, or the caller sees the
whole tenant).  A cursor older than the pruned part of the log is answered 410
`resync_required`: the replica rebuilds from a snapshot and keeps its outbox.

Push (`push`).  Mutations apply in order in one transaction, each inside its own savepoint, so
a rejected one (validation, permission, missing record) rolls back alone and the next ones
still apply.  Each result is stored under (client_id, mutation_id) in the same savepoint's
transaction: a retried push answers from there and applies nothing twice.  An update carries
the `base_version` the client edited; fields the server changed since then (per the change
log) keep the server's value and become conflicts (both values, who, when), unless the client
wrote the value the server already has; the other fields apply.  An update of a deleted record
is a conflict on `_deleted` carrying the client's fields.  Creates carry client-generated ids.

Conflicts (`conflicts`, `resolve`): keep the server's value, take the client's, or a custom
value — the latter two through RecordService.update_in, the same mutation path as REST.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aisha_server.auth.authorize import allows
from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import Capability, DataScope
from aisha_server.db.base import utcnow
from aisha_server.db.changelog import MODELS, ChangeContext, attribute, plain
from aisha_server.db.models.crm import Record
from aisha_server.db.models.sync import SyncChange, SyncConflict, SyncCounter, SyncMutation
from aisha_server.db.uow import Database
from aisha_server.errors import (
    BadRequest,
    Conflict,
    DomainError,
    Gone,
    Invalid,
    NotFound,
    PermissionDenied,
)
from aisha_server.services.module_settings import ModuleSettingsService
from aisha_server.services.records import (
    SPECS,
    RecordService,
    WriteContext,
    list_columns,
    record_view,
    row_viewer,
)

# what a snapshot sends first: definitions before the records that use them
ENTITY_ORDER = (
    "module_settings",
    "entity_labels",
    "custom_fields",
    "accounts",
    "contacts",
    "leads",
    "opportunities",
    "activities",
    "notes",
    "care_states",
    "care_audit_log",
)
SETTINGS_ENTITIES = ("module_settings", "entity_labels", "custom_fields")
# C.A.R.E. states and audit entries (read-only, whole tenant) go to the roles the API lets
# read them (`services.care._require_reader`: administrators and managers), to no one else.
CARE_ENTITIES = ("care_states", "care_audit_log")
DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
MAX_MUTATIONS = 1000
OPS = ("create", "update", "delete")
DELETED_FIELD = "_deleted"


# -- cursors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where a replica is: following the log after `seq`, or inside a snapshot taken at
    `seq` (entity index and last id sent)."""

    seq: int
    snapshot: bool = False
    entity: int = 0
    after: uuid.UUID | None = None

    def encode(self) -> str:
        raw = [self.seq] if not self.snapshot else [self.seq, self.entity, str(self.after or "")]
        return base64.urlsafe_b64encode(orjson.dumps(raw)).decode().rstrip("=")

    @staticmethod
    def decode(text: str) -> Cursor:
        try:
            raw = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], int):
                if raw[0] < 0:
                    raise ValueError
                return Cursor(raw[0])
            if (
                isinstance(raw, list)
                and len(raw) == 3
                and isinstance(raw[0], int)
                and isinstance(raw[1], int)
                and 0 <= raw[1] <= len(ENTITY_ORDER)
                and isinstance(raw[2], str)
            ):
                after = uuid.UUID(raw[2]) if raw[2] else None
                return Cursor(raw[0], snapshot=True, entity=raw[1], after=after)
        except (ValueError, TypeError, orjson.JSONDecodeError):
            pass
        raise BadRequest("Invalid sync cursor", code="invalid_cursor")


@dataclass
class ChangesPage:
    changes: list[dict[str, Any]]
    cursor: str
    has_more: bool
    snapshot: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "changes": self.changes,
            "cursor": self.cursor,
            "has_more": self.has_more,
            "snapshot": self.snapshot,
        }


# -- push input ---------------------------------------------------------------------------


@dataclass
class Mutation:
    """One pushed mutation; `values` are the fields as the entity's API model validated them
    (None when `error` says why they could not be)."""

    mutation_id: str
    entity: str
    record_id: uuid.UUID
    op: str
    base_version: int | None
    fields: dict[str, Any]
    values: dict[str, Any] | None = None
    error: DomainError | None = None


def _rejected(mutation: Mutation, exc: DomainError) -> dict[str, Any]:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details is not None:
        error["details"] = exc.details
    return {
        "mutation_id": mutation.mutation_id,
        "status": "rejected",
        "entity_type": mutation.entity,
        "id": str(mutation.record_id),
        "error": error,
    }


def _scope_fields(row: Any) -> tuple[Any, Any, Any]:
    return (row.owner_id, row.assigned_to, row.department)


def in_scope(actor: Principal, owner: Any, assigned: Any, department: Any) -> bool:
    """The Python twin of RecordService._scope for one record's scope columns."""
    scope = actor.data_scope
    if scope in (DataScope.ALL_TENANTS, DataScope.TENANT):
        return True
    own = actor.user_id is not None and actor.user_id in (owner, assigned)
    if scope is DataScope.DEPARTMENT and actor.department:
        return own or department == actor.department
    return own


def _uuid(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return value
    return value


@dataclass
class _Seen:
    """What a log page says about one row."""

    entity: str
    record_id: uuid.UUID
    seq: int
    could_see: bool = False
    ops: list[str] = field(default_factory=list)


class SyncService:
    def __init__(
        self,
        db: Database,
        records: RecordService,
        *,
        modules: ModuleSettingsService,
        retention: timedelta,
    ) -> None:
        self._db = db
        self._records = records
        self._modules = modules
        self._retention = retention

    # -- pull ---------------------------------------------------------------------------------
    async def _readable(self, actor: Principal, tenant_id: uuid.UUID) -> set[str]:
        """Entities the caller may read in this tenant (role and enabled modules)."""
        found = set(SETTINGS_ENTITIES)
        if actor.can(Capability.ADVANCED_REPORTS):
            found.update(CARE_ENTITIES)
        for name in SPECS:
            if allows(actor, name, "read") and await self._modules.is_enabled(tenant_id, name):
                found.add(name)
        return found

    async def changes(
        self, actor: Principal, tenant_id: uuid.UUID, since: str | None, limit: int
    ) -> ChangesPage:
        limit = max(1, min(limit, MAX_LIMIT))
        cursor = Cursor.decode(since) if since else None
        readable = await self._readable(actor, tenant_id)

        def read(session: Session) -> ChangesPage:
            counter = session.get(SyncCounter, tenant_id)
            head = counter.last_seq if counter else 0
            pruned = counter.pruned_seq if counter else 0
            if cursor is None:
                return self._snapshot(
                    session, actor, tenant_id, readable, Cursor(head, True), limit
                )
            if cursor.seq > head:
                raise BadRequest("Invalid sync cursor (ahead of the server)", code="invalid_cursor")
            if cursor.seq < pruned:
                raise Gone(
                    "Resync required: this replica is older than the change log keeps",
                    code="resync_required",
                    details={"pruned_through": pruned},
                )
            if cursor.snapshot:
                return self._snapshot(session, actor, tenant_id, readable, cursor, limit)
            return self._log(session, actor, tenant_id, readable, cursor.seq, limit)

        return await self._db.run(read, tenant_id=tenant_id, write=False)

    def _snapshot(
        self,
        session: Session,
        actor: Principal,
        tenant_id: uuid.UUID,
        readable: set[str],
        cursor: Cursor,
        limit: int,
    ) -> ChangesPage:
        out: list[dict[str, Any]] = []
        index, after = cursor.entity, cursor.after
        while index < len(ENTITY_ORDER) and len(out) < limit:
            entity = ENTITY_ORDER[index]
            if entity not in readable:
                index, after = index + 1, None
                continue
            model = MODELS[entity]
            room = limit - len(out)
            if entity in SPECS:
                # records as plain rows (no ORM instances): snapshots move 100k rows
                spec = SPECS[entity]
                query = select(*list_columns(spec, self._db.dialect)).where(
                    model.tenant_id == tenant_id,
                    model.deleted_at.is_(None),
                    *self._records._scope(spec, actor),
                )
                if after is not None:
                    query = query.where(model.id > after)
                view = row_viewer(spec, self._db.dialect)
                found = session.connection().execute(query.order_by(model.id).limit(room + 1))
                views = [view(row) for row in found.all()]
            else:
                query = select(model).where(model.tenant_id == tenant_id)
                if hasattr(model, "deleted_at"):
                    query = query.where(model.deleted_at.is_(None))
                if after is not None:
                    query = query.where(model.id > after)
                rows = session.scalars(query.order_by(model.id).limit(room + 1)).all()
                views = [self._view(entity, row) for row in rows]
            more = len(views) > room
            views = views[:room]
            out += [self._upsert_view(entity, v, cursor.seq) for v in views]
            if more:
                after = uuid.UUID(str(views[-1]["id"]))
                break
            index, after = index + 1, None
        if index >= len(ENTITY_ORDER):
            # the snapshot is complete: follow the log from where it was taken
            return ChangesPage(out, Cursor(cursor.seq).encode(), False, True)
        return ChangesPage(out, Cursor(cursor.seq, True, index, after).encode(), True, True)

    @staticmethod
    def _view(entity: str, row: Any) -> dict[str, Any]:
        if entity in SPECS:
            return record_view(SPECS[entity], row)
        view = {"id": row.id, "tenant_id": row.tenant_id, "version": getattr(row, "version", 1)}
        for prop in type(row).__mapper__.column_attrs:
            view[prop.columns[0].name] = getattr(row, prop.key)
        return view

    def _upsert(self, entity: str, row: Any, seq: int) -> dict[str, Any]:
        return self._upsert_view(entity, self._view(entity, row), seq)

    @staticmethod
    def _upsert_view(entity: str, view: dict[str, Any], seq: int) -> dict[str, Any]:
        return {
            "entity_type": entity,
            "id": view["id"],
            "op": "upsert",
            "version": view["version"],
            "seq": seq,
            "data": view,
        }

    def _log(
        self,
        session: Session,
        actor: Principal,
        tenant_id: uuid.UUID,
        readable: set[str],
        since: int,
        limit: int,
    ) -> ChangesPage:
        entries = session.scalars(
            select(SyncChange)
            .where(SyncChange.tenant_id == tenant_id, SyncChange.seq > since)
            .order_by(SyncChange.seq)
            .limit(limit + 1)
        ).all()
        more = len(entries) > limit
        entries = entries[:limit]
        if not entries:
            return ChangesPage([], Cursor(since).encode(), False, False)
        wide = actor.data_scope in (DataScope.ALL_TENANTS, DataScope.TENANT)
        seen: dict[tuple[str, uuid.UUID], _Seen] = {}
        for entry in entries:
            if entry.entity not in readable:
                continue
            key = (entry.entity, entry.record_id)
            item = seen.pop(key, None) or _Seen(entry.entity, entry.record_id, entry.seq)
            item.seq = entry.seq  # reinserted: ordered by each row's last change
            item.ops.append(entry.op)
            if entry.entity in SPECS and not item.could_see and not wide:
                after = (entry.owner_id, entry.assigned_to, entry.department)
                before = list(after)
                for i, name in enumerate(("owner_id", "assigned_to", "department")):
                    if name in entry.changes:
                        before[i] = (
                            _uuid(entry.changes[name][0]) if i < 2 else entry.changes[name][0]
                        )
                created = entry.changes and all(old is None for old, _ in entry.changes.values())
                item.could_see = in_scope(actor, *after) or (
                    not created and in_scope(actor, *before)
                )
            seen[key] = item
        current: dict[tuple[str, uuid.UUID], Any] = {}
        by_entity: dict[str, list[uuid.UUID]] = {}
        for entity, record_id in seen:
            by_entity.setdefault(entity, []).append(record_id)
        for entity, ids in by_entity.items():
            model = MODELS[entity]
            for row in session.scalars(
                select(model).where(model.tenant_id == tenant_id, model.id.in_(ids))
            ):
                current[(entity, row.id)] = row
        out: list[dict[str, Any]] = []
        for key, item in seen.items():
            row = current.get(key)
            # tombstones leave replicas
            visible = row is not None and getattr(row, "deleted_at", None) is None
            if row is not None and visible and item.entity in SPECS:
                visible = in_scope(actor, *_scope_fields(row))
            if visible:
                out.append(self._upsert(item.entity, row, item.seq))
            elif wide or item.entity not in SPECS or item.could_see:
                out.append(
                    {
                        "entity_type": item.entity,
                        "id": item.record_id,
                        "op": "delete",
                        "version": row.version if row is not None else None,
                        "seq": item.seq,
                    }
                )
        return ChangesPage(out, Cursor(entries[-1].seq).encode(), more, False)

    # -- push ---------------------------------------------------------------------------------
    async def push(
        self, actor: Principal, tenant_id: uuid.UUID, client_id: str, mutations: list[Mutation]
    ) -> list[dict[str, Any]]:
        if len(mutations) > MAX_MUTATIONS:
            raise Invalid(f"At most {MAX_MUTATIONS} mutations per push")
        contexts: dict[tuple[str, str], WriteContext | DomainError] = {}
        for m in mutations:
            if m.error is not None:
                continue
            action = {"create": "create", "update": "update", "delete": "delete"}[m.op]
            key = (m.entity, action)
            if key not in contexts:
                try:
                    contexts[key] = await self._records.write_context(
                        actor, tenant_id, m.entity, action
                    )
                except DomainError as exc:
                    contexts[key] = exc

        def write(session: Session) -> list[dict[str, Any]]:
            results: list[dict[str, Any]] = []
            stored = {
                row.mutation_id: row.result
                for row in session.scalars(
                    select(SyncMutation).where(
                        SyncMutation.tenant_id == tenant_id,
                        SyncMutation.client_id == client_id,
                        SyncMutation.mutation_id.in_([m.mutation_id for m in mutations]),
                    )
                )
            }
            for m in mutations:
                if m.mutation_id in stored:
                    results.append({**stored[m.mutation_id], "replayed": True})
                    continue
                attribute(session, ChangeContext(actor.user_id, client_id, m.mutation_id))
                context = contexts.get((m.entity, m.op))
                try:
                    if m.error is not None:
                        raise m.error
                    if isinstance(context, DomainError):
                        raise context
                    assert context is not None
                    with session.begin_nested():
                        result = self._apply(session, actor, tenant_id, client_id, context, m)
                except IntegrityError:
                    result = _rejected(
                        m, Conflict("The record's id or a link is not acceptable", code="conflict")
                    )
                except DomainError as exc:
                    result = _rejected(m, exc)
                result = orjson.loads(orjson.dumps(result, default=plain))
                session.add(
                    SyncMutation(
                        tenant_id=tenant_id,
                        client_id=client_id,
                        mutation_id=m.mutation_id,
                        user_id=actor.user_id,
                        result=result,
                    )
                )
                session.flush()
                stored[m.mutation_id] = result
                results.append(result)
            return results

        return await self._db.run(write, tenant_id=tenant_id)

    def _apply(
        self,
        session: Session,
        actor: Principal,
        tenant_id: uuid.UUID,
        client_id: str,
        context: WriteContext,
        m: Mutation,
    ) -> dict[str, Any]:
        spec = context.spec
        base = {"mutation_id": m.mutation_id, "entity_type": m.entity, "id": str(m.record_id)}
        values = m.values or {}
        if m.op == "create":
            data = self._records.creation_data(context, actor, values)
            view = self._records.create_in(
                session, context, actor, tenant_id, data, confirm_duplicate=True,
                record_id=m.record_id,
            )  # fmt: skip
            return {**base, "status": "applied", "version": view["version"], "record": view}
        if m.op == "delete":
            row = self._records._load(session, spec, actor, tenant_id, m.record_id, deleted=None)
            if row.deleted_at is not None:
                return {
                    **base,
                    "status": "applied",
                    "version": row.version,
                    "record": record_view(spec, row),
                }
            view = self._records.delete_in(session, spec, actor, tenant_id, m.record_id)
            return {**base, "status": "applied", "version": view["version"], "record": view}
        # update
        if m.base_version is None:
            raise Invalid(
                "An update needs the base_version the client edited",
                details=[{"field": "base_version", "message": "is required for update"}],
            )
        row = self._records._load(session, spec, actor, tenant_id, m.record_id, deleted=None)
        if row.deleted_at is not None:
            conflict = self._conflict(
                session, actor, tenant_id, client_id, m, DELETED_FIELD,
                server_value=None, client_value=m.fields, row=row,
                changed=self._last_change(session, tenant_id, m.entity, row.id),
            )  # fmt: skip
            return {
                **base,
                "status": "conflict",
                "version": row.version,
                "record": record_view(spec, row),
                "conflicts": [conflict],
            }
        row = self._records.load_for_edit(session, spec, actor, tenant_id, m.record_id)
        data = self._records.update_data(context, values, replace=False)
        conflicts: list[dict[str, Any]] = []
        if row.version != m.base_version:
            changed = self._server_changes(
                session, tenant_id, m.entity, row.id, m.base_version, client_id
            )
            current = record_view(spec, row)
            for name in list(data):
                if name == "custom_fields":
                    mine = dict(data[name] or {})
                    for key in list(mine):
                        path = f"custom_fields.{key}"
                        server_value = (row.custom_fields or {}).get(key)
                        if path in changed and plain(server_value) != plain(mine[key]):
                            conflicts.append(
                                self._conflict(
                                    session, actor, tenant_id, client_id, m, path,
                                    server_value=server_value, client_value=mine[key], row=row,
                                    changed=changed[path],
                                )
                            )  # fmt: skip
                            del mine[key]
                    if mine:
                        data[name] = mine
                    else:
                        del data[name]
                elif name in changed and plain(current.get(name)) != plain(data[name]):
                    conflicts.append(
                        self._conflict(
                            session, actor, tenant_id, client_id, m, name,
                            server_value=current.get(name), client_value=m.fields.get(name),
                            row=row, changed=changed[name],
                        )
                    )  # fmt: skip
                    del data[name]
        view = self._records.update_in(
            session, context, actor, tenant_id, m.record_id, data, row=row
        )
        status = "conflict" if conflicts else "applied"
        result = {**base, "status": status, "version": view["version"], "record": view}
        if conflicts:
            result["conflicts"] = conflicts
        return result

    @staticmethod
    def _server_changes(
        session: Session,
        tenant_id: uuid.UUID,
        entity: str,
        record_id: uuid.UUID,
        base: int,
        client_id: str,
    ) -> dict[str, SyncChange]:
        """Field -> the latest change after version `base` (custom fields per key) made by
        anyone but the pushing client: a client's own earlier pushes are not the server's
        changes (its later edits build on them)."""
        found: dict[str, SyncChange] = {}
        for entry in session.scalars(
            select(SyncChange)
            .where(
                SyncChange.tenant_id == tenant_id,
                SyncChange.entity == entity,
                SyncChange.record_id == record_id,
                SyncChange.version > base,
                or_(SyncChange.client_id.is_(None), SyncChange.client_id != client_id),
            )
            .order_by(SyncChange.seq)
        ):
            for name, (old, new) in entry.changes.items():
                if name == "custom_fields":
                    old_values, new_values = old or {}, new or {}
                    for key in set(old_values) | set(new_values):
                        if old_values.get(key) != new_values.get(key):
                            found[f"custom_fields.{key}"] = entry
                else:
                    found[name] = entry
        return found

    @staticmethod
    def _last_change(
        session: Session, tenant_id: uuid.UUID, entity: str, record_id: uuid.UUID
    ) -> SyncChange | None:
        return session.scalars(
            select(SyncChange)
            .where(
                SyncChange.tenant_id == tenant_id,
                SyncChange.entity == entity,
                SyncChange.record_id == record_id,
            )
            .order_by(SyncChange.seq.desc())
            .limit(1)
        ).first()

    @staticmethod
    def _conflict(
        session: Session,
        actor: Principal,
        tenant_id: uuid.UUID,
        client_id: str,
        m: Mutation,
        name: str,
        *,
        server_value: Any,
        client_value: Any,
        row: Record,
        changed: SyncChange | None,
    ) -> dict[str, Any]:
        conflict = SyncConflict(
            tenant_id=tenant_id,
            entity=m.entity,
            record_id=m.record_id,
            field=name,
            base_version=m.base_version or 0,
            server_version=row.version,
            server_value=plain(server_value),
            client_value=orjson.loads(orjson.dumps(client_value, default=plain)),
            server_actor_id=changed.actor_id if changed else None,
            server_changed_at=changed.created_at if changed else None,
            user_id=actor.user_id,
            client_id=client_id,
            mutation_id=m.mutation_id,
        )
        session.add(conflict)
        session.flush()
        return conflict_view(conflict)

    # -- conflicts ----------------------------------------------------------------------------
    async def conflicts(
        self, actor: Principal, tenant_id: uuid.UUID, *, include_resolved: bool, everyone: bool
    ) -> list[dict[str, Any]]:
        if everyone and not actor.can(Capability.EDIT_ALL_RECORDS):
            raise PermissionDenied("Only administrators may list everyone's conflicts")

        def read(session: Session) -> list[dict[str, Any]]:
            query = select(SyncConflict).where(SyncConflict.tenant_id == tenant_id)
            if not everyone:
                query = query.where(SyncConflict.user_id == actor.user_id)
            if not include_resolved:
                query = query.where(SyncConflict.resolved_at.is_(None))
            rows = session.scalars(query.order_by(SyncConflict.created_at.desc()).limit(1000))
            return [conflict_view(c) for c in rows]

        return await self._db.run(read, tenant_id=tenant_id, write=False)

    async def resolve(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        conflict_id: uuid.UUID,
        resolution: str,
        value: Any = None,
    ) -> dict[str, Any]:
        if resolution not in ("keep_server", "take_mine", "custom"):
            raise Invalid(
                "Validation failed: resolution",
                details=[{"field": "resolution", "message": "keep_server, take_mine or custom"}],
            )

        def find(session: Session) -> SyncConflict:
            found = session.scalars(
                select(SyncConflict).where(
                    SyncConflict.tenant_id == tenant_id, SyncConflict.id == conflict_id
                )
            ).first()
            mine = found is not None and (
                found.user_id == actor.user_id or actor.can(Capability.EDIT_ALL_RECORDS)
            )
            if found is None or not mine:
                raise NotFound("Conflict not found", code="conflict_not_found")
            return found

        conflict = await self._db.run(find, tenant_id=tenant_id, write=False)
        if conflict.resolved_at is not None:
            raise Conflict("This conflict is already resolved", code="already_resolved")
        context: WriteContext | None = None
        values: dict[str, Any] = {}
        if resolution != "keep_server":
            chosen = conflict.client_value if resolution == "take_mine" else value
            if conflict.field == DELETED_FIELD:
                if not isinstance(chosen, dict):
                    raise Invalid("Restoring a deleted record takes its fields (an object)")
                values = dict(chosen)
            elif conflict.field.startswith("custom_fields."):
                values = {"custom_fields": {conflict.field.split(".", 1)[1]: chosen}}
            else:
                values = {conflict.field: chosen}
            context = await self._records.write_context(actor, tenant_id, conflict.entity, "update")
            values = self._records.update_data(context, _api_values(context, values), replace=False)

        def write(session: Session) -> dict[str, Any]:
            row = session.get(SyncConflict, conflict.id)
            if row is None or row.resolved_at is not None:
                raise Conflict("This conflict is already resolved", code="already_resolved")
            attribute(session, ChangeContext(actor.user_id, row.client_id, None))
            record: dict[str, Any] | None = None
            if context is not None:
                spec = context.spec
                target = self._records._load(
                    session, spec, actor, tenant_id, row.record_id, deleted=None
                )
                if target.deleted_at is not None:
                    target.deleted_at = None  # taking mine over a deletion restores the record
                    session.flush()
                record = self._records.update_in(
                    session, context, actor, tenant_id, row.record_id, values
                )
            row.resolved_at = utcnow()
            row.resolution = resolution
            row.resolved_by = actor.user_id
            row.resolved_value = plain(value) if resolution == "custom" else None
            session.flush()
            out = conflict_view(row)
            if record is not None:
                out["record"] = record
            return out

        return await self._db.run(write, tenant_id=tenant_id)

    # -- retention ----------------------------------------------------------------------------
    async def prune(self) -> int:
        """Drops change rows, stored push results and resolved conflicts older than the
        retention, tenant by tenant; returns how many change rows went."""
        cutoff = utcnow() - self._retention

        def work(session: Session) -> int:
            removed = 0
            tenants = session.scalars(select(SyncCounter.tenant_id)).all()
            for tenant_id in tenants:
                last = session.scalar(
                    select(func.max(SyncChange.seq)).where(
                        SyncChange.tenant_id == tenant_id, SyncChange.created_at < cutoff
                    )
                )
                if last is None:
                    continue
                result = session.execute(
                    delete(SyncChange).where(
                        SyncChange.tenant_id == tenant_id, SyncChange.seq <= last
                    )
                )
                removed += int(getattr(result, "rowcount", 0) or 0)
                session.execute(
                    update(SyncCounter)
                    .where(SyncCounter.tenant_id == tenant_id)
                    .values(pruned_seq=func.max(SyncCounter.pruned_seq, last))
                    if session.bind is not None and session.bind.dialect.name == "sqlite"
                    else update(SyncCounter)
                    .where(SyncCounter.tenant_id == tenant_id)
                    .values(pruned_seq=func.greatest(SyncCounter.pruned_seq, last))
                )
            session.execute(delete(SyncMutation).where(SyncMutation.created_at < cutoff))
            session.execute(
                delete(SyncConflict).where(
                    and_(SyncConflict.resolved_at.is_not(None), SyncConflict.resolved_at < cutoff)
                )
            )
            return removed

        return await self._db.run(work, system=True)

    async def head(self, tenant_id: uuid.UUID) -> int:
        def read(session: Session) -> int:
            counter = session.get(SyncCounter, tenant_id)
            return counter.last_seq if counter else 0

        return await self._db.run(read, tenant_id=tenant_id, write=False)


def _api_values(context: WriteContext, values: Mapping[str, Any]) -> dict[str, Any]:
    """Stored (JSON) values back to what the API models give services (UUIDs for links)."""
    out = dict(values)
    model = context.spec.model
    for name, value in values.items():
        column = model.__table__.c.get(name)
        if column is not None and value is not None and isinstance(value, str):
            python_type: Any
            try:
                python_type = column.type.python_type
            except NotImplementedError:
                continue
            if python_type is uuid.UUID:
                out[name] = uuid.UUID(value)
    return out


def conflict_view(c: SyncConflict) -> dict[str, Any]:
    return {
        "id": c.id,
        "entity_type": c.entity,
        "record_id": c.record_id,
        "field": c.field,
        "base_version": c.base_version,
        "server_version": c.server_version,
        "server_value": c.server_value,
        "client_value": c.client_value,
        "server_changed_by": c.server_actor_id,
        "server_changed_at": c.server_changed_at,
        "user_id": c.user_id,
        "client_id": c.client_id,
        "mutation_id": c.mutation_id,
        "created_at": c.created_at,
        "resolved_at": c.resolved_at,
        "resolution": c.resolution,
        "resolved_by": c.resolved_by,
        "resolved_value": c.resolved_value,
    }


class SyncNotifier:
    """Tells connected streams that their tenant's change log moved.  Fed by
    Database.on_commit (this instance's writes) and, on PostgreSQL, by LISTEN on the
    change log's NOTIFY channel (every instance's writes)."""

    def __init__(self) -> None:
        self._heads: dict[uuid.UUID, int] = {}
        self._subscribers: dict[uuid.UUID, set[asyncio.Queue[int]]] = {}

    def publish(self, heads: Mapping[uuid.UUID, int]) -> None:
        for tenant_id, seq in heads.items():
            if seq <= self._heads.get(tenant_id, 0):
                continue
            self._heads[tenant_id] = seq
            for queue in self._subscribers.get(tenant_id, ()):
                if queue.full():
                    queue.get_nowait()  # only the newest head matters
                queue.put_nowait(seq)

    def subscribe(self, tenant_id: uuid.UUID) -> asyncio.Queue[int]:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        self._subscribers.setdefault(tenant_id, set()).add(queue)
        return queue

    def unsubscribe(self, tenant_id: uuid.UUID, queue: asyncio.Queue[int]) -> None:
        subscribers = self._subscribers.get(tenant_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[tenant_id]

    def listeners(self) -> int:
        return sum(len(s) for s in self._subscribers.values())


def parse_notification(payload: str) -> dict[uuid.UUID, int]:
    tenant, _, seq = payload.partition(":")
    try:
        return {uuid.UUID(tenant): int(seq)}
    except ValueError:
        return {}


__all__ = [
    "ENTITY_ORDER",
    "ChangesPage",
    "Cursor",
    "Mutation",
    "SyncNotifier",
    "SyncService",
    "conflict_view",
    "in_scope",
    "parse_notification",
]
