"""The replica's C.A.R.E. tables (schema v4): audit entries and states as pulled, and what
the dashboard reads of them - rollups for the charts, keyset pages of the audit log.

Audit entries and states reach administrators' and managers' replicas by the normal pull
(read-only: nothing here is ever pushed).  The server drops audit entries after its
retention without telling replicas (a bulk delete writes no change rows), so the replica
prunes its own by the same retention (`prune_audit`).  Times are stored as UTC ISO text
(`2026-11-25T09:30:00.000000+00:00`), so text order is time order and a day is the first
ten characters; days are UTC days."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from aisha_desktop.client.models import Change

AUDIT = "care_audit_log"
STATES = "care_states"
EVENT_TYPES = (
    "ESCALATION_DETECTED",
    "ACTION_ALLOWED",
    "ACTION_BLOCKED",
    "STATE_TRANSITION",
    "WORKFLOW_TRIGGERED",
)
STATE_NAMES = ("cold", "warm", "hot", "nurture", "stale", "won", "lost")


def utc_text(value: Any) -> str | None:
    """A server timestamp as the replica stores it (UTC, microseconds); None if it is none."""
    if value in (None, ""):
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _dumps(value: Any) -> str:
    return orjson.dumps(value if isinstance(value, Mapping) else {}).decode()


_UPSERT_AUDIT = (
    "INSERT INTO care_audit (id, created_at, event_type, entity_type, entity_id, "
    "action_origin, reason, trigger_type, metadata, gen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    # entries never change: a snapshot sending one again only confirms it
    "ON CONFLICT (id) DO UPDATE SET gen = excluded.gen"
)
_UPSERT_STATE = (
    "INSERT INTO care_state (id, entity_type, entity_id, current_state, previous_state, "
    "transitioned_at, transition_reason, metadata, gen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET entity_type = excluded.entity_type, "
    "entity_id = excluded.entity_id, current_state = excluded.current_state, "
    "previous_state = excluded.previous_state, transitioned_at = excluded.transitioned_at, "
    "transition_reason = excluded.transition_reason, metadata = excluded.metadata, "
    "gen = excluded.gen"
)


def _audit_values(data: Mapping[str, Any], gen: int) -> tuple[Any, ...]:
    metadata = data.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    trigger = metadata.get("trigger_type")
    return (
        str(data["id"]),
        utc_text(data.get("created_at")) or utc_text(datetime.now(UTC).isoformat()),
        str(data.get("event_type") or ""),
        str(data.get("entity_type") or ""),
        str(data.get("entity_id") or ""),
        data.get("action_origin"),
        data.get("reason"),
        str(trigger) if trigger not in (None, "") else None,
        _dumps(metadata),
        gen,
    )


def _state_values(data: Mapping[str, Any], gen: int) -> tuple[Any, ...]:
    return (
        str(data["id"]),
        str(data.get("entity_type") or ""),
        str(data.get("entity_id") or ""),
        str(data.get("current_state") or "cold"),
        data.get("previous_state"),
        utc_text(data.get("transitioned_at")),
        data.get("transition_reason"),
        _dumps(data.get("metadata")),
        gen,
    )


def apply_changes(db: sqlite3.Connection, changes: Iterable[Change], gen: int) -> None:
    """Apply pulled C.A.R.E. rows in the page's transaction (upserts in bulk, in order)."""
    audit: list[tuple[Any, ...]] = []
    states: list[tuple[Any, ...]] = []

    def flush() -> None:
        if audit:
            db.executemany(_UPSERT_AUDIT, audit)
            audit.clear()
        if states:
            db.executemany(_UPSERT_STATE, states)
            states.clear()

    for change in changes:
        if change.op == "delete" or change.data is None:
            flush()  # a later upsert of the same row must win
            name = "care_audit" if change.entity_type == AUDIT else "care_state"
            db.execute(f"DELETE FROM {name} WHERE id = ?", (change.id,))
        elif change.entity_type == AUDIT:
            audit.append(_audit_values(change.data, gen))
        else:
            states.append(_state_values(change.data, gen))
    flush()


def sweep(db: sqlite3.Connection, gen: int) -> None:
    """A snapshot of generation `gen` finished: rows it did not send are gone."""
    db.execute("DELETE FROM care_audit WHERE gen < ?", (gen,))
    db.execute("DELETE FROM care_state WHERE gen < ?", (gen,))


