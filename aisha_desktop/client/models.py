"""Typed views of the server's answers that the client itself interprets (login, `me`,
record pages).  Records stay plain dicts: their fields vary by entity and custom fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def parse_time(data: Mapping[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def optional_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _strings(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    first_name: str
    last_name: str
    role: str
    tenant_id: str | None
    status: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> User:
        return cls(
            id=_text(data, "id"),
            email=_text(data, "email"),
            first_name=_text(data, "first_name"),
            last_name=_text(data, "last_name"),
            role=_text(data, "role"),
            tenant_id=optional_text(data, "tenant_id"),
            status=_text(data, "status"),
        )

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email


@dataclass(frozen=True, slots=True)
class Session:
    """A login: who, which server session, and until when the tokens hold."""

    user: User
    session_id: str
    expires_at: datetime | None  # of the access token
    refresh_expires_at: datetime | None  # of the session


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    slug: str
    status: str


@dataclass(frozen=True, slots=True)
class CurrentUser:
    """`GET /api/auth/me`: the caller, its tenant, role, data scope and permissions."""

    user: User | None
    tenant_id: str | None
    tenant: Tenant | None
    role: str
    data_scope: str
    permissions: tuple[str, ...]
    auth_type: str
    session_id: str | None
    # per CRM entity, the actions the server allows (read, create, update, delete, export);
    # None: an older server that does not say (offer everything; the server still decides)
    record_actions: Mapping[str, frozenset[str]] | None = None

    def may(self, entity: str, action: str) -> bool:
        """Whether the server said `action` on `entity` is allowed (True when it did not
        say)."""
        if self.record_actions is None:
            return True
        return action in self.record_actions.get(entity, frozenset())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CurrentUser:
        user = data.get("user")
        tenant = data.get("tenant")
        return cls(
            user=User.from_json(user) if isinstance(user, Mapping) else None,
            tenant_id=optional_text(data, "tenant_id"),
            tenant=Tenant(
                id=_text(tenant, "id"),
                name=_text(tenant, "name"),
                slug=_text(tenant, "slug"),
                status=_text(tenant, "status"),
            )
            if isinstance(tenant, Mapping)
            else None,
            role=_text(data, "role"),
            data_scope=_text(data, "data_scope"),
            permissions=_strings(data, "permissions"),
            auth_type=_text(data, "auth_type"),
            session_id=optional_text(data, "session_id"),
            record_actions=_actions(data.get("record_actions")),
        )


def _actions(value: Any) -> dict[str, frozenset[str]] | None:
    if not isinstance(value, Mapping):
        return None
    return {
        str(entity): frozenset(a for a in actions if isinstance(a, str))
        for entity, actions in value.items()
        if isinstance(actions, list)
    }


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a record list; `next_cursor` fetches the next (None on the last)."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    limit: int | None
    offset: int | None
    total: int | None  # only when asked for (include_total=True)


# -- sync ---------------------------------------------------------------------------------


def _mapping(data: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    return dict(value) if isinstance(value, Mapping) else None


@dataclass(frozen=True, slots=True)
class Change:
    """One row of a pull page: `op` is "upsert" (with `data`, the row as it is now) or
    "delete" (the row is gone or left the caller's scope)."""

    entity_type: str
    id: str
    op: str
    version: int | None
    seq: int
    data: dict[str, Any] | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Change:
        op = _text(data, "op")
        if (
            op not in ("upsert", "delete")
            or not _text(data, "entity_type")
            or not _text(data, "id")
        ):
            raise ValueError(f"not a sync change: {dict(data)!r}")
        row = _mapping(data, "data")
        if op == "upsert" and row is None:
            raise ValueError("an upsert change carries no data")
        return cls(
            entity_type=_text(data, "entity_type"),
            id=_text(data, "id"),
            op=op,
            version=optional_int(data, "version"),
            seq=optional_int(data, "seq") or 0,
            data=row,
        )


@dataclass(frozen=True, slots=True)
class ChangesPage:
    """`GET /api/sync/changes`: the page's changes and the cursor to ask from next.  A
    `snapshot` page belongs to a snapshot; the last one (`has_more` false) ends it."""

    changes: list[Change]
    cursor: str
    has_more: bool
    snapshot: bool


@dataclass(frozen=True, slots=True)
class MutationError:
    code: str
    message: str
    details: Any = None


@dataclass(frozen=True, slots=True)
class SyncConflict:
    """A field the server kept its own value of when a pushed edit clashed with it
    (`field` "_deleted": the record was deleted; `client_value` holds the edit's fields)."""

    id: str
    entity_type: str
    record_id: str
    field: str
    server_value: Any
    client_value: Any
    base_version: int | None
    server_version: int | None
    server_changed_by: str | None
    server_changed_at: datetime | None
    mutation_id: str | None
    created_at: datetime | None
    resolved_at: datetime | None
    resolution: str | None
    record: dict[str, Any] | None = None  # after a resolution: the record as it is now

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SyncConflict:
        return cls(
            id=_text(data, "id"),
            entity_type=_text(data, "entity_type"),
            record_id=_text(data, "record_id") or _text(data, "id"),
            field=_text(data, "field"),
            server_value=data.get("server_value"),
            client_value=data.get("client_value"),
            base_version=optional_int(data, "base_version"),
            server_version=optional_int(data, "server_version"),
            server_changed_by=optional_text(data, "server_changed_by"),
            server_changed_at=parse_time(data, "server_changed_at"),
            mutation_id=optional_text(data, "mutation_id"),
            created_at=parse_time(data, "created_at"),
            resolved_at=parse_time(data, "resolved_at"),
            resolution=optional_text(data, "resolution"),
            record=_mapping(data, "record"),
        )


@dataclass(frozen=True, slots=True)
class PushResult:
    """The outcome of one pushed mutation: "applied", "conflict" (the other fields applied;
    `conflicts` lists the ones the server kept) or "rejected" (`error` says why)."""

    mutation_id: str
    status: str
    entity_type: str
    id: str
    version: int | None
    record: dict[str, Any] | None
    conflicts: list[SyncConflict]
    error: MutationError | None
    replayed: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PushResult:
        status = _text(data, "status")
        if status not in ("applied", "conflict", "rejected") or not _text(data, "mutation_id"):
            raise ValueError(f"not a push result: {dict(data)!r}")
        raw_error = data.get("error")
        error = (
            MutationError(
                code=_text(raw_error, "code") or "rejected",
                message=_text(raw_error, "message"),
                details=raw_error.get("details"),
            )
            if isinstance(raw_error, Mapping)
            else None
        )
        raw_conflicts = data.get("conflicts")
        conflicts = (
            [SyncConflict.from_json(c) for c in raw_conflicts if isinstance(c, Mapping)]
            if isinstance(raw_conflicts, list)
            else []
        )
        return cls(
            mutation_id=_text(data, "mutation_id"),
            status=status,
            entity_type=_text(data, "entity_type"),
            id=_text(data, "id"),
            version=optional_int(data, "version"),
            record=_mapping(data, "record"),
            conflicts=conflicts,
            error=error,
            replayed=data.get("replayed") is True,
        )
