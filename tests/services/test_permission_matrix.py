"""The guide's permission matrix (3.2), cell by cell, against `roles.MATRIX`, the authorizer's
rules and, where an endpoint exists for the row, the live HTTP answer on both backends.

The expectations are transcribed from the guide here, independently of `roles.py`.  Support
(guide 1.1, read access) is the fifth column: it views its tenant's records, changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from aisha_server.auth.authorize import allows, require, role_permits
from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import MATRIX, Capability, Role, role_allows
from aisha_server.errors import PermissionDenied
from tests.factories import make_tenant, user_with_headers

COLUMNS = (Role.SUPERADMIN, Role.ADMIN, Role.MANAGER, Role.EMPLOYEE, Role.SUPPORT)

# (guide row, capability, cells for: superadmin admin manager employee support)
GUIDE_MATRIX: tuple[tuple[str, Capability, str], ...] = (
    ("System Config", Capability.SYSTEM_CONFIG, "Y    N    N    N    N"),
    ("Tenant Management", Capability.TENANT_MANAGEMENT, "Y    N    N    N    N"),
    ("User Management", Capability.USER_MANAGEMENT, "Y    Y    N    N    N"),  # A: own tenant
    ("View All Records", Capability.VIEW_ALL_RECORDS, "Y    Y    Y    N    Y"),  # M: department
    ("Edit All Records", Capability.EDIT_ALL_RECORDS, "Y    Y    N    N    N"),
    ("Edit Team Records", Capability.EDIT_TEAM_RECORDS, "Y    Y    Y    N    N"),
    ("Edit Own Records", Capability.EDIT_OWN_RECORDS, "Y    Y    Y    Y    N"),
    ("Delete Records", Capability.DELETE_RECORDS, "Y    Y    N    N    N"),
    ("Export Data", Capability.EXPORT_DATA, "Y    Y    Y    N    N"),
    ("Advanced Reports", Capability.ADVANCED_REPORTS, "Y    Y    Y    N    N"),
    ("API Access", Capability.API_ACCESS, "Y    Y    Y    Y    Y"),  # E: read-only keys
)
EXPECTED: dict[Capability, dict[Role, bool]] = {
    cap: dict(zip(COLUMNS, (c == "Y" for c in cells.split()), strict=True))
    for _, cap, cells in GUIDE_MATRIX
}

# (resource, action) through which services ask `authorize.allows` for the row's right.
# The three record-scope rows are decided by data scope, not by a yes/no on an action.
PROBES: dict[Capability, tuple[str, str]] = {
    Capability.SYSTEM_CONFIG: ("permissions", "create"),
    Capability.TENANT_MANAGEMENT: ("tenants", "create"),
    Capability.USER_MANAGEMENT: ("users", "create"),
    Capability.EDIT_OWN_RECORDS: ("contacts", "update"),
    Capability.DELETE_RECORDS: ("contacts", "delete"),
    Capability.EXPORT_DATA: ("contacts", "export"),
    Capability.ADVANCED_REPORTS: ("reports", "read"),
    Capability.API_ACCESS: ("api-keys", "create"),
}

CELLS = [
    pytest.param(cap, role, EXPECTED[cap][role], id=f"{label}-{role.value}")
    for label, cap, _ in GUIDE_MATRIX
    for role in COLUMNS
]


def test_every_capability_is_a_row_of_the_guide() -> None:
    assert {cap for _, cap, _ in GUIDE_MATRIX} == set(Capability) == set(MATRIX)


@pytest.mark.parametrize(("capability", "role", "expected"), CELLS)
def test_matrix_cell(capability: Capability, role: Role, expected: bool) -> None:
    assert (role in MATRIX[capability]) is expected
    assert role_allows(role, capability) is expected
    probe = PROBES.get(capability)
    if probe is not None:
        assert role_permits(role, *probe) is expected


# -- the same cells over HTTP -------------------------------------------------------------


def _system_config(role: Role, tenant_id: uuid.UUID) -> tuple[str, str, dict[str, Any] | None]:
    body = {"name": f"probe_{role.value}", "resource": "contacts", "action": "read"}
    return "POST", "/api/permissions", body


def _tenant_management(role: Role, tenant_id: uuid.UUID) -> tuple[str, str, dict[str, Any] | None]:
    return "POST", "/api/tenants", {"name": f"Probe {role.value}"}


def _user_management(role: Role, tenant_id: uuid.UUID) -> tuple[str, str, dict[str, Any] | None]:
    return "GET", f"/api/users?tenant_id={tenant_id}", None


def _api_access(role: Role, tenant_id: uuid.UUID) -> tuple[str, str, dict[str, Any] | None]:
    body = {"name": "probe", "permissions": ["read:contacts"], "tenant_id": str(tenant_id)}
    return "POST", "/api/api-keys", body


HTTP_ROWS = [
    pytest.param(Capability.SYSTEM_CONFIG, _system_config, id="system-config"),
    pytest.param(Capability.TENANT_MANAGEMENT, _tenant_management, id="tenant-management"),
    pytest.param(Capability.USER_MANAGEMENT, _user_management, id="user-management"),
    pytest.param(Capability.API_ACCESS, _api_access, id="api-access"),
]


@pytest.mark.parametrize(("capability", "request_for"), HTTP_ROWS)
async def test_matrix_row_over_http(client: Any, capability: Capability, request_for: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    answers: dict[Role, int] = {}
    for role in COLUMNS:
        _, headers = await user_with_headers(
            app, role.value, None if role is Role.SUPERADMIN else tenant.id
        )
        method, path, body = request_for(role, tenant.id)
        resp = await client.request(method, path, json=body, headers=headers)
        answers[role] = resp.status
    expected = {role: ("2xx" if EXPECTED[capability][role] else 403) for role in COLUMNS}
    got = {role: ("2xx" if 200 <= s < 300 else s) for role, s in answers.items()}
    assert got == expected


# -- custom grants and key scopes on top of the matrix ------------------------------------


def _principal(
    role: Role, grants: set[tuple[str, str]] | None = None, key: set[str] | None = None
) -> Principal:
    return Principal(
        user_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        role=role,
        custom_grants=frozenset(grants or ()),
        key_permissions=frozenset(key) if key is not None else None,
    )


GRANT_CASES = [
    # (role, custom grants, key permissions, resource, action, allowed)
    (Role.EMPLOYEE, set(), None, "contacts", "delete", False),
    (Role.EMPLOYEE, {("contacts", "delete")}, None, "contacts", "delete", True),
    (Role.EMPLOYEE, {("*", "delete")}, None, "leads", "delete", True),
    (Role.EMPLOYEE, {("contacts", "write")}, None, "contacts", "delete", True),
    (Role.EMPLOYEE, {("contacts", "write")}, None, "contacts", "export", False),
    (Role.EMPLOYEE, {("contacts", "manage")}, None, "contacts", "export", True),
    (Role.EMPLOYEE, {("accounts", "*")}, None, "contacts", "delete", False),
    (Role.MANAGER, set(), None, "contacts", "update", True),
    (Role.MANAGER, set(), None, "contacts", "write", False),  # write includes delete
    (Role.SUPPORT, set(), None, "contacts", "write", False),
    (Role.ADMIN, set(), {"read:contacts"}, "contacts", "read", True),
    (Role.ADMIN, set(), {"read:contacts"}, "contacts", "update", False),
    (Role.ADMIN, set(), {"write:*"}, "contacts", "delete", True),
    (Role.ADMIN, set(), {"*"}, "tenants", "create", False),  # a key never exceeds its role
    (Role.SUPERADMIN, set(), None, "anything", "delete", True),
]


@pytest.mark.parametrize(("role", "grants", "key", "resource", "action", "allowed"), GRANT_CASES)
def test_allows_combines_matrix_grants_and_key_scope(
    role: Role,
    grants: set[tuple[str, str]],
    key: set[str] | None,
    resource: str,
    action: str,
    allowed: bool,
) -> None:
    assert allows(_principal(role, grants, key), resource, action) is allowed


def test_require_accepts_the_matrix_or_a_covering_grant() -> None:
    require(_principal(Role.SUPERADMIN), Capability.SYSTEM_CONFIG)
    with pytest.raises(PermissionDenied):
        require(_principal(Role.ADMIN), Capability.SYSTEM_CONFIG, grant=("permissions", "read"))
    auditor = _principal(Role.ADMIN, {("permissions", "read")})
    require(auditor, Capability.SYSTEM_CONFIG, grant=("permissions", "read"))
    with pytest.raises(PermissionDenied):
        require(auditor, Capability.SYSTEM_CONFIG, grant=("permissions", "create"))
    with pytest.raises(PermissionDenied):
        require(auditor, Capability.SYSTEM_CONFIG)  # no grant named: the matrix alone
    scoped = _principal(Role.ADMIN, key={"read:users"})
    require(scoped, Capability.USER_MANAGEMENT, grant=("users", "read"))
    with pytest.raises(PermissionDenied) as caught:
        require(scoped, Capability.USER_MANAGEMENT, grant=("users", "delete"))
    assert caught.value.message == "API key lacks permission delete:users"
