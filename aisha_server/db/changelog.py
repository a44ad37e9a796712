"""The change log: every committed change to a synced row, written in the same transaction.

A session `after_flush` hook looks at what the flush wrote — new, changed and deleted objects
of the synced models — and appends one `sync_changes` row per object with the changed fields
(old and new values), the record's scope after the change, and who made it (the session's
`ChangeContext`, set by the service that opened the unit of work).  Being a flush hook, no ORM
write path can bypass it: REST handlers, sync pushes, merges, conversions and workers all pass
through it.  Raw bulk writes (the CSV import's executemany/COPY) call `log_bulk` themselves:
the same rows, bound and written straight through the driver (`write_bound`).

Sequence numbers come from the tenant's `sync_counters` row, incremented in the same
transaction: the row lock makes every later writer of the tenant wait until this transaction
ends, so numbers become visible in commit order and a reader paging by `seq > cursor` can never
skip a change that commits late (on SQLite there is only one writer anyway).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Connection, Table, event, insert, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only

from aisha_server.db.base import utcnow
from aisha_server.db.models import (
    Account,
    Activity,
    CareAuditLog,
    CareState,
    Contact,
    CustomField,
    EntityLabel,
    Lead,
    ModuleSetting,
    Note,
    Opportunity,
)
from aisha_server.db.models.sync import SyncChange, SyncCounter

# model -> the entity name clients know it by
SYNCED: dict[type[Any], str] = {
    Account: "accounts",
    Contact: "contacts",
    Lead: "leads",
    Opportunity: "opportunities",
    Activity: "activities",
    Note: "notes",
    CustomField: "custom_fields",
    EntityLabel: "entity_labels",
    ModuleSetting: "module_settings",
    # read-only for replicas (admins and managers: services/sync.py `CARE_ENTITIES`)
    CareState: "care_states",
    CareAuditLog: "care_audit_log",
}
# Rows never changed once written: replicas pull the row itself, so their change rows carry
# no fields (an audit entry's fields would double the bytes every C.A.R.E. scan writes).
APPEND_ONLY = frozenset({"care_audit_log"})
MODELS: dict[str, type[Any]] = {name: model for model, name in SYNCED.items()}
# bookkeeping columns: carried by every change row already, or never meaningful to diff
SKIPPED = frozenset({"id", "tenant_id", "version", "created_at", "updated_at"})
NOTIFY_CHANNEL = "aisha_sync"


@dataclass(frozen=True)
class ChangeContext:
    """Who is writing: stamped on every change row of the unit of work."""

    actor_id: uuid.UUID | None = None
    client_id: str | None = None
    mutation_id: str | None = None


def attribute(session: Session, context: ChangeContext) -> None:
    """Stamp the changes this session writes from now on with `context`."""
    session.info["change_context"] = context


def heads(session: Session) -> dict[uuid.UUID, int]:
    """Tenant -> last sequence this session's transaction wrote (for notifications)."""
    found: dict[uuid.UUID, int] = session.info.get("sync_heads", {})
    return found


def plain(value: Any) -> Any:
    """A column value as JSON (what the API shows)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    return value


def _columns(model: type[Any]) -> list[tuple[str, str]]:
    """(attribute key, column name) of the model's diffable columns."""
    cached: list[tuple[str, str]] | None = _COLUMNS.get(model)
    if cached is None:
        cached = [
            (prop.key, prop.columns[0].name)
            for prop in inspect(model).column_attrs
            if prop.columns[0].name not in SKIPPED
        ]
        _COLUMNS[model] = cached
    return cached


_COLUMNS: dict[type[Any], list[tuple[str, str]]] = {}
_CHANGES: Table = SyncChange.__table__  # type: ignore[assignment]


