"""/api/permissions and /api/role-permissions (guide 3.2 "Custom Permissions"), both backends."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text

from aisha_server import keys
from aisha_server.auth.authorize import allows, has_grant
from aisha_server.db.models import Permission, RolePermission
from tests.factories import make_tenant, user_with_headers

GUIDE_PERMISSIONS = [
    {
        "name": "view_sensitive_data",
        "description": "View financial information",
        "resource": "accounts",
        "action": "read",
    },
    {
        "name": "bulk_delete",
        "description": "Perform bulk delete operations",
        "resource": "*",
        "action": "delete",
    },
]


async def _superadmin(app: Any) -> dict[str, str]:
    _, headers = await user_with_headers(app, "superadmin")
    return headers


async def _counts(app: Any) -> tuple[int, int]:
    def read(session: Any) -> tuple[int, int]:
        return (
            int(session.scalar(select(func.count()).select_from(Permission))),
            int(session.scalar(select(func.count()).select_from(RolePermission))),
        )

    return await app[keys.DB].run(read, system=True)


async def _create(client: Any, headers: dict[str, str], payload: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/api/permissions", json=payload, headers=headers)
    body = await resp.json()
    assert resp.status == 201, body
    return dict(body["data"])


async def test_superadmin_manages_permissions(client: Any) -> None:
    headers = await _superadmin(client.app)
    created = [await _create(client, headers, p) for p in GUIDE_PERMISSIONS]
    assert created[0]["resource"] == "accounts" and created[0]["roles"] == []

    resp = await client.post("/api/permissions", json=GUIDE_PERMISSIONS[0], headers=headers)
    assert resp.status == 409

    resp = await client.get("/api/permissions", headers=headers)
    listed = (await resp.json())["data"]
    assert [p["name"] for p in listed] == ["bulk_delete", "view_sensitive_data"]

    pid = created[0]["id"]
    resp = await client.put(
        f"/api/permissions/{pid}",
        json={"description": "Financial figures", "action": "export"},
        headers=headers,
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert (body["data"]["description"], body["data"]["action"]) == ("Financial figures", "export")
    resp = await client.put(
        f"/api/permissions/{pid}", json={"name": "bulk_delete"}, headers=headers
    )
    assert resp.status == 409

    resp = await client.post(
        "/api/role-permissions", json={"role": "auditor", "permission_id": pid}, headers=headers
    )
    assert resp.status == 201
    resp = await client.delete(f"/api/permissions/{pid}", headers=headers)
    assert resp.status == 200
    assert (await client.get(f"/api/permissions/{pid}", headers=headers)).status == 404
    assert (await client.delete(f"/api/permissions/{pid}", headers=headers)).status == 404
    assert await _counts(client.app) == (1, 0)  # its grant went with it


async def test_bad_permission_inputs(client: Any) -> None:
    app = client.app
    headers = await _superadmin(app)
    base = GUIDE_PERMISSIONS[0]
    cases: list[tuple[dict[str, Any], str]] = [
        ({**base, "resource": "spaceships"}, "resource"),
        ({**base, "action": "fly"}, "action"),
        ({**base, "name": ""}, "name"),
        ({**base, "name": 5}, "name"),
        ({k: v for k, v in base.items() if k != "resource"}, "resource"),
        ({**base, "owner": "me"}, "owner"),
    ]
    for payload, field in cases:
        resp = await client.post("/api/permissions", json=payload, headers=headers)
        body = await resp.json()
        assert resp.status == 422, (payload, body)
        assert field in [d["field"] for d in body["details"]], (payload, body)
    assert await _counts(app) == (0, 0)
    for pid in ("not-a-uuid", str(uuid.uuid4())):
        assert (await client.get(f"/api/permissions/{pid}", headers=headers)).status == 404
        resp = await client.put(f"/api/permissions/{pid}", json={"action": "read"}, headers=headers)
        assert resp.status == 404


async def test_grants_and_revocations(client: Any) -> None:
    app = client.app
    headers = await _superadmin(app)
    perm = await _create(client, headers, GUIDE_PERMISSIONS[0])
    grant = {"role": "financial_manager", "permission_id": perm["id"]}
    resp = await client.post("/api/role-permissions", json=grant, headers=headers)
    body = await resp.json()
    assert resp.status == 201, body
    assert body["data"]["permission"]["name"] == "view_sensitive_data"
    grant_id = body["data"]["id"]
    assert (await client.post("/api/role-permissions", json=grant, headers=headers)).status == 409
    resp = await client.post(
        "/api/role-permissions",
        json={"role": "manager", "permission_id": perm["id"]},
        headers=headers,
    )
    assert resp.status == 201

    for bad, status in (
        ({"role": "Financial Manager", "permission_id": perm["id"]}, 422),
        ({"role": "x", "permission_id": "nope"}, 422),
        ({"role": "x"}, 422),
        ({"role": "x", "permission_id": str(uuid.uuid4())}, 404),
    ):
        resp = await client.post("/api/role-permissions", json=bad, headers=headers)
        assert resp.status == status, bad

    resp = await client.get("/api/role-permissions", params={"role": "manager"}, headers=headers)
    assert [g["role"] for g in (await resp.json())["data"]] == ["manager"]
    resp = await client.get(f"/api/permissions/{perm['id']}", headers=headers)
    assert (await resp.json())["data"]["roles"] == ["financial_manager", "manager"]

    resp = await client.delete(f"/api/role-permissions/{grant_id}", headers=headers)
    assert resp.status == 200
    assert (await client.delete(f"/api/role-permissions/{grant_id}", headers=headers)).status == 404
    resp = await client.delete(
        "/api/role-permissions",
        params={"role": "manager", "permission_id": perm["id"]},
        headers=headers,
    )
    assert resp.status == 200
    assert await _counts(app) == (1, 0)


@pytest.mark.parametrize("role", ["admin", "manager", "employee", "support"])
async def test_only_superadmin_manages_permissions(client: Any, role: str) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, role, tenant.id)
    assert (await client.get("/api/permissions", headers=headers)).status == 403
    assert (await client.get("/api/role-permissions", headers=headers)).status == 403
    resp = await client.post("/api/permissions", json=GUIDE_PERMISSIONS[0], headers=headers)
    assert resp.status == 403
    assert await _counts(app) == (0, 0)


async def test_the_guides_sql_grants_a_custom_role(client: Any, backend: str) -> None:
    app = client.app
    # guide 3.2 as printed; SQLite has no database-side UUID default, so ids are given there
    if backend == "postgres":
        statements = [
            """INSERT INTO permissions (name, description, resource, action)
            VALUES
              ('view_sensitive_data', 'View financial information', 'accounts', 'read'),
              ('bulk_delete', 'Perform bulk delete operations', '*', 'delete')""",
            """INSERT INTO role_permissions (role, permission_id)
            SELECT 'financial_manager', id
            FROM permissions
            WHERE name = 'view_sensitive_data'""",
        ]
    else:
        new_id = "lower(hex(randomblob(16)))"
        statements = [
            f"""INSERT INTO permissions (id, name, description, resource, action)
            VALUES
              ({new_id}, 'view_sensitive_data', 'View financial information', 'accounts', 'read'),
              ({new_id}, 'bulk_delete', 'Perform bulk delete operations', '*', 'delete')""",
            f"""INSERT INTO role_permissions (id, role, permission_id)
            SELECT {new_id}, 'financial_manager', id
            FROM permissions
            WHERE name = 'view_sensitive_data'""",
        ]

    def run(session: Any) -> None:
        for sql in statements:
            session.execute(text(sql))

    await app[keys.DB].run(run, system=True)

    tenant = await make_tenant(app)
    _, fm_headers = await user_with_headers(
        app, "employee", tenant.id, custom_roles=["financial_manager"]
    )
    _, plain_headers = await user_with_headers(app, "employee", tenant.id)
    gate = app[keys.AUTH_GATE]
    fm = await gate.principal_for_token(fm_headers["Authorization"][7:])
    plain = await gate.principal_for_token(plain_headers["Authorization"][7:])
    assert fm.custom_grants == frozenset({("accounts", "read")})
    assert has_grant(fm, "accounts", "read") and not has_grant(plain, "accounts", "read")
    assert not has_grant(fm, "accounts", "delete")
    assert not allows(fm, "accounts", "delete")

    headers = await _superadmin(app)
    listed = (await (await client.get("/api/permissions", headers=headers)).json())["data"]
    assert {p["name"]: p["roles"] for p in listed} == {
        "bulk_delete": [],
        "view_sensitive_data": ["financial_manager"],
    }


async def test_grants_apply_at_once_and_revocation_too(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    headers = await _superadmin(app)
    _, ops = await user_with_headers(app, "employee", tenant.id, custom_roles=["ops"])
    _, admin = await user_with_headers(app, "admin", tenant.id)
    assert (await client.get("/api/system/metrics", headers=ops)).status == 403  # cached now
    assert (await client.get("/api/permissions", headers=admin)).status == 403

    metrics = await _create(
        client, headers, {"name": "read_metrics", "resource": "system", "action": "read"}
    )
    read_perms = await _create(
        client, headers, {"name": "audit_permissions", "resource": "permissions", "action": "read"}
    )
    grant = await client.post(
        "/api/role-permissions",
        json={"role": "ops", "permission_id": metrics["id"]},
        headers=headers,
    )
    assert grant.status == 201
    resp = await client.post(
        "/api/role-permissions",
        json={"role": "admin", "permission_id": read_perms["id"]},
        headers=headers,
    )
    assert resp.status == 201

    assert (await client.get("/api/system/metrics", headers=ops)).status == 200
    assert (await client.get("/api/permissions", headers=admin)).status == 200
    # read is not write: the grant does not let the admin create permissions
    resp = await client.post(
        "/api/permissions", json={"name": "x", "resource": "*", "action": "*"}, headers=admin
    )
    assert resp.status == 403

    grant_id = (await grant.json())["data"]["id"]
    assert (await client.delete(f"/api/role-permissions/{grant_id}", headers=headers)).status == 200
    assert (await client.get("/api/system/metrics", headers=ops)).status == 403
