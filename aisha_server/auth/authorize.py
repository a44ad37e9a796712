"""May this principal do that?  The guide's permission matrix (3.2) plus custom grants.

Every service asks here, so the answer is the same whichever endpoint is called:

* `require(principal, capability, grant=(resource, action))` raises `PermissionDenied`
  unless the role has the matrix capability or a custom permission covers the grant;
* `allows(principal, resource, action)` answers for a resource and an action, using
  `RULES` (which matrix row governs which action on which resource), custom grants, and,
  for API keys, the key's own permission strings.

Custom permission actions (`permissions.action`): `read`, `create`, `update`, `delete`,
`export`, `write` (= create, update and delete), `manage` and `*` (= everything).
"""

from __future__ import annotations

from collections.abc import Iterable

from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import MATRIX, Capability, Role
from aisha_server.errors import PermissionDenied

# Resource names of API key permissions and custom permissions: the first OpenAPI tag of
# an endpoint (or its `extra["resource"]`), which is what the auth middleware checks a key
# against.  A module that adds a resource adds its name here.
RECORD_RESOURCES: tuple[str, ...] = (
    "accounts",
    "activities",
    "ai-campaigns",
    "contacts",
    "leads",
    "notes",
    "opportunities",
    "workflows",
)
RESOURCES: frozenset[str] = frozenset(
    {
        *RECORD_RESOURCES,
        "ai",
        "api-keys",
        "care",
        "custom-fields",
        "employees",
        "entity-labels",
        "integrations",
        "metrics",
        "modules",
        "permissions",
        "reports",
        "sync",
        "system",
        "tenants",
        "users",
        "webhooks",
    }
)
# What an API key permission string may name ("<action>:<resource>").
KEY_ACTIONS: frozenset[str] = frozenset(
    {"read", "create", "update", "delete", "export", "write", "*"}
)
# What a custom permission (`permissions.action`) may name.
GRANT_ACTIONS: frozenset[str] = KEY_ACTIONS | {"manage"}
WRITE_ACTIONS = ("create", "update", "delete")
ALL_ACTIONS = ("read", "create", "update", "delete", "export")

EVERYONE: frozenset[Role] = frozenset(Role)
TENANT_ADMINS: frozenset[Role] = frozenset({Role.SUPERADMIN, Role.ADMIN})


def _rows(**actions: Capability | frozenset[Role]) -> dict[str, frozenset[Role]]:
    return {a: MATRIX[c] if isinstance(c, Capability) else c for a, c in actions.items()}


# Who may take which action on which resource, by role, before custom grants.  Data scope
# (own / department / tenant, guide 3.3) still narrows what reads and edits reach.
_RECORDS = _rows(
    read=EVERYONE,
    create=Capability.EDIT_OWN_RECORDS,
    update=Capability.EDIT_OWN_RECORDS,
    delete=Capability.DELETE_RECORDS,
    export=Capability.EXPORT_DATA,
)
_USER_ADMIN = _rows(
    read=Capability.USER_MANAGEMENT,
    create=Capability.USER_MANAGEMENT,
    update=Capability.USER_MANAGEMENT,
    delete=Capability.USER_MANAGEMENT,
    export=Capability.USER_MANAGEMENT,
)
_SYSTEM = _rows(
    read=Capability.SYSTEM_CONFIG,
    create=Capability.SYSTEM_CONFIG,
    update=Capability.SYSTEM_CONFIG,
    delete=Capability.SYSTEM_CONFIG,
    export=Capability.SYSTEM_CONFIG,
)
RULES: dict[str, dict[str, frozenset[Role]]] = {
    **{resource: _RECORDS for resource in RECORD_RESOURCES},
    # every tenant user reads their tenant's settings; admins configure it (guide 4.4);
    # creating and deleting tenants is the matrix's Tenant Management
    "tenants": _rows(
        read=EVERYONE,
        update=TENANT_ADMINS,
        create=Capability.TENANT_MANAGEMENT,
        delete=Capability.TENANT_MANAGEMENT,
    ),
    "users": _USER_ADMIN,
    "employees": {**_USER_ADMIN, "read": EVERYONE},
    # everyone has API access (employees read-only, enforced on the key's permissions);
    # whose keys one sees is decided by ApiKeyService
    "api-keys": _rows(read=EVERYONE, create=EVERYONE, delete=EVERYONE),
    "permissions": _SYSTEM,
    "system": {**_SYSTEM, "read": TENANT_ADMINS},
    "metrics": _rows(read=TENANT_ADMINS),
    "reports": _rows(read=Capability.ADVANCED_REPORTS, export=Capability.EXPORT_DATA),
    # every tenant user reads its entity labels and module settings; admins change them (4.4)
    "entity-labels": _rows(
        read=EVERYONE, create=TENANT_ADMINS, update=TENANT_ADMINS, delete=TENANT_ADMINS
    ),
    "modules": _rows(read=EVERYONE, update=TENANT_ADMINS),
    # every tenant user reads the field definitions (forms need them); admins define them
    "custom-fields": _rows(
        read=EVERYONE, create=TENANT_ADMINS, update=TENANT_ADMINS, delete=TENANT_ADMINS
    ),
}


