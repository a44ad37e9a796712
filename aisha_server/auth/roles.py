"""Roles, the guide's permission matrix (3.2) and data scope.

The matrix is data: `MATRIX[capability][role]`.  Custom permissions (`permissions` +
`role_permissions`, guide 3.2) add `(resource, action)` grants on top of it; see
`aisha_server.auth.principal.Principal.allows`.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SUPERADMIN = "superadmin"
    ADMIN = "admin"
    MANAGER = "manager"
    EMPLOYEE = "employee"
    SUPPORT = "support"


class Capability(StrEnum):
    """One row of the guide's permission matrix each."""

    SYSTEM_CONFIG = "system_config"
    TENANT_MANAGEMENT = "tenant_management"
    USER_MANAGEMENT = "user_management"
    VIEW_ALL_RECORDS = "view_all_records"
    EDIT_ALL_RECORDS = "edit_all_records"
    EDIT_TEAM_RECORDS = "edit_team_records"
    EDIT_OWN_RECORDS = "edit_own_records"
    DELETE_RECORDS = "delete_records"
    EXPORT_DATA = "export_data"
    ADVANCED_REPORTS = "advanced_reports"
    API_ACCESS = "api_access"


S, A, M, E, SUP = Role.SUPERADMIN, Role.ADMIN, Role.MANAGER, Role.EMPLOYEE, Role.SUPPORT

# Guide 3.2.  Footnotes: User Management for admins is within their tenant only; managers
# view department records only; employees have read-only API access (API keys).  Support
# (guide 1.1, "Read access") views its tenant's records and changes nothing.
MATRIX: dict[Capability, frozenset[Role]] = {
    Capability.SYSTEM_CONFIG: frozenset({S}),
    Capability.TENANT_MANAGEMENT: frozenset({S}),
    Capability.USER_MANAGEMENT: frozenset({S, A}),
    Capability.VIEW_ALL_RECORDS: frozenset({S, A, M, SUP}),
    Capability.EDIT_ALL_RECORDS: frozenset({S, A}),
    Capability.EDIT_TEAM_RECORDS: frozenset({S, A, M}),
    Capability.EDIT_OWN_RECORDS: frozenset({S, A, M, E}),
    Capability.DELETE_RECORDS: frozenset({S, A}),
    Capability.EXPORT_DATA: frozenset({S, A, M}),
    Capability.ADVANCED_REPORTS: frozenset({S, A, M}),
    Capability.API_ACCESS: frozenset({S, A, M, E, SUP}),
}


class DataScope(StrEnum):
    """Which records of a tenant a role sees (guide 3.3 "Employee Data Scope")."""

    ALL_TENANTS = "all_tenants"  # superadmin, in the tenant it names
    TENANT = "tenant"  # admin, support (read-only)
    DEPARTMENT = "department"  # manager
    OWN = "own"  # employee: owner_id or assigned_to is the user


DATA_SCOPE: dict[Role, DataScope] = {
    S: DataScope.ALL_TENANTS,
    A: DataScope.TENANT,
    SUP: DataScope.TENANT,
    M: DataScope.DEPARTMENT,
    E: DataScope.OWN,
}

# Which roles a role may hand out when it creates or edits users.
ASSIGNABLE_ROLES: dict[Role, frozenset[Role]] = {
    S: frozenset(Role),
    A: frozenset({A, M, E, SUP}),
}

# Custom permission actions and what an API key permission string looks like:
# "<action>:<resource>", e.g. "read:contacts", "write:*", "*".
ACTIONS = ("read", "create", "update", "delete", "export", "write", "manage")


def role_allows(role: Role, capability: Capability) -> bool:
    return role in MATRIX[capability]


def parse_role(value: str) -> Role | None:
    try:
        return Role(value)
    except ValueError:
        return None
