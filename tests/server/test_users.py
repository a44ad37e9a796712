"""/api/users: bootstrap, create, list, get, update, delete, heartbeat, sync-from-auth."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from aisha_server import keys
from aisha_server.auth.tokens import digest
from aisha_server.db.models import ApiKey, AuthSession, Tenant
from tests.factories import DEFAULT_PASSWORD, SeededUser, make_tenant, make_user, open_session
from tests.factories import auth_headers as auth
from tests.server.user_helpers import rows, user_by_email, user_row

DENIED = "Access denied: Invalid tenant"


@dataclass
class World:
    app: Any
    a: Tenant
    b: Tenant
    admin_a: SeededUser
    admin_b: SeededUser
    employee_a: SeededUser
    manager_a: SeededUser
    user_b: SeededUser
    root: SeededUser


@pytest.fixture
async def world(client: Any) -> World:
    app = client.app
    a = await make_tenant(app, "Alpha", slug="alpha")
    b = await make_tenant(app, "Beta", slug="beta")
    return World(
        app=app,
        a=a,
        b=b,
        admin_a=await make_user(app, role="admin", tenant_id=a.id, email="admin@alpha.example.com"),
        admin_b=await make_user(app, role="admin", tenant_id=b.id, email="admin@beta.example.com"),
        employee_a=await make_user(
            app, role="employee", tenant_id=a.id, email="emp@alpha.example.com", first_name="Erin"
        ),
        manager_a=await make_user(
            app, role="manager", tenant_id=a.id, email="mgr@alpha.example.com"
        ),
        user_b=await make_user(app, role="employee", tenant_id=b.id, email="emp@beta.example.com"),
        root=await make_user(app, role="superadmin", email="root@aisha.example.com"),
    )


async def body_of(resp: Any) -> dict[str, Any]:
    data = await resp.json()
    assert isinstance(data, dict)
    return data


# -- bootstrap (guide 2.5 Option 2) ---------------------------------------------------------


async def test_bootstrap_creates_first_superadmin_then_closes(client: Any) -> None:
    guide_body = {"email": "Admin@Example.com", "password": "SecurePass123!", "role": "superadmin"}
    resp = await client.post("/api/users", json=guide_body)
    body = await body_of(resp)
    assert resp.status == 201, body
    created = body["data"]
    assert created["email"] == "admin@example.com"
    assert created["role"] == "superadmin"
    assert created["tenant_id"] is None
    assert created["status"] == "active"
    assert created["has_password"] is True
    assert "password_hash" not in created
    login = await client.post(
        "/api/auth/login", json={"email": "admin@example.com", "password": "SecurePass123!"}
    )
    assert login.status == 200

    again = await client.post(
        "/api/users",
        json={"email": "second@example.com", "password": "SecurePass123!", "role": "superadmin"},
    )
    assert again.status == 401
    # even a malformed body is answered 401 once the window is closed: nothing is parsed
    assert (await client.post("/api/users", json={})).status == 401
    assert await user_by_email(client.app, "second@example.com") is None


async def test_bootstrap_only_for_a_superadmin_with_password(client: Any) -> None:
    resp = await client.post(
        "/api/users", json={"email": "a@example.com", "password": "SecurePass123!", "role": "admin"}
    )
    assert resp.status == 422
    resp = await client.post(
        "/api/users",
        json={"email": "a@example.com", "role": "superadmin", "send_invitation": True},
    )
    assert resp.status == 422
    resp = await client.post(
        "/api/users", json={"email": "a@example.com", "password": "short", "role": "superadmin"}
    )
    assert resp.status == 422
    assert await user_by_email(client.app, "a@example.com") is None


async def test_bad_credentials_on_create_are_401_not_bootstrap(client: Any) -> None:
    resp = await client.post(
        "/api/users",
        json={"email": "x@example.com", "password": "SecurePass123!", "role": "superadmin"},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert resp.status == 401
    assert await user_by_email(client.app, "x@example.com") is None


# -- create ---------------------------------------------------------------------------------


async def test_admin_creates_user_with_password(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.post(
        "/api/users",
        json={
            "email": "John.Doe@Example.com",
            "first_name": "John",
            "last_name": "Doe",
            "role": "employee",
            "password": "SecurePass123!",
        },
        headers=headers,
    )
    body = await body_of(resp)
    assert resp.status == 201, body
    data = body["data"]
    assert data["tenant_id"] == str(world.a.id)
    assert data["status"] == "active"
    row = await user_row(world.app, uuid.UUID(data["id"]))
    assert row is not None and row.email == "john.doe@example.com"
    ok, _ = await world.app[keys.PASSWORDS].verify(row.password_hash, "SecurePass123!")
    assert ok


async def test_admin_create_guide_body_with_invitation(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.post(
        "/api/users",
        json={
            "email": "jane@example.com",
            "first_name": "Jane",
            "last_name": "Doe",
            "role": "manager",
            "tenant_id": str(world.a.id),
            "send_invitation": True,
            "custom_roles": ["financial_manager"],
        },
        headers=headers,
    )
    body = await body_of(resp)
    assert resp.status == 201, body
    assert body["data"]["status"] == "invited"
    assert body["data"]["has_password"] is False
    assert body["data"]["custom_roles"] == ["financial_manager"]


async def test_admin_may_name_own_tenant_by_slug(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.post(
        "/api/users",
        json={
            "email": "slug@example.com",
            "role": "employee",
            "tenant_id": "alpha",
            "password": "SecurePass123!",
        },
        headers=headers,
    )
    assert resp.status == 201, await resp.text()
    assert (await body_of(resp))["data"]["tenant_id"] == str(world.a.id)


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"email": "not-an-email", "role": "employee", "password": "SecurePass123!"}, 422),
        ({"email": "ok@example.com", "role": "employee", "password": "weak"}, 422),
        ({"email": "ok@example.com", "role": "employee"}, 422),
        (
            {
                "email": "ok@example.com",
                "role": "employee",
                "password": "SecurePass123!",
                "send_invitation": True,
            },
            422,
        ),
        ({"email": "ok@example.com", "role": "wizard", "password": "SecurePass123!"}, 422),
        ({"email": "ok@example.com", "password": "SecurePass123!"}, 422),
        (
            {
                "email": "ok@example.com",
                "role": "employee",
                "password": "SecurePass123!",
                "is_admin": True,
            },
            422,
        ),
        ({"email": 5, "role": "employee", "password": "SecurePass123!"}, 422),
        ({"email": "ok@example.com", "role": "employee", "send_invitation": "maybe"}, 422),
        ({"email": "ok@example.com", "role": "superadmin", "password": "SecurePass123!"}, 403),
    ],
)
async def test_admin_create_rejects_bad_input(
    client: Any, world: World, payload: dict[str, Any], status: int
) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.post("/api/users", json=payload, headers=headers)
    body = await body_of(resp)
    assert resp.status == status, body
    assert body["status"] == "error"
    assert await user_by_email(world.app, "ok@example.com") is None


async def test_create_malformed_json_is_400(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.post(
        "/api/users",
        data=b"{nope",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert resp.status == 400


async def test_duplicate_email_is_conflict(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.post(
        "/api/users",
        json={"email": "EMP@alpha.example.com", "role": "employee", "password": "SecurePass123!"},
        headers=headers,
    )
    body = await body_of(resp)
    assert resp.status == 409
    assert body["message"] == "A user with this email already exists"
    # a user of another tenant also owns its email: emails are global
    resp = await client.post(
        "/api/users",
        json={"email": "emp@beta.example.com", "role": "employee", "password": "SecurePass123!"},
        headers=headers,
    )
    assert resp.status == 409


async def test_admin_cannot_create_in_other_tenant(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    payload = {"email": "intruder@example.com", "role": "employee", "password": "SecurePass123!"}
    resp = await client.post(
        "/api/users", json={**payload, "tenant_id": str(world.b.id)}, headers=headers
    )
    body = await body_of(resp)
    assert resp.status == 403
    assert body["message"] == DENIED
    resp = await client.post(
        "/api/users", json=payload, headers={**headers, "X-Tenant-ID": str(world.b.id)}
    )
    assert resp.status == 403
    assert (await body_of(resp))["message"] == DENIED
    resp = await client.post(f"/api/users?tenant_id={world.b.id}", json=payload, headers=headers)
    assert resp.status == 403
    assert await user_by_email(world.app, "intruder@example.com") is None


async def test_non_admins_cannot_create(client: Any, world: World) -> None:
    for who in (world.manager_a, world.employee_a):
        headers = await auth(world.app, who)
        resp = await client.post(
            "/api/users",
            json={"email": "nope@example.com", "role": "employee", "password": "SecurePass123!"},
            headers=headers,
        )
        assert resp.status == 403
    assert await user_by_email(world.app, "nope@example.com") is None


async def test_superadmin_creates_anywhere_with_tenant_rules(client: Any, world: World) -> None:
    headers = await auth(world.app, world.root)
    resp = await client.post(
        "/api/users",
        json={
            "email": "b2@example.com",
            "role": "admin",
            "tenant_id": "beta",
            "password": "SecurePass123!",
        },
        headers=headers,
    )
    assert resp.status == 201
    assert (await body_of(resp))["data"]["tenant_id"] == str(world.b.id)
    # X-Tenant-ID names the tenant too
    resp = await client.post(
        "/api/users",
        json={"email": "b3@example.com", "role": "support", "password": "SecurePass123!"},
        headers={**headers, "X-Tenant-ID": str(world.b.id)},
    )
    assert resp.status == 201
    # tenant users need a tenant; superadmins must not have one
    resp = await client.post(
        "/api/users",
        json={"email": "b4@example.com", "role": "employee", "password": "SecurePass123!"},
        headers=headers,
    )
    assert resp.status == 422
    resp = await client.post(
        "/api/users",
        json={
            "email": "b5@example.com",
            "role": "superadmin",
            "tenant_id": str(world.a.id),
            "password": "SecurePass123!",
        },
        headers=headers,
    )
    assert resp.status == 422
    resp = await client.post(
        "/api/users",
        json={"email": "b6@example.com", "role": "superadmin", "password": "SecurePass123!"},
        headers=headers,
    )
    assert resp.status == 201
    assert (await body_of(resp))["data"]["tenant_id"] is None
    resp = await client.post(
        "/api/users",
        json={
            "email": "b7@example.com",
            "role": "employee",
            "tenant_id": str(uuid.uuid4()),
            "password": "SecurePass123!",
        },
        headers=headers,
    )
    assert resp.status == 404


async def test_api_key_needs_create_scope(client: Any, world: World) -> None:
    secret = "ak_" + uuid.uuid4().hex
    await _api_key(world, secret, ["read:users"])
    resp = await client.post(
        "/api/users",
        json={"email": "k@example.com", "role": "employee", "password": "SecurePass123!"},
        headers={"X-API-Key": secret},
    )
    assert resp.status == 403
    assert await user_by_email(world.app, "k@example.com") is None


# -- list -------------------------------------------------------------------------------------


async def test_admin_lists_own_tenant_only(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.get("/api/users", headers=headers)
    body = await body_of(resp)
    assert resp.status == 200, body
    emails = {u["email"] for u in body["data"]}
    assert emails == {"admin@alpha.example.com", "emp@alpha.example.com", "mgr@alpha.example.com"}
    assert body["pagination"] == {"limit": 50, "offset": 0, "total": 3}
    assert all("password_hash" not in u for u in body["data"])


async def test_list_filters_and_paging(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.get("/api/users", params={"q": "ERIN"}, headers=headers)
    assert [u["email"] for u in (await body_of(resp))["data"]] == ["emp@alpha.example.com"]
    resp = await client.get("/api/users", params={"q": "mgr@"}, headers=headers)
    assert [u["email"] for u in (await body_of(resp))["data"]] == ["mgr@alpha.example.com"]
    resp = await client.get("/api/users", params={"q": "%"}, headers=headers)
    assert (await body_of(resp))["pagination"]["total"] == 0
    resp = await client.get("/api/users", params={"role": "manager"}, headers=headers)
    assert [u["email"] for u in (await body_of(resp))["data"]] == ["mgr@alpha.example.com"]
    resp = await client.get("/api/users", params={"status": "disabled"}, headers=headers)
    assert (await body_of(resp))["pagination"]["total"] == 0
    resp = await client.get("/api/users", params={"limit": 2, "offset": 2}, headers=headers)
    page = await body_of(resp)
    assert page["pagination"] == {"limit": 2, "offset": 2, "total": 3}
    assert [u["email"] for u in page["data"]] == ["mgr@alpha.example.com"]
    for bad in (
        {"limit": 501},
        {"limit": 0},
        {"offset": -1},
        {"limit": "x"},
        {"role": "wizard"},
        {"status": "sleeping"},
    ):
        resp = await client.get("/api/users", params=bad, headers=headers)
        assert resp.status == 422, bad


async def test_list_needs_admin(client: Any, world: World) -> None:
    for who in (world.manager_a, world.employee_a):
        resp = await client.get("/api/users", headers=await auth(world.app, who))
        assert resp.status == 403
    assert (await client.get("/api/users")).status == 401


async def test_admin_naming_other_tenant_in_list_is_403(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.get("/api/users", params={"tenant_id": str(world.b.id)}, headers=headers)
    assert resp.status == 403
    assert (await body_of(resp))["message"] == DENIED
    resp = await client.get("/api/users", headers={**headers, "X-Tenant-ID": "beta"})
    assert resp.status == 403


async def test_superadmin_lists_all_or_one_tenant(client: Any, world: World) -> None:
    headers = await auth(world.app, world.root)
    resp = await client.get("/api/users", headers=headers)
    assert (await body_of(resp))["pagination"]["total"] == 6
    resp = await client.get("/api/users", params={"tenant_id": "beta"}, headers=headers)
    assert {u["email"] for u in (await body_of(resp))["data"]} == {
        "admin@beta.example.com",
        "emp@beta.example.com",
    }
    resp = await client.get("/api/users", headers={**headers, "X-Tenant-ID": str(world.a.id)})
    assert (await body_of(resp))["pagination"]["total"] == 3


# -- get ----------------------------------------------------------------------------------------


async def test_get_rules(client: Any, world: World) -> None:
    admin = await auth(world.app, world.admin_a)
    resp = await client.get(f"/api/users/{world.employee_a.id}", headers=admin)
    assert resp.status == 200
    assert (await body_of(resp))["data"]["email"] == "emp@alpha.example.com"
    # another tenant's user does not exist for this admin
    resp = await client.get(f"/api/users/{world.user_b.id}", headers=admin)
    assert resp.status == 404
    resp = await client.get(f"/api/users/{world.root.id}", headers=admin)
    assert resp.status == 404
    resp = await client.get("/api/users/not-a-uuid", headers=admin)
    assert resp.status == 404
    resp = await client.get(f"/api/users/{uuid.uuid4()}", headers=admin)
    assert resp.status == 404

    emp = await auth(world.app, world.employee_a)
    resp = await client.get(f"/api/users/{world.employee_a.id}", headers=emp)
    assert resp.status == 200
    resp = await client.get(f"/api/users/{world.manager_a.id}", headers=emp)
    assert resp.status == 404

    root = await auth(world.app, world.root)
    resp = await client.get(f"/api/users/{world.user_b.id}", headers=root)
    assert resp.status == 200


# -- update ------------------------------------------------------------------------------------


async def test_admin_updates_user(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.put(
        f"/api/users/{world.employee_a.id}",
        json={"first_name": "Erica", "role": "manager", "custom_roles": ["auditor"]},
        headers=headers,
    )
    body = await body_of(resp)
    assert resp.status == 200, body
    assert body["data"]["first_name"] == "Erica"
    assert body["data"]["role"] == "manager"
    assert body["data"]["version"] == 2
    row = await user_row(world.app, world.employee_a.id)
    assert row is not None and row.role == "manager" and row.custom_roles == ["auditor"]


async def test_admin_update_bad_input(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    target = f"/api/users/{world.employee_a.id}"
    cases: list[tuple[dict[str, Any], int]] = [
        ({"role": "superadmin"}, 403),
        ({"role": "wizard"}, 422),
        ({"status": "invited"}, 422),
        ({"email": "bad"}, 422),
        ({"email": "mgr@alpha.example.com"}, 409),
        ({"email": "emp@beta.example.com"}, 409),
        ({"tenant_id": str(world.b.id)}, 403),
        ({"first_name": 7}, 422),
        ({"unknown": 1}, 422),
        ({"password": "weak"}, 422),
    ]
    for payload, status in cases:
        resp = await client.put(target, json=payload, headers=headers)
        assert resp.status == status, (payload, await resp.text())
    row = await user_row(world.app, world.employee_a.id)
    assert row is not None and row.version == 1 and row.email == "emp@alpha.example.com"


async def test_admin_cannot_touch_other_tenants_user(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.put(
        f"/api/users/{world.user_b.id}", json={"first_name": "Hacked"}, headers=headers
    )
    assert resp.status == 404
    resp = await client.delete(f"/api/users/{world.user_b.id}", headers=headers)
    assert resp.status == 404
    resp = await client.put(
        f"/api/users/{world.user_b.id}",
        json={"first_name": "Hacked"},
        headers={**headers, "X-Tenant-ID": str(world.b.id)},
    )
    assert resp.status == 403
    row = await user_row(world.app, world.user_b.id)
    assert row is not None
    assert row.first_name == "Test" and row.deleted_at is None and row.version == 1


async def test_self_service_update(client: Any, world: World) -> None:
    headers = await auth(world.app, world.employee_a)
    me = f"/api/users/{world.employee_a.id}"
    resp = await client.put(me, json={"first_name": "Me", "last_name": "Myself"}, headers=headers)
    assert resp.status == 200
    assert (await body_of(resp))["data"]["last_name"] == "Myself"
    for payload in (
        {"role": "admin"},
        {"status": "disabled"},
        {"email": "new@alpha.example.com"},
        {"custom_roles": ["x"]},
    ):
        resp = await client.put(me, json=payload, headers=headers)
        assert resp.status == 403, payload
    resp = await client.put(
        f"/api/users/{world.manager_a.id}", json={"first_name": "X"}, headers=headers
    )
    assert resp.status == 404
    row = await user_row(world.app, world.employee_a.id)
    assert row is not None and row.role == "employee"


async def test_own_password_change_needs_current_password(client: Any, world: World) -> None:
    session_id, token = await open_session(world.app, world.employee_a)
    other_session, other_token = await open_session(world.app, world.employee_a)
    headers = {"Authorization": f"Bearer {token}"}
    me = f"/api/users/{world.employee_a.id}"
    resp = await client.put(me, json={"password": "N3w!Password"}, headers=headers)
    assert resp.status == 422
    resp = await client.put(
        me, json={"password": "N3w!Password", "current_password": "wrong"}, headers=headers
    )
    assert resp.status == 422
    before = await user_row(world.app, world.employee_a.id)
    assert before is not None
    resp = await client.put(
        me,
        json={"password": "N3w!Password", "current_password": DEFAULT_PASSWORD},
        headers=headers,
    )
    assert resp.status == 200, await resp.text()
    after = await user_row(world.app, world.employee_a.id)
    assert after is not None and after.password_hash != before.password_hash
    ok, _ = await world.app[keys.PASSWORDS].verify(after.password_hash, "N3w!Password")
    assert ok
    # this session survives, the other login of the same user is revoked
    assert (await client.get(me, headers=headers)).status == 200
    resp = await client.get(me, headers={"Authorization": f"Bearer {other_token}"})
    assert resp.status == 401
    sessions = await rows(
        world.app, select(AuthSession).where(AuthSession.user_id == world.employee_a.id)
    )
    revoked = {s.id for s in sessions if s.revoked_at is not None}
    assert revoked == {other_session}
    assert session_id not in revoked


async def test_admin_cannot_change_own_role_or_status(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    me = f"/api/users/{world.admin_a.id}"
    assert (await client.put(me, json={"role": "employee"}, headers=headers)).status == 403
    assert (await client.put(me, json={"status": "disabled"}, headers=headers)).status == 403
    assert (await client.put(me, json={"first_name": "Boss"}, headers=headers)).status == 200


async def test_disabling_revokes_sessions(client: Any, world: World) -> None:
    victim_headers = await auth(world.app, world.employee_a)
    me = f"/api/users/{world.employee_a.id}"
    assert (await client.get(me, headers=victim_headers)).status == 200
    admin = await auth(world.app, world.admin_a)
    resp = await client.put(me, json={"status": "disabled"}, headers=admin)
    assert resp.status == 200
    assert (await body_of(resp))["data"]["status"] == "disabled"
    assert (await client.get(me, headers=victim_headers)).status == 401
    sessions = await rows(
        world.app, select(AuthSession).where(AuthSession.user_id == world.employee_a.id)
    )
    assert sessions and all(s.revoked_at is not None for s in sessions)
    # re-enabling works; old sessions stay revoked
    resp = await client.put(me, json={"status": "active"}, headers=admin)
    assert resp.status == 200
    assert (await client.get(me, headers=victim_headers)).status == 401


# -- delete ------------------------------------------------------------------------------------


async def test_admin_soft_deletes_user(client: Any, world: World) -> None:
    victim_headers = await auth(world.app, world.employee_a)
    admin = await auth(world.app, world.admin_a)
    target = f"/api/users/{world.employee_a.id}"
    resp = await client.delete(target, headers=admin)
    body = await body_of(resp)
    assert resp.status == 200, body
    assert body["data"] == {"id": str(world.employee_a.id), "deleted": True}
    row = await user_row(world.app, world.employee_a.id)
    assert row is not None and row.deleted_at is not None and row.status == "disabled"
    assert (await client.get(target, headers=victim_headers)).status == 401
    assert (await client.get(target, headers=admin)).status == 404
    assert (await client.delete(target, headers=admin)).status == 404
    listed = await body_of(await client.get("/api/users", headers=admin))
    assert "emp@alpha.example.com" not in {u["email"] for u in listed["data"]}


async def test_readding_a_deleted_user_restores_the_account(client: Any, world: World) -> None:
    admin = await auth(world.app, world.admin_a)
    assert (await client.delete(f"/api/users/{world.employee_a.id}", headers=admin)).status == 200
    again = {
        "email": "Emp@Alpha.example.com",
        "first_name": "Erin",
        "last_name": "Again",
        "role": "manager",
        "password": "N3w!Password",
    }
    resp = await client.post("/api/users", json=again, headers=admin)
    body = await body_of(resp)
    assert resp.status == 201, body
    assert body["data"]["id"] == str(world.employee_a.id)  # the same account, back
    assert body["data"]["role"] == "manager" and body["data"]["status"] == "active"
    login = await client.post(
        "/api/auth/login", json={"email": "emp@alpha.example.com", "password": "N3w!Password"}
    )
    assert login.status == 200
    # another tenant's admin cannot take over the deleted account of tenant A
    assert (await client.delete(f"/api/users/{world.employee_a.id}", headers=admin)).status == 200
    other = await auth(world.app, world.admin_b)
    taken = await client.post(
        "/api/users", json={**again, "tenant_id": str(world.b.id)}, headers=other
    )
    assert taken.status == 409
    row = await user_row(world.app, world.employee_a.id)
    assert row is not None and row.tenant_id == world.a.id and row.deleted_at is not None


async def test_delete_rules(client: Any, world: World) -> None:
    admin = await auth(world.app, world.admin_a)
    resp = await client.delete(f"/api/users/{world.admin_a.id}", headers=admin)
    assert resp.status == 403
    manager = await auth(world.app, world.manager_a)
    resp = await client.delete(f"/api/users/{world.employee_a.id}", headers=manager)
    assert resp.status == 403
    for user in (world.admin_a, world.employee_a):
        row = await user_row(world.app, user.id)
        assert row is not None and row.deleted_at is None


# -- heartbeat and sync-from-auth -------------------------------------------------------------


async def test_heartbeat_sets_last_seen(client: Any, world: World) -> None:
    headers = await auth(world.app, world.employee_a)
    resp = await client.post("/api/users/heartbeat", headers=headers)
    body = await body_of(resp)
    assert resp.status == 200, body
    row = await user_row(world.app, world.employee_a.id)
    assert row is not None and row.last_seen_at is not None
    assert body["data"]["last_seen_at"].startswith(row.last_seen_at.isoformat()[:19])
    assert row.version == 1  # presence is not an edit
    root = await auth(world.app, world.root)
    assert (await client.post("/api/users/heartbeat", headers=root)).status == 200
    assert (await client.post("/api/users/heartbeat")).status == 401


async def test_heartbeat_and_sync_need_a_user(client: Any, world: World) -> None:
    secret = "ak_" + uuid.uuid4().hex
    await _api_key(world, secret, ["*"])
    resp = await client.post("/api/users/heartbeat", headers={"X-API-Key": secret})
    assert resp.status == 400
    resp = await client.post("/api/users/sync-from-auth", headers={"X-API-Key": secret})
    assert resp.status == 400


async def test_sync_from_auth_returns_fresh_own_record(client: Any, world: World) -> None:
    headers = await auth(world.app, world.manager_a)
    resp = await client.post("/api/users/sync-from-auth", headers=headers)
    body = await body_of(resp)
    assert resp.status == 200, body
    assert body["data"]["id"] == str(world.manager_a.id)
    assert body["data"]["email"] == "mgr@alpha.example.com"
    assert body["data"]["role"] == "manager"
    assert (await client.post("/api/users/sync-from-auth")).status == 401


async def _api_key(world: World, secret: str, permissions: list[str]) -> None:
    def write(session: Any) -> None:
        session.add(
            ApiKey(
                key=digest(secret),
                tenant_id=world.a.id,
                name="integration",
                permissions=permissions,
            )
        )

    await world.app[keys.DB].run(write, system=True)
