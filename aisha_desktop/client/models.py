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
        )


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a record list; `next_cursor` fetches the next (None on the last)."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    limit: int | None
    offset: int | None
    total: int | None  # only when asked for (include_total=True)