def prune_audit(db: sqlite3.Connection, before: datetime) -> int:
    """Drops audit entries older than `before` (the server's retention); returns how many."""
    cursor = db.execute(
        "DELETE FROM care_audit WHERE created_at < ?",
        (before.astimezone(UTC).isoformat(timespec="microseconds"),),
    )
    db.execute("DELETE FROM care_audit_daily WHERE n <= 0")
    db.execute("DELETE FROM care_audit_triggers WHERE n <= 0")
    return int(cursor.rowcount or 0)


# -- what the dashboard reads ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CareSummary:
    """The charts' data over `days` (oldest first, UTC), read from the rollups."""

    days: tuple[date, ...]
    per_day: Mapping[str, tuple[int, ...]]  # event type -> count per day
    triggers: tuple[tuple[str, int], ...]  # most escalations first
    states: tuple[tuple[str, int], ...]  # STATE_NAMES order, then any other
    entries: int  # audit entries the replica holds

    def total(self, event_type: str) -> int:
        return sum(self.per_day.get(event_type, ()))


def summary(db: sqlite3.Connection, last_day: date, days: int = 30, top: int = 8) -> CareSummary:
    span = tuple(last_day - timedelta(days=days - 1 - i) for i in range(days))
    first, last = span[0].isoformat(), span[-1].isoformat()
    index = {d.isoformat(): i for i, d in enumerate(span)}
    counts: dict[str, list[int]] = {event: [0] * days for event in EVENT_TYPES}
    for day, event_type, n in db.execute(
        "SELECT day, event_type, n FROM care_audit_daily WHERE day BETWEEN ? AND ? AND n > 0",
        (first, last),
    ):
        counts.setdefault(event_type, [0] * days)[index[day]] += int(n)
    triggers = tuple(
        (str(name), int(n))
        for name, n in db.execute(
            "SELECT trigger_type, sum(n) AS total FROM care_audit_triggers "
            "WHERE day BETWEEN ? AND ? GROUP BY trigger_type HAVING total > 0 "
            "ORDER BY total DESC, trigger_type LIMIT ?",
            (first, last, top),
        )
    )
    found = {
        str(s): int(n) for s, n in db.execute("SELECT state, n FROM care_state_counts WHERE n > 0")
    }
    order = [s for s in STATE_NAMES] + sorted(set(found) - set(STATE_NAMES))
    states = tuple((s, found.get(s, 0)) for s in order)
    entries = db.execute("SELECT coalesce(sum(n), 0) FROM care_audit_daily").fetchone()[0]
    return CareSummary(
        span, {k: tuple(v) for k, v in counts.items()}, triggers, states, int(entries)
    )


@dataclass(frozen=True, slots=True)
class AuditFilters:
    event_type: str | None = None
    entity_type: str | None = None
    action_origin: str | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    text: str = ""  # in the reason, trigger type or entity id (case-insensitive)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    created_at: str
    event_type: str
    entity_type: str
    entity_id: str
    action_origin: str | None
    reason: str | None
    trigger_type: str | None
    metadata: str  # JSON text, decoded only when shown in full


AuditKey = tuple[str, str]  # (created_at, id) of the last entry of a page


def audit_page(
    db: sqlite3.Connection, filters: AuditFilters, limit: int, after: AuditKey | None = None
) -> list[AuditEntry]:
    """Newest first, keyset on (created_at, id): a page costs its own rows, however deep."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("event_type", filters.event_type),
        ("entity_type", filters.entity_type),
        ("action_origin", filters.action_origin),
    ):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if filters.since is not None:
        where.append("created_at >= ?")
        params.append(filters.since.astimezone(UTC).isoformat(timespec="microseconds"))
    if filters.until is not None:
        where.append("created_at < ?")
        params.append(filters.until.astimezone(UTC).isoformat(timespec="microseconds"))
    text = filters.text.strip()
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(
            "(reason LIKE ? ESCAPE '\\' OR trigger_type LIKE ? ESCAPE '\\' "
            "OR entity_id LIKE ? ESCAPE '\\')"
        )
        params += [pattern, pattern, pattern]
    if after is not None:
        where.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params += [after[0], after[0], after[1]]
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = db.execute(
        "SELECT id, created_at, event_type, entity_type, entity_id, action_origin, reason, "
        f"trigger_type, metadata FROM care_audit {clause} "
        "ORDER BY created_at DESC, id DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [AuditEntry(*row) for row in rows]


__all__ = [
    "AUDIT",
    "EVENT_TYPES",
    "STATES",
    "STATE_NAMES",
    "AuditEntry",
    "AuditFilters",
    "AuditKey",
    "CareSummary",
    "apply_changes",
    "audit_page",
    "prune_audit",
    "summary",
    "sweep",
    "utc_text",
]