def expand_action(action: str) -> tuple[str, ...]:
    """The concrete actions an action word stands for."""
    if action in ("*", "manage"):
        return ALL_ACTIONS
    if action == "write":
        return WRITE_ACTIONS
    return (action,)


def _grant_covers(grant: tuple[str, str], resource: str, action: str) -> bool:
    """Does one custom grant cover one concrete action on one resource?"""
    g_resource, g_action = grant
    if g_resource not in ("*", resource):
        return False
    if g_action in ("*", "manage"):
        return True
    return g_action == action or (g_action == "write" and action in WRITE_ACTIONS)


def has_grant(principal: Principal, resource: str, action: str) -> bool:
    """A custom permission of the principal's role or custom roles covers the action."""
    return all(
        any(_grant_covers(g, resource, a) for g in principal.custom_grants)
        for a in expand_action(action)
    )


def role_permits(role: Role, resource: str, action: str) -> bool:
    """The matrix alone (through `RULES`): no custom grants, no key scopes."""
    if role is Role.SUPERADMIN:
        return True
    rules = RULES.get(resource)
    if rules is None:
        return False
    return all(role in rules.get(a, frozenset()) for a in expand_action(action))


def allows(principal: Principal, resource: str, action: str) -> bool:
    if not all(principal.key_allows(a, resource) for a in expand_action(action)):
        return False
    return role_permits(principal.role, resource, action) or has_grant(principal, resource, action)


def require(
    principal: Principal,
    capability: Capability,
    *,
    grant: tuple[str, str] | None = None,
    message: str | None = None,
) -> None:
    """The role has the matrix capability, or a custom grant `(resource, action)` covers it."""
    if grant is not None:
        resource, action = grant
        if not all(principal.key_allows(a, resource) for a in expand_action(action)):
            raise PermissionDenied(
                f"API key lacks permission {action}:{resource}", code="api_key_scope"
            )
    if principal.can(capability):
        return
    if grant is not None and has_grant(principal, *grant):
        return
    raise PermissionDenied(message or f"Permission denied: {_label(capability)} is not allowed")


def require_allowed(
    principal: Principal, resource: str, action: str, *, message: str | None = None
) -> None:
    if not allows(principal, resource, action):
        raise PermissionDenied(message or f"Permission denied: {action} {resource}")


def permission_problem(value: str) -> str | None:
    """Why an API key permission string (`read:contacts`, `write:*`, `*`) is refused."""
    if value == "*":
        return None
    action, sep, resource = value.partition(":")
    if not sep or not action or not resource:
        return "must look like '<action>:<resource>' (e.g. 'read:contacts') or '*'"
    if action not in KEY_ACTIONS:
        return f"unknown action {action!r}; one of: {', '.join(sorted(KEY_ACTIONS))}"
    if resource != "*" and resource not in RESOURCES:
        return f"unknown resource {resource!r}; one of: *, {', '.join(sorted(RESOURCES))}"
    return None


def is_read_only(permissions: Iterable[str]) -> bool:
    return all(p.partition(":")[0] == "read" for p in permissions)


def _label(capability: Capability) -> str:
    return capability.value.replace("_", " ").capitalize()