def _entry(obj: Any, entity: str, op: str, changes: dict[str, Any]) -> dict[str, Any]:
    return {
        "entity": entity,
        "record_id": obj.id,
        "op": op,
        "version": getattr(obj, "version", 1),  # C.A.R.E. rows have none
        "changes": changes,
        "owner_id": getattr(obj, "owner_id", None),
        "assigned_to": getattr(obj, "assigned_to", None),
        "department": getattr(obj, "department", None),
        "tenant_id": obj.tenant_id,
    }


def _collect(session: Session) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for obj in session.new:
        entity = SYNCED.get(type(obj))
        if entity is None:
            continue
        changes = (
            {}
            if entity in APPEND_ONLY
            else {
                name: [None, plain(getattr(obj, key))]
                for key, name in _columns(type(obj))
                if getattr(obj, key) not in (None, {}, [])
            }
        )
        op = "delete" if getattr(obj, "deleted_at", None) is not None else "upsert"
        entries.append(_entry(obj, entity, op, changes))
    for obj in session.dirty:
        entity = SYNCED.get(type(obj))
        if entity is None:
            continue
        state = inspect(obj)
        changes = {}
        for key, name in _columns(type(obj)):
            history = state.attrs[key].history
            if not history.has_changes():
                continue
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            if old != new:
                changes[name] = [plain(old), plain(new)]
        if not changes:
            continue
        op = "delete" if getattr(obj, "deleted_at", None) is not None else "upsert"
        entries.append(_entry(obj, entity, op, changes))
    for obj in session.deleted:
        entity = SYNCED.get(type(obj))
        if entity is not None:
            entries.append(_entry(obj, entity, "delete", {}))
    return entries


def _next_seqs(session: Session, tenant_id: uuid.UUID, count: int) -> int:
    """Takes `count` numbers from the tenant's counter; returns the last one."""
    connection = session.connection()
    dialect = connection.dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table: Table = SyncCounter.__table__  # type: ignore[assignment]
    statement = (
        make(table)
        .values(tenant_id=tenant_id, last_seq=count, pruned_seq=0)
        .on_conflict_do_update(
            index_elements=[table.c.tenant_id],
            set_={"last_seq": table.c.last_seq + count},
        )
        .returning(table.c.last_seq)
    )
    return int(connection.execute(statement).scalar_one())


def log_rows(session: Session, entries: Iterable[Mapping[str, Any]]) -> None:
    """Append change rows: each entry has tenant_id, entity, record_id, op, version, changes
    and (optionally) owner_id, assigned_to, department.  Numbers, time and the session's
    ChangeContext are filled in here."""
    by_tenant: dict[uuid.UUID, list[Mapping[str, Any]]] = {}
    for entry in entries:
        by_tenant.setdefault(entry["tenant_id"], []).append(entry)
    if not by_tenant:
        return
    context: ChangeContext = session.info.get("change_context") or ChangeContext()
    connection = session.connection()
    now = utcnow()
    for tenant_id, items in by_tenant.items():
        last = _next_seqs(session, tenant_id, len(items))
        first = last - len(items) + 1
        rows = [
            {
                "tenant_id": tenant_id,
                "seq": first + i,
                "entity": item["entity"],
                "record_id": item["record_id"],
                "op": item["op"],
                "version": item["version"],
                "changes": item["changes"],
                "owner_id": item.get("owner_id"),
                "assigned_to": item.get("assigned_to"),
                "department": item.get("department"),
                "actor_id": context.actor_id,
                "client_id": context.client_id,
                "mutation_id": context.mutation_id,
                "created_at": now,
            }
            for i, item in enumerate(items)
        ]
        connection.execute(insert(_CHANGES), rows)
        _announce(session, tenant_id, last)


def _announce(session: Session, tenant_id: uuid.UUID, last: int) -> None:
    """Note the tenant's new head for the notifier (and on PostgreSQL for other instances)."""
    session.info.setdefault("sync_heads", {})[tenant_id] = last
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # delivered at commit, to every instance listening (none if this rolls back)
        connection.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": NOTIFY_CHANNEL, "payload": f"{tenant_id}:{last}"},
        )


