"""/api/employees (guide 3.3): CRUD, user links, data scope, cross-tenant attempts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.db.models import Employee, Tenant, User
from tests.factories import SeededUser, make_tenant, make_user
from tests.factories import auth_headers as auth
from tests.server.user_helpers import rows

DENIED = "Access denied: Invalid tenant"


@dataclass
class World:
    app: Any
    a: Tenant
    b: Tenant
    admin_a: SeededUser
    manager_a: SeededUser
    seller_a: SeededUser
    helper_a: SeededUser
    support_a: SeededUser
    admin_b: SeededUser
    seller_b: SeededUser
    root: SeededUser


@pytest.fixture
async def world(client: Any) -> World:
    app = client.app
    a = await make_tenant(app, "Alpha", slug="alpha")
    b = await make_tenant(app, "Beta", slug="beta")

    async def user(role: str, tenant: Tenant | None, email: str, **kw: Any) -> SeededUser:
        return await make_user(
            app, role=role, tenant_id=tenant.id if tenant else None, email=email, **kw
        )

    return World(
        app=app,
        a=a,
        b=b,
        admin_a=await user("admin", a, "admin@alpha.example.com", department="Office"),
        manager_a=await user(
            "manager", a, "mgr@alpha.example.com", department="Sales", last_name="Manager"
        ),
        seller_a=await user(
            "employee", a, "seller@alpha.example.com", department="Sales", first_name="Sam"
        ),
        helper_a=await user("employee", a, "helper@alpha.example.com", department="Support"),
        support_a=await user("support", a, "support@alpha.example.com"),
        admin_b=await user("admin", b, "admin@beta.example.com"),
        seller_b=await user("employee", b, "seller@beta.example.com", department="Sales"),
        root=await user("superadmin", None, "root@example.com"),
    )


async def bare_user(app: Any, tenant_id: uuid.UUID, email: str) -> uuid.UUID:
    """A user with no employee record yet (the factories create one for tenant users)."""

    def write(session: Session) -> uuid.UUID:
        row = User(tenant_id=tenant_id, email=email, role="employee", status="active")
        session.add(row)
        session.flush()
        return row.id

    return uuid.UUID(str(await app[keys.DB].run(write, system=True)))


async def employee_of(app: Any, user_id: uuid.UUID) -> Employee:
    found = await rows(app, select(Employee).where(Employee.user_id == user_id))
    assert len(found) == 1
    return found[0]


async def employees_in(app: Any, tenant_id: uuid.UUID) -> list[Employee]:
    return await rows(app, select(Employee).where(Employee.tenant_id == tenant_id))


def guide_body(tenant_id: uuid.UUID, user_email: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tenant_id": str(tenant_id),
        "first_name": "John",
        "last_name": "Doe",
        "department": "Sales",
        "title": "Account Executive",
        "phone": "+1-555-0123",
        "status": "active",
    }
    if user_email is not None:
        body["user_email"] = user_email
    return body


# -- create ---------------------------------------------------------------------------------


async def test_admin_creates_linked_employee_guide_example(client: Any, world: World) -> None:
    user_id = await bare_user(world.app, world.a.id, "john.doe@example.com")
    resp = await client.post(
        "/api/employees",
        json=guide_body(world.a.id, "John.Doe@Example.com"),
        headers=await auth(world.app, world.admin_a),
    )
    body = await resp.json()
    assert resp.status == 201, body
    data = body["data"]
    assert data["user_id"] == str(user_id)
    assert data["email"] == "john.doe@example.com"
    assert data["department"] == "Sales" and data["title"] == "Account Executive"
    assert data["tenant_id"] == str(world.a.id)
    assert data["version"] == 1


async def test_employee_without_login(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    body = guide_body(world.a.id, None)
    resp = await client.post(
        "/api/employees", json={**body, "email": "x@example.com"}, headers=headers
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["data"]["user_id"] is None
    # without any email, too
    resp = await client.post(
        "/api/employees", json={"first_name": "Anon", "department": "Ops"}, headers=headers
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["data"]["tenant_id"] == str(world.a.id)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"user_email": "nobody@example.com"}, 422),
        ({"user_email": "seller@beta.example.com"}, 422),  # a user of another tenant
        ({"user_email": "not an email"}, 422),
        ({"first_name": ""}, 422),
        ({"first_name": None}, 422),
        ({"status": "retired"}, 422),
        ({"salary": 10}, 422),
        ({"department": 5}, 422),
    ],
)
async def test_create_rejects_bad_input(
    client: Any, world: World, change: dict[str, Any], status: int
) -> None:
    before = len(await employees_in(world.app, world.a.id))
    resp = await client.post(
        "/api/employees",
        json={**guide_body(world.a.id, None), **change},
        headers=await auth(world.app, world.admin_a),
    )
    body = await resp.json()
    assert resp.status == status, body
    if "user_email" in change and "@" in change["user_email"]:
        assert body["message"] == "No user with this email in the tenant"
    assert len(await employees_in(world.app, world.a.id)) == before


async def test_create_conflicts(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    # the seller already has an employee record (email and link)
    resp = await client.post(
        "/api/employees", json=guide_body(world.a.id, "seller@alpha.example.com"), headers=headers
    )
    assert resp.status == 409
    resp = await client.post(
        "/api/employees",
        json={**guide_body(world.a.id, None), "email": "seller@alpha.example.com"},
        headers=headers,
    )
    assert resp.status == 409


async def test_create_cross_tenant_is_403_and_writes_nothing(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    before = len(await employees_in(world.app, world.b.id))
    resp = await client.post("/api/employees", json=guide_body(world.b.id, None), headers=headers)
    assert resp.status == 403
    assert (await resp.json())["message"] == DENIED
    body = guide_body(world.a.id, None)
    del body["tenant_id"]
    resp = await client.post(
        "/api/employees", json=body, headers={**headers, "X-Tenant-ID": str(world.b.id)}
    )
    assert resp.status == 403
    resp = await client.post("/api/employees?tenant_id=beta", json=body, headers=headers)
    assert resp.status == 403
    assert len(await employees_in(world.app, world.b.id)) == before


async def test_only_admins_create(client: Any, world: World) -> None:
    for who in (world.manager_a, world.seller_a, world.support_a):
        resp = await client.post(
            "/api/employees",
            json=guide_body(world.a.id, None),
            headers=await auth(world.app, who),
        )
        assert resp.status == 403
    resp = await client.post(
        "/api/employees",
        json=guide_body(world.b.id, None),
        headers=await auth(world.app, world.root),
    )
    assert resp.status == 201
    # a superadmin must say which tenant
    body = guide_body(world.a.id, None)
    del body["tenant_id"]
    resp = await client.post("/api/employees", json=body, headers=await auth(world.app, world.root))
    assert resp.status == 400


# -- read and data scope --------------------------------------------------------------------


async def _listed(client: Any, headers: dict[str, str], **params: Any) -> list[str]:
    resp = await client.get("/api/employees", params=params, headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    return sorted(e["email"] or "" for e in body["data"])


async def test_list_by_role(client: Any, world: World) -> None:
    all_a = sorted(
        [
            "admin@alpha.example.com",
            "mgr@alpha.example.com",
            "seller@alpha.example.com",
            "helper@alpha.example.com",
            "support@alpha.example.com",
        ]
    )
    assert await _listed(client, await auth(world.app, world.admin_a)) == all_a
    assert await _listed(client, await auth(world.app, world.support_a)) == all_a
    assert await _listed(client, await auth(world.app, world.manager_a)) == [
        "mgr@alpha.example.com",
        "seller@alpha.example.com",
    ]
    assert await _listed(client, await auth(world.app, world.seller_a)) == [
        "seller@alpha.example.com"
    ]
    root = await auth(world.app, world.root)
    assert len(await _listed(client, root)) == 7
    assert await _listed(client, root, tenant_id="beta") == [
        "admin@beta.example.com",
        "seller@beta.example.com",
    ]


async def test_list_filters_and_paging(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    assert await _listed(client, headers, department="sales") == [
        "mgr@alpha.example.com",
        "seller@alpha.example.com",
    ]
    assert await _listed(client, headers, q="sam") == ["seller@alpha.example.com"]
    assert await _listed(client, headers, q="MANAGER") == ["mgr@alpha.example.com"]
    assert await _listed(client, headers, status="terminated") == []
    resp = await client.get("/api/employees", params={"limit": 2, "offset": 4}, headers=headers)
    body = await resp.json()
    assert body["pagination"] == {"limit": 2, "offset": 4, "total": 5}
    assert len(body["data"]) == 1
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -3}, {"status": "retired"}):
        resp = await client.get("/api/employees", params=bad, headers=headers)
        assert resp.status == 422, bad


async def test_list_other_tenant_is_403(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.get(
        "/api/employees", params={"tenant_id": str(world.b.id)}, headers=headers
    )
    assert resp.status == 403
    assert (await resp.json())["message"] == DENIED
    resp = await client.get("/api/employees", headers={**headers, "X-Tenant-ID": "beta"})
    assert resp.status == 403
    assert (await client.get("/api/employees")).status == 401


async def test_get_by_scope(client: Any, world: World) -> None:
    seller = await employee_of(world.app, world.seller_a.id)
    helper = await employee_of(world.app, world.helper_a.id)
    foreign = await employee_of(world.app, world.seller_b.id)

    async def status(who: SeededUser, employee: Employee) -> int:
        resp = await client.get(f"/api/employees/{employee.id}", headers=await auth(world.app, who))
        return int(resp.status)

    assert await status(world.admin_a, seller) == 200
    assert await status(world.admin_a, foreign) == 404
    assert await status(world.support_a, helper) == 200
    assert await status(world.manager_a, seller) == 200
    assert await status(world.manager_a, helper) == 404
    assert await status(world.seller_a, seller) == 200
    assert await status(world.seller_a, helper) == 404
    assert await status(world.root, foreign) == 200
    resp = await client.get("/api/employees/nope", headers=await auth(world.app, world.admin_a))
    assert resp.status == 404


# -- update ------------------------------------------------------------------------------------


async def test_admin_updates_with_put_and_patch(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    helper = await employee_of(world.app, world.helper_a.id)
    resp = await client.put(
        f"/api/employees/{helper.id}",
        json={"title": "Lead", "phone": "+1-555-0199", "status": "on_leave"},
        headers=headers,
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"]["title"] == "Lead" and body["data"]["status"] == "on_leave"
    assert body["data"]["version"] == 2
    resp = await client.patch(
        f"/api/employees/{helper.id}", json={"last_name": "Helper"}, headers=headers
    )
    assert resp.status == 200
    assert (await resp.json())["data"]["title"] == "Lead"
    for bad in (
        {"status": "retired"},
        {"first_name": ""},
        {"user_email": "nobody@example.com"},
        {"email": "mgr@alpha.example.com"},
        {"nope": 1},
    ):
        resp = await client.patch(f"/api/employees/{helper.id}", json=bad, headers=headers)
        assert resp.status in (409, 422), bad
    row = await employee_of(world.app, world.helper_a.id)
    assert row.version == 3 and row.status == "on_leave"


async def test_department_change_moves_data_scope_at_once(client: Any, world: World) -> None:
    manager = await auth(world.app, world.manager_a)
    assert "seller@alpha.example.com" in await _listed(client, manager)  # cached principal: Sales
    mgr_employee = await employee_of(world.app, world.manager_a.id)
    resp = await client.put(
        f"/api/employees/{mgr_employee.id}",
        json={"department": "Support"},
        headers=await auth(world.app, world.admin_a),
    )
    assert resp.status == 200
    assert await _listed(client, manager) == [
        "helper@alpha.example.com",
        "mgr@alpha.example.com",
    ]


async def test_relink_and_unlink_user(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    new_user = await bare_user(world.app, world.a.id, "fresh@example.com")
    resp = await client.post(
        "/api/employees", json={"first_name": "Fresh", "email": "temp@example.com"}, headers=headers
    )
    employee_id = (await resp.json())["data"]["id"]
    resp = await client.patch(
        f"/api/employees/{employee_id}", json={"user_email": "fresh@example.com"}, headers=headers
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"]["user_id"] == str(new_user)
    assert body["data"]["email"] == "fresh@example.com"
    # another employee's user cannot be linked twice
    resp = await client.patch(
        f"/api/employees/{employee_id}",
        json={"user_email": "seller@alpha.example.com"},
        headers=headers,
    )
    assert resp.status == 409
    resp = await client.patch(
        f"/api/employees/{employee_id}", json={"user_email": ""}, headers=headers
    )
    assert resp.status == 200
    assert (await resp.json())["data"]["user_id"] is None


async def test_update_rules_and_cross_tenant(client: Any, world: World) -> None:
    seller = await employee_of(world.app, world.seller_a.id)
    foreign = await employee_of(world.app, world.seller_b.id)
    for who in (world.manager_a, world.seller_a, world.support_a):
        resp = await client.put(
            f"/api/employees/{seller.id}",
            json={"title": "Boss"},
            headers=await auth(world.app, who),
        )
        assert resp.status == 403
    admin = await auth(world.app, world.admin_a)
    resp = await client.put(f"/api/employees/{foreign.id}", json={"title": "Boss"}, headers=admin)
    assert resp.status == 404
    resp = await client.put(
        f"/api/employees/{foreign.id}",
        json={"title": "Boss", "tenant_id": str(world.b.id)},
        headers=admin,
    )
    assert resp.status == 403
    assert (await resp.json())["message"] == DENIED
    resp = await client.delete(f"/api/employees/{foreign.id}", headers=admin)
    assert resp.status == 404
    after = await employee_of(world.app, world.seller_b.id)
    assert after.title is None and after.deleted_at is None and after.version == 1
    mine = await employee_of(world.app, world.seller_a.id)
    assert mine.title is None


# -- delete -----------------------------------------------------------------------------------


async def test_soft_delete_and_recreate(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    helper = await employee_of(world.app, world.helper_a.id)
    resp = await client.delete(f"/api/employees/{helper.id}", headers=headers)
    assert resp.status == 200
    assert (await resp.json())["data"] == {"id": str(helper.id), "deleted": True}
    row = await employee_of(world.app, world.helper_a.id)
    assert row.deleted_at is not None
    assert (await client.get(f"/api/employees/{helper.id}", headers=headers)).status == 404
    assert "helper@alpha.example.com" not in await _listed(client, headers)
    assert (await client.delete(f"/api/employees/{helper.id}", headers=headers)).status == 404
    # the same person can be added again: the tombstoned row comes back
    resp = await client.post(
        "/api/employees",
        json={"first_name": "Back", "user_email": "helper@alpha.example.com"},
        headers=headers,
    )
    body = await resp.json()
    assert resp.status == 201, body
    assert body["data"]["first_name"] == "Back" and body["data"]["department"] is None
    for who in (world.manager_a, world.support_a, world.seller_a):
        resp = await client.delete(
            f"/api/employees/{body['data']['id']}", headers=await auth(world.app, who)
        )
        assert resp.status in (403, 404)
    assert (await employee_of(world.app, world.helper_a.id)).deleted_at is None
