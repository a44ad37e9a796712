"""/api/api-keys (guide 3.4) and X-API-Key authentication, end to end on both backends."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.auth.tokens import digest
from aisha_server.db.base import utcnow
from aisha_server.db.models import ApiKey
from tests.factories import make_tenant, user_with_headers


async def _create_key(
    client: Any, headers: dict[str, str], permissions: list[str], **extra: Any
) -> dict[str, Any]:
    payload = {"name": "Integration Key", "permissions": permissions, **extra}
    resp = await client.post("/api/api-keys", json=payload, headers=headers)
    body = await resp.json()
    assert resp.status == 201, body
    return dict(body["data"])


async def _stored_key(app: Any, key_id: str) -> ApiKey:
    def read(session: Session) -> ApiKey:
        row = session.get(ApiKey, uuid.UUID(key_id))
        assert row is not None
        return row

    return await app[keys.DB].run(read, system=True)


async def _insert_key(app: Any, tenant_id: uuid.UUID, secret: str, **fields: Any) -> None:
    def write(session: Session) -> None:
        session.add(ApiKey(key=digest(secret), tenant_id=tenant_id, name="raw", **fields))

    await app[keys.DB].run(write, system=True)


async def test_key_is_returned_once_and_stored_as_its_digest(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    admin, headers = await user_with_headers(app, "admin", tenant.id)
    created = await _create_key(client, headers, ["read:contacts", "read:tenants", "read:contacts"])
    secret = created["key"]
    assert secret.startswith("ak_") and len(secret) > 40
    assert created["key_prefix"] == secret[:10]
    assert created["permissions"] == ["read:contacts", "read:tenants"]
    assert (created["status"], created["tenant_id"], created["user_id"]) == (
        "active",
        str(tenant.id),
        None,
    )
    assert created["created_by"] == str(admin.id)
    row = await _stored_key(app, created["id"])
    assert row.key == digest(secret) != secret

    resp = await client.get("/api/api-keys", headers=headers)
    raw = await resp.text()
    listed = (await resp.json())["data"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert secret not in raw and digest(secret) not in raw


async def test_key_permissions_are_enforced_per_endpoint(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    created = await _create_key(client, headers, ["read:users", "read:tenants", "read:api-keys"])
    key = {"X-API-Key": created["key"]}

    assert (await client.get("/api/users", headers=key)).status == 200
    assert (await client.get(f"/api/tenants/{tenant.id}", headers=key)).status == 200
    assert (await client.get("/api/api-keys", headers=key)).status == 200

    resp = await client.post(
        "/api/users",
        json={"email": "x@example.com", "first_name": "X", "last_name": "Y", "role": "employee"},
        headers=key,
    )
    body = await resp.json()
    assert resp.status == 403
    assert body["message"] == "API key lacks permission create:users"
    resp = await client.post(
        "/api/api-keys", json={"name": "more", "permissions": ["read:users"]}, headers=key
    )
    assert resp.status == 403
    resp = await client.put(f"/api/tenants/{tenant.id}", json={"timezone": "UTC"}, headers=key)
    assert resp.status == 403
    # a key without read:contacts gets nothing from tenants it is not scoped to either
    assert (await client.get("/api/tenants", headers=key)).status == 403


async def test_key_of_one_tenant_cannot_name_another(client: Any) -> None:
    app = client.app
    own = await make_tenant(app)
    other = await make_tenant(app, slug="other-co")
    _, headers = await user_with_headers(app, "admin", own.id)
    created = await _create_key(client, headers, ["*"])
    key = {"X-API-Key": created["key"]}
    for path, extra in (
        (f"/api/tenants/{other.id}", {}),
        ("/api/tenants/other-co", {}),
        ("/api/api-keys", {"X-Tenant-ID": str(other.id)}),
        (f"/api/api-keys?tenant_id={other.id}", {}),
    ):
        resp = await client.get(path, headers={**key, **extra})
        body = await resp.json()
        assert resp.status == 403, path
        assert body["message"] == "Access denied: Invalid tenant"
    resp = await client.post(
        "/api/api-keys",
        json={"name": "x", "permissions": ["read:contacts"], "tenant_id": str(other.id)},
        headers=key,
    )
    assert resp.status == 403


async def test_expired_revoked_and_unknown_keys_are_401(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    await _insert_key(
        app,
        tenant.id,
        "ak_expired",
        permissions=["*"],
        expires_at=utcnow() - timedelta(minutes=1),
    )
    resp = await client.get("/api/api-keys", headers={"X-API-Key": "ak_expired"})
    assert resp.status == 401
    assert (await resp.json())["message"] == "API key has expired"

    resp = await client.get("/api/api-keys", headers={"X-API-Key": "ak_never_issued"})
    assert resp.status == 401
    assert (await resp.json())["message"] == "Invalid API key"

    _, headers = await user_with_headers(app, "admin", tenant.id)
    created = await _create_key(client, headers, ["read:api-keys"])
    key = {"X-API-Key": created["key"]}
    assert (await client.get("/api/api-keys", headers=key)).status == 200  # now cached
    resp = await client.delete(f"/api/api-keys/{created['id']}", headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"]["status"] == "revoked" and body["data"]["revoked_at"]
    resp = await client.get("/api/api-keys", headers=key)
    assert resp.status == 401
    assert (await resp.json())["message"] == "API key has been revoked"
    # revoking again changes nothing
    resp = await client.delete(f"/api/api-keys/{created['id']}", headers=headers)
    assert resp.status == 200
    assert (await resp.json())["data"]["revoked_at"] == body["data"]["revoked_at"]


async def test_key_inserted_with_the_guides_sql_works_once_key_holds_the_digest(
    client: Any, backend: str
) -> None:
    app = client.app
    tenant = await make_tenant(app)
    secret = str(uuid.uuid4())  # the guide generates the key with New-Guid
    # guide 3.4, placeholders aside (SQLite has no database-side UUID default, so an id
    # is given there; PostgreSQL runs the statement as printed)
    if backend == "postgres":
        sql = (
            "INSERT INTO api_keys (key, tenant_id, name, permissions, expires_at) "
            "VALUES (:key, :tenant, 'Integration Key', '[\"read:contacts\",\"read:tenants\"]', "
            "'2099-01-01')"
        )
        params = {"key": digest(secret), "tenant": str(tenant.id)}
    else:
        sql = (
            "INSERT INTO api_keys (id, key, tenant_id, name, permissions, expires_at) "
            "VALUES (:id, :key, :tenant, 'Integration Key', '[\"read:contacts\",\"read:tenants\"]', "
            "'2099-01-01 00:00:00')"
        )
        params = {"id": uuid.uuid4().hex, "key": digest(secret), "tenant": tenant.id.hex}
    await app[keys.DB].run(lambda s: s.execute(text(sql), params), system=True)

    resp = await client.get(f"/api/tenants/{tenant.id}", headers={"X-API-Key": secret})
    assert resp.status == 200, await resp.text()
    assert (await client.get("/api/api-keys", headers={"X-API-Key": secret})).status == 403
    # the plaintext in the column (the guide's literal snippet) is not a usable key
    plain = str(uuid.uuid4())

    def insert_plain(session: Session) -> None:
        session.add(ApiKey(key=plain, tenant_id=tenant.id, name="plain", permissions=["*"]))

    await app[keys.DB].run(insert_plain, system=True)
    resp = await client.get(f"/api/tenants/{tenant.id}", headers={"X-API-Key": plain})
    assert resp.status == 401


async def test_bad_key_requests_are_422_naming_the_field(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    other = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    stranger, _ = await user_with_headers(app, "employee", other.id)
    past = (utcnow() - timedelta(days=1)).isoformat()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"permissions": ["read"]}, "permissions.0"),
        ({"permissions": ["fly:contacts"]}, "permissions.0"),
        ({"permissions": ["read:contacts", "read:spaceships"]}, "permissions.1"),
        ({"permissions": []}, "permissions"),
        ({"permissions": "read:contacts"}, "permissions"),
        ({"permissions": [7]}, "permissions.0"),
        ({"permissions": ["read:contacts"], "expires_at": past}, "expires_at"),
        ({"permissions": ["read:contacts"], "expires_at": "tomorrow"}, "expires_at"),
        ({"permissions": ["read:contacts"], "user_id": str(stranger.id)}, "user_id"),
        ({"permissions": ["read:contacts"], "user_id": "nobody"}, "user_id"),
        ({"permissions": ["read:contacts"], "name": ""}, "name"),
        ({"permissions": ["read:contacts"], "scope": "all"}, "scope"),
    ]
    for extra, field in cases:
        payload = {"name": "k", **extra}
        resp = await client.post("/api/api-keys", json=payload, headers=headers)
        body = await resp.json()
        assert resp.status == 422, (extra, body)
        assert field in [d["field"] for d in body["details"]], (extra, body)
    resp = await client.get("/api/api-keys", headers=headers)
    assert (await resp.json())["data"] == []


async def test_employee_keys_are_read_only(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    employee, emp_headers = await user_with_headers(app, "employee", tenant.id)

    for perms in (["write:contacts"], ["read:contacts", "delete:notes"], ["*"], ["*:contacts"]):
        resp = await client.post(
            "/api/api-keys",
            json={"name": "k", "permissions": perms, "user_id": str(employee.id)},
            headers=admin,
        )
        body = await resp.json()
        assert resp.status == 422, (perms, body)
        assert body["details"][0]["field"] == "permissions"
        resp = await client.post(
            "/api/api-keys", json={"name": "k", "permissions": perms}, headers=emp_headers
        )
        assert resp.status == 422, perms

    for_employee = await _create_key(client, admin, ["read:tenants"], user_id=str(employee.id))
    assert for_employee["user_id"] == str(employee.id)
    own = await _create_key(client, emp_headers, ["read:tenants", "read:api-keys"])
    assert own["user_id"] == str(employee.id) and own["created_by"] == str(employee.id)
    key = {"X-API-Key": own["key"]}
    assert (await client.get(f"/api/tenants/{tenant.id}", headers=key)).status == 200


async def test_non_admins_see_and_revoke_only_their_own_keys(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    admin, admin_headers = await user_with_headers(app, "admin", tenant.id)
    manager, mgr_headers = await user_with_headers(app, "manager", tenant.id)
    admin_key = await _create_key(client, admin_headers, ["*"])
    mine = await _create_key(client, mgr_headers, ["write:contacts", "read:contacts"])
    assert mine["user_id"] == str(manager.id)

    resp = await client.get("/api/api-keys", headers=mgr_headers)
    assert [k["id"] for k in (await resp.json())["data"]] == [mine["id"]]
    resp = await client.get("/api/api-keys", headers=admin_headers)
    assert {k["id"] for k in (await resp.json())["data"]} == {mine["id"], admin_key["id"]}

    resp = await client.delete(f"/api/api-keys/{admin_key['id']}", headers=mgr_headers)
    assert resp.status == 404
    assert (await _stored_key(app, admin_key["id"])).revoked_at is None
    resp = await client.post(
        "/api/api-keys",
        json={"name": "k", "permissions": ["read:contacts"], "user_id": str(admin.id)},
        headers=mgr_headers,
    )
    assert resp.status == 403
    resp = await client.delete(f"/api/api-keys/{mine['id']}", headers=mgr_headers)
    assert resp.status == 200


async def test_revoke_of_unknown_or_foreign_key_is_404_and_changes_nothing(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    other = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    _, other_headers = await user_with_headers(app, "admin", other.id)
    foreign = await _create_key(client, other_headers, ["read:contacts"])
    for key_id in (foreign["id"], str(uuid.uuid4()), "not-a-uuid"):
        resp = await client.delete(f"/api/api-keys/{key_id}", headers=headers)
        assert resp.status == 404, key_id
    assert (await _stored_key(app, foreign["id"])).revoked_at is None
    key = {"X-API-Key": foreign["key"]}
    assert (await client.get(f"/api/tenants/{other.id}", headers=key)).status == 403  # scope
    resp = await client.delete(
        f"/api/api-keys/{foreign['id']}", headers={**headers, "X-Tenant-ID": str(other.id)}
    )
    assert resp.status == 403


async def test_superadmin_names_the_tenant(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app, slug="named-co")
    _, headers = await user_with_headers(app, "superadmin")
    resp = await client.post(
        "/api/api-keys", json={"name": "k", "permissions": ["read:contacts"]}, headers=headers
    )
    assert resp.status == 400
    created = await _create_key(client, headers, ["read:contacts"], tenant_id="named-co")
    assert created["tenant_id"] == str(tenant.id)
    resp = await client.get("/api/api-keys", params={"tenant_id": str(tenant.id)}, headers=headers)
    assert [k["id"] for k in (await resp.json())["data"]] == [created["id"]]
    resp = await client.delete(
        f"/api/api-keys/{created['id']}", params={"tenant_id": "named-co"}, headers=headers
    )
    assert resp.status == 200


async def test_a_key_cannot_mint_a_wider_key(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    minter = await _create_key(client, headers, ["create:api-keys", "read:contacts"])
    key = {"X-API-Key": minter["key"]}
    for perms in (["*"], ["read:*"], ["write:contacts"], ["read:users"]):
        resp = await client.post(
            "/api/api-keys", json={"name": "wider", "permissions": perms}, headers=key
        )
        assert resp.status == 403, perms
    resp = await client.post(
        "/api/api-keys", json={"name": "same", "permissions": ["read:contacts"]}, headers=key
    )
    assert resp.status == 201

    def count(session: Session) -> int:
        return len(list(session.scalars(select(ApiKey.id).where(ApiKey.tenant_id == tenant.id))))

    assert await app[keys.DB].run(count, system=True) == 2


async def test_last_used_at_records_when_a_key_was_used(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    used = await _create_key(client, headers, ["read:tenants"])
    idle = await _create_key(client, headers, ["read:tenants"])
    assert (await _stored_key(app, used["id"])).last_used_at is None
    resp = await client.get(f"/api/tenants/{tenant.id}", headers={"X-API-Key": used["key"]})
    assert resp.status == 200
    assert await app[keys.AUTH_GATE].flush_key_usage() == 1
    listed = {
        k["id"]: k
        for k in (await (await client.get("/api/api-keys", headers=headers)).json())["data"]
    }
    assert listed[used["id"]]["last_used_at"] is not None
    assert listed[idle["id"]]["last_used_at"] is None
    # nothing new to write when no key was used since
    assert await app[keys.AUTH_GATE].flush_key_usage() == 0


async def test_me_says_what_each_record_entity_allows(client: Any) -> None:
    """`record_actions` of /api/auth/me is what the record endpoints then allow: a client
    offers only those actions (an employee is not shown a delete the server refuses)."""
    app = client.app
    tenant = await make_tenant(app)
    expected = {
        "admin": ["read", "create", "update", "delete", "export"],
        "employee": ["read", "create", "update"],
        "support": ["read"],
    }
    for role, actions in expected.items():
        _, headers = await user_with_headers(app, role, tenant.id)
        me = (await (await client.get("/api/auth/me", headers=headers)).json())["data"]
        assert set(me["record_actions"]) == {
            "accounts", "contacts", "leads", "opportunities", "activities", "notes"
        }  # fmt: skip
        assert me["record_actions"]["contacts"] == actions, role
        # and the server agrees: a delete is refused exactly where it is not listed
        made = await client.post(
            "/api/contacts", json={"first_name": role}, headers=(headers if
            "create" in actions else (await user_with_headers(app, "admin", tenant.id))[1])
        )  # fmt: skip
        record_id = (await made.json())["data"]["id"]
        deleted = await client.delete(f"/api/contacts/{record_id}", headers=headers)
        assert (deleted.status == 200) == ("delete" in actions), (role, deleted.status)
    # an API key narrows it to its permissions
    _, admin = await user_with_headers(app, "admin", tenant.id)
    # (any key may call /api/auth/me: it needs no permission of its own)
    key = await _create_key(client, admin, ["read:contacts", "update:contacts"])
    answer = await client.get("/api/auth/me", headers={"X-API-Key": key["key"]})
    me = (await answer.json())["data"]
    assert me["auth_type"] == "api_key" and me["api_key_permissions"] == [
        "read:contacts", "update:contacts"
    ]  # fmt: skip
    assert me["record_actions"]["contacts"] == ["read", "update"]
    assert me["record_actions"]["accounts"] == []