# one bulk change row: record_id, op, version, changes (as JSON text), owner_id, assigned_to,
# department
BulkEntry = tuple[uuid.UUID, str, int, str, uuid.UUID | None, uuid.UUID | None, str | None]
_BULK_NAMES = (
    "tenant_id", "seq", "entity", "record_id", "op", "version", "changes", "owner_id",
    "assigned_to", "department", "actor_id", "client_id", "mutation_id", "created_at",
)  # fmt: skip


def log_bulk(
    session: Session, tenant_id: uuid.UUID, entity: str, entries: Sequence[BulkEntry]
) -> None:
    """`log_rows` for many rows of one tenant and entity, written straight through the driver
    (`write_bound`): the same change rows, without a Core statement's per-row parameter
    processing (bench_import: ~35-60 us per row before, a few now).  Each entry's `changes`
    is already JSON text (bulk writers serialise them with the rows, e.g. in worker
    processes)."""
    if not entries:
        return
    context: ChangeContext = session.info.get("change_context") or ChangeContext()
    connection = session.connection()
    dialect = connection.dialect

    def bound(name: str, value: Any) -> Any:
        processor = bind_processor(_CHANGES.c[name], dialect)
        return value if processor is None else processor(value)

    to_uuid = bind_processor(_CHANGES.c["record_id"], dialect) or (lambda value: value)
    last = _next_seqs(session, tenant_id, len(entries))
    seq = last - len(entries)
    tenant, actor = bound("tenant_id", tenant_id), bound("actor_id", context.actor_id)
    client_id, mutation_id = context.client_id, context.mutation_id
    created_at = bound("created_at", utcnow())
    rows = []
    for record_id, op, version, changes, owner_id, assigned_to, department in entries:
        seq += 1
        rows.append(
            (tenant, seq, entity, to_uuid(record_id), op, version, changes, to_uuid(owner_id),
             to_uuid(assigned_to), department, actor, client_id, mutation_id, created_at)
        )  # fmt: skip
    write_bound(connection, _CHANGES, _BULK_NAMES, rows)
    _announce(session, tenant_id, last)


def bind_processor(column: Column[Any], dialect: Any) -> Callable[[Any], Any] | None:
    """The column's own SQLAlchemy bind processor for `dialect` (None: values pass as they
    are); the processors need no connection."""
    processor: Callable[[Any], Any] | None = column.type.dialect_impl(dialect).bind_processor(
        dialect
    )
    return processor


def write_bound(
    connection: Connection, table: Table, names: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert rows already bound for the connection's driver (every value through its
    column's `bind_processor`), straight through the driver, in the connection's transaction:
    one prepared `executemany` on SQLite; on PostgreSQL a binary COPY into a temporary staging
    table and one `INSERT ... SELECT` (COPY FROM cannot target a table under row-level
    security; the INSERT is checked by the tenant policy like any other)."""
    if not rows:
        return
    dialect = connection.dialect
    preparer = dialect.identifier_preparer
    quoted_table = preparer.format_table(table)
    columns = ", ".join(preparer.quote(name) for name in names)
    driver: Any = connection.connection.driver_connection
    if dialect.name == "sqlite":
        marks = ", ".join("?" for _ in names)
        driver.executemany(f"INSERT INTO {quoted_table} ({columns}) VALUES ({marks})", rows)
        return
    stage = f"aisha_stage_{table.name}"
    await_only(
        driver.execute(f'CREATE TEMPORARY TABLE "{stage}" (LIKE {quoted_table}) ON COMMIT DROP')
    )
    await_only(driver.copy_records_to_table(stage, records=rows, columns=list(names)))
    await_only(
        driver.execute(
            f'INSERT INTO {quoted_table} ({columns}) SELECT {columns} FROM "{stage}";'
            f' DROP TABLE "{stage}"'
        )
    )


def _after_flush(session: Session, _flush_context: Any) -> None:
    entries = _collect(session)
    if entries:
        log_rows(session, entries)


event.listen(Session, "after_flush", _after_flush)
