"""The authenticated caller of a request: a user (JWT) or an API key acting for one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from aisha_server.auth.roles import (
    DATA_SCOPE,
    Capability,
    DataScope,
    Role,
    role_allows,
)

READ_ACTIONS = frozenset({"read", "list", "get"})


def _grant_matches(grant: str, action: str, resource: str) -> bool:
    """`read:contacts`, `read:*`, `*:contacts`, `*` and `write:x` (= create/update/delete)."""
    if grant == "*":
        return True
    g_action, _, g_resource = grant.partition(":")
    if g_resource not in ("*", resource):
        return False
    if g_action in ("*", action):
        return True
    return g_action == "write" and action in ("create", "update", "delete")


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    role: Role
    email: str = ""
    department: str | None = None
    session_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    # API key scope ("read:contacts" ...); None means "whatever the role allows"
    key_permissions: frozenset[str] | None = None
    # (resource, action) grants from role_permissions for the role and custom roles
    custom_grants: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    @property
    def is_superadmin(self) -> bool:
        return self.role is Role.SUPERADMIN

    @property
    def data_scope(self) -> DataScope:
        return DATA_SCOPE[self.role]

    def can(self, capability: Capability) -> bool:
        return role_allows(self.role, capability)

    def has_custom_grant(self, resource: str, action: str) -> bool:
        return any(r in ("*", resource) and a in ("*", action) for r, a in self.custom_grants)

    def key_allows(self, action: str, resource: str) -> bool:
        """API keys are refused outside their permissions; user tokens are not limited here."""
        if self.key_permissions is None:
            return True
        return any(_grant_matches(g, action, resource) for g in self.key_permissions)
