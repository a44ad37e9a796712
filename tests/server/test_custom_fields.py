"""/api/custom-fields (guide 4.4 "Custom Fields", 6.5) on both backends: roles, tenants,
bad inputs, archive/restore, and the guide's SQL rows."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, text

from aisha_server import keys
from aisha_server.db.models import CustomField
from aisha_server.services.custom_fields import CustomFieldService
from tests.factories import make_tenant, user_with_headers

REFERRAL = {
    "entity": "contact",
    "field_name": "referral_source",
    "field_type": "select",
    "label": "Referral source",
    "options": ["Website", "Referral", "Event", "Other"],
}


async def _tenant_admin(app: Any) -> tuple[uuid.UUID, dict[str, str]]:
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    return tenant.id, headers


async def _create(client: Any, headers: dict[str, str], payload: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/api/custom-fields", json=payload, headers=headers)
    body = await resp.json()
    assert resp.status == 201, body
    return dict(body["data"])


async def _rows(app: Any) -> list[tuple[str, str, bool, Any, str | None]]:
    def read(session: Any) -> list[tuple[str, str, bool, Any, str | None]]:
        rows = session.scalars(select(CustomField).order_by(CustomField.field_name))
        return [(r.field_name, r.field_type, r.is_archived, r.options, r.label) for r in rows]

    return await app[keys.DB].run(read, system=True, write=False)


async def _error(resp: Any, status: int) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    assert body["status"] == "error"
    return dict(body)


async def test_admin_defines_fields_and_every_tenant_user_reads_them(client: Any) -> None:
    app = client.app
    tenant_id, admin = await _tenant_admin(app)
    created = await _create(client, admin, REFERRAL)
    assert created["tenant_id"] == str(tenant_id)
    assert created["entity"] == "contact" and created["field_type"] == "select"
    assert created["options"] == REFERRAL["options"]
    assert created["is_required"] is False and created["is_archived"] is False
    # plural entity names are stored singular
    acv = await _create(
        client,
        admin,
        {
            "entity": "accounts",
            "field_name": "annual_contract_value",
            "field_type": "currency",
            "is_required": True,
            "position": 2,
        },
    )
    assert acv["entity"] == "account" and acv["options"] is None and acv["is_required"] is True

    for role in ("support", "employee", "manager"):
        _, headers = await user_with_headers(app, role, tenant_id)
        resp = await client.get("/api/custom-fields", headers=headers)
        body = await resp.json()
        assert resp.status == 200, body
        assert [f["field_name"] for f in body["data"]] == [
            "annual_contract_value",
            "referral_source",
        ]
    resp = await client.get("/api/custom-fields?entity=contacts", headers=admin)
    assert [f["field_name"] for f in (await resp.json())["data"]] == ["referral_source"]
    resp = await client.get(f"/api/custom-fields/{acv['id']}", headers=admin)
    assert (await resp.json())["data"]["field_name"] == "annual_contract_value"
    resp = await client.get("/api/custom-fields?entity=widgets", headers=admin)
    assert (await _error(resp, 422))["details"][0]["field"] == "entity"


async def test_only_admins_write(client: Any) -> None:
    app = client.app
    tenant_id, admin = await _tenant_admin(app)
    field = await _create(client, admin, REFERRAL)
    for role in ("employee", "support", "manager"):
        _, headers = await user_with_headers(app, role, tenant_id)
        payload = {**REFERRAL, "field_name": f"by_{role}"}
        await _error(await client.post("/api/custom-fields", json=payload, headers=headers), 403)
        resp = await client.patch(
            f"/api/custom-fields/{field['id']}", json={"label": "Hacked"}, headers=headers
        )
        await _error(resp, 403)
        await _error(await client.delete(f"/api/custom-fields/{field['id']}", headers=headers), 403)
    assert await _rows(app) == [
        ("referral_source", "select", False, REFERRAL["options"], "Referral source")
    ]
    await _error(await client.get("/api/custom-fields"), 401)


async def test_superadmin_names_the_tenant(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, root = await user_with_headers(app, "superadmin")
    await _error(await client.post("/api/custom-fields", json=REFERRAL, headers=root), 400)
    created = await _create(client, root, {**REFERRAL, "tenant_id": str(tenant.id)})
    assert created["tenant_id"] == str(tenant.id)
    resp = await client.get("/api/custom-fields", headers={**root, "X-Tenant-ID": str(tenant.id)})
    assert [f["id"] for f in (await resp.json())["data"]] == [created["id"]]
    resp = await client.get(f"/api/custom-fields?tenant_id={tenant.slug}", headers=root)
    assert [f["id"] for f in (await resp.json())["data"]] == [created["id"]]


async def test_other_tenants_are_out_of_reach(client: Any) -> None:
    app = client.app
    _, admin_a = await _tenant_admin(app)
    tenant_b, admin_b = await _tenant_admin(app)
    field_b = await _create(client, admin_b, REFERRAL)

    resp = await client.get(f"/api/custom-fields?tenant_id={tenant_b}", headers=admin_a)
    assert (await _error(resp, 403))["message"] == "Access denied: Invalid tenant"
    resp = await client.post(
        "/api/custom-fields",
        json={**REFERRAL, "field_name": "intruder", "tenant_id": str(tenant_b)},
        headers=admin_a,
    )
    assert (await _error(resp, 403))["message"] == "Access denied: Invalid tenant"
    resp = await client.get("/api/custom-fields", headers=admin_a)
    assert (await resp.json())["data"] == []
    base = f"/api/custom-fields/{field_b['id']}"
    await _error(await client.get(base, headers=admin_a), 404)
    await _error(await client.put(base, json={"label": "Mine"}, headers=admin_a), 404)
    await _error(await client.delete(base, headers=admin_a), 404)
    await _error(await client.post(f"{base}/restore", headers=admin_a), 404)
    await _error(await client.get("/api/custom-fields/not-a-uuid", headers=admin_a), 404)
    assert await _rows(app) == [
        ("referral_source", "select", False, REFERRAL["options"], "Referral source")
    ]
    # the same name in another tenant is fine
    await _create(client, admin_a, REFERRAL)


async def test_bad_definitions_are_refused(client: Any) -> None:
    app = client.app
    _, admin = await _tenant_admin(app)
    await _create(client, admin, REFERRAL)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**REFERRAL, "field_name": "Referral"}, 422, "field_name"),
        ({**REFERRAL, "field_name": "2nd_source"}, 422, "field_name"),
        ({**REFERRAL, "field_name": "a" * 64}, 422, "field_name"),
        ({**REFERRAL, "field_name": "has-dash"}, 422, "field_name"),
        ({**REFERRAL, "field_name": "x", "field_type": "colour"}, 422, "field_type"),
        ({**REFERRAL, "field_name": "x", "entity": "widget"}, 422, "entity"),
        (
            {"entity": "contact", "field_name": "x", "field_type": "text", "options": ["a"]},
            422,
            "options",
        ),
        ({"entity": "contact", "field_name": "x", "field_type": "select"}, 422, "options"),
        ({**REFERRAL, "field_name": "x", "options": []}, 422, "options"),
        ({**REFERRAL, "field_name": "x", "options": ["A", "a"]}, 422, "options"),
        ({**REFERRAL, "field_name": "x", "options": ["A", 3]}, 422, "options.1"),
        ({**REFERRAL, "field_name": "x", "options": ["A", " "]}, 422, "options"),
        ({**REFERRAL, "field_name": "x", "is_required": "maybe"}, 422, "is_required"),
        ({**REFERRAL, "field_name": "x", "surprise": 1}, 422, "surprise"),
        ({"entity": "contact", "field_type": "text"}, 422, "field_name"),
        # the names of built-in fields (imports, exports and filters name both kinds)
        ({"entity": "contact", "field_name": "email", "field_type": "text"}, 422, "field_name"),
        ({"entity": "account", "field_name": "id", "field_type": "text"}, 422, "field_name"),
        ({"entity": "opportunity", "field_name": "stage", "field_type": "text"}, 422, "field_name"),
        ({**REFERRAL, "field_name": "x", "options": [f"o{n}" for n in range(501)]}, 422, "options"),
    ]
    resp = await client.get("/api/custom-fields", params={"entiy": "contact"}, headers=admin)
    assert "entiy" in {d["field"] for d in (await _error(resp, 422))["details"]}
    for payload, status, where in cases:
        resp = await client.post("/api/custom-fields", json=payload, headers=admin)
        body = await _error(resp, status)
        assert where in {d["field"] for d in body["details"]}, (payload, body)
    resp = await client.post("/api/custom-fields", json=REFERRAL, headers=admin)
    assert (await _error(resp, 409))["code"] == "custom_field_exists"
    # the same name on another entity is a different field
    await _create(client, admin, {**REFERRAL, "entity": "lead"})
    resp = await client.post(
        "/api/custom-fields",
        data=b"{not json",
        headers={**admin, "Content-Type": "application/json"},
    )
    await _error(resp, 400)
    assert [r[0] for r in await _rows(app)] == ["referral_source", "referral_source"]


async def test_update_changes_label_options_required_and_position_but_not_type(
    client: Any,
) -> None:
    app = client.app
    _, admin = await _tenant_admin(app)
    field = await _create(client, admin, REFERRAL)
    url = f"/api/custom-fields/{field['id']}"
    resp = await client.patch(
        url,
        json={"label": "Source", "options": ["Website", "Partner"], "is_required": True},
        headers=admin,
    )
    body = await resp.json()
    assert resp.status == 200, body
    changed = body["data"]
    assert changed["label"] == "Source" and changed["options"] == ["Website", "Partner"]
    assert changed["is_required"] is True and changed["version"] == field["version"] + 1
    resp = await client.put(url, json={"position": 5, "label": None}, headers=admin)
    changed = (await resp.json())["data"]
    assert changed["position"] == 5 and changed["label"] is None
    assert changed["options"] == ["Website", "Partner"]

    for bad, where in (
        ({"field_type": "text"}, "field_type"),
        ({"options": []}, "options"),
        ({"options": None}, "options"),
        ({"position": -1}, "position"),
        ({"is_required": None}, "is_required"),
        ({"entity": "lead"}, "entity"),
    ):
        body = await _error(await client.patch(url, json=bad, headers=admin), 422)
        assert where in {d["field"] for d in body["details"]}, (bad, body)
    # naming the same type is not a change
    resp = await client.patch(url, json={"field_type": "select"}, headers=admin)
    assert resp.status == 200
    number = await _create(
        client,
        admin,
        {"entity": "lead", "field_name": "qualification_score", "field_type": "number"},
    )
    resp = await client.patch(
        f"/api/custom-fields/{number['id']}", json={"options": ["a"]}, headers=admin
    )
    await _error(resp, 422)
    assert await _rows(app) == [
        ("qualification_score", "number", False, None, None),
        ("referral_source", "select", False, ["Website", "Partner"], None),
    ]


async def test_delete_archives_and_restore_brings_it_back(client: Any) -> None:
    app = client.app
    tenant_id, admin = await _tenant_admin(app)
    field = await _create(client, admin, REFERRAL)
    service = app[keys.CUSTOM_FIELD_SERVICE]
    assert [d.field_name for d in await service.definitions_for(tenant_id, "contacts")] == [
        "referral_source"
    ]

    resp = await client.delete(f"/api/custom-fields/{field['id']}", headers=admin)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"]["is_archived"] is True
    # the row stays (values are never dropped); lists hide it unless asked
    assert await _rows(app) == [
        ("referral_source", "select", True, REFERRAL["options"], "Referral source")
    ]
    resp = await client.get("/api/custom-fields", headers=admin)
    assert (await resp.json())["data"] == []
    resp = await client.get("/api/custom-fields?include_archived=true", headers=admin)
    assert [f["is_archived"] for f in (await resp.json())["data"]] == [True]
    # the cache of this instance saw the change at once
    definitions = await service.definitions_for(tenant_id, "contact")
    assert [(d.field_name, d.is_archived) for d in definitions] == [("referral_source", True)]
    # the name stays taken while archived
    resp = await client.post("/api/custom-fields", json=REFERRAL, headers=admin)
    await _error(resp, 409)
    # archiving twice is harmless
    resp = await client.delete(f"/api/custom-fields/{field['id']}", headers=admin)
    assert resp.status == 200

    resp = await client.post(f"/api/custom-fields/{field['id']}/restore", headers=admin)
    assert (await resp.json())["data"]["is_archived"] is False
    resp = await client.get("/api/custom-fields", headers=admin)
    assert [f["field_name"] for f in (await resp.json())["data"]] == ["referral_source"]
    assert not (await service.definitions_for(tenant_id, "contact"))[0].is_archived
    await _error(await client.delete(f"/api/custom-fields/{uuid.uuid4()}", headers=admin), 404)


async def test_the_guides_sql_rows_show_up(client: Any, backend: str) -> None:
    app = client.app
    tenant_id, admin = await _tenant_admin(app)
    if backend == "postgres":
        tenant = f"'{tenant_id}'"
        columns, ids = "", ("", "", "")
    else:  # SQLite stores UUIDs as 32 hex digits and has no database-side id default
        tenant = f"'{tenant_id.hex}'"
        columns, ids = "id, ", tuple(f"'{uuid.uuid4().hex}', " for _ in range(3))
    sql = f"""INSERT INTO custom_fields ({columns}tenant_id, entity, field_name, field_type, options)
    VALUES
      ({ids[0]}{tenant}, 'contact', 'referral_source', 'select', '["Website","Referral","Event","Other"]'),
      ({ids[1]}{tenant}, 'account', 'annual_contract_value', 'currency', NULL),
      ({ids[2]}{tenant}, 'lead', 'qualification_score', 'number', NULL)"""

    def run(session: Any) -> None:
        session.execute(text(sql))

    await app[keys.DB].run(run, system=True)

    resp = await client.get("/api/custom-fields", headers=admin)
    body = await resp.json()
    assert resp.status == 200, body
    got = {f["field_name"]: f for f in body["data"]}
    assert set(got) == {"referral_source", "annual_contract_value", "qualification_score"}
    assert got["referral_source"]["options"] == ["Website", "Referral", "Event", "Other"]
    assert got["referral_source"]["entity"] == "contact"
    assert got["annual_contract_value"]["options"] is None
    assert got["qualification_score"]["is_required"] is False
    assert got["qualification_score"]["is_archived"] is False
    assert got["qualification_score"]["version"] == 1
    # and they validate values like any other definition
    definitions = await app[keys.CUSTOM_FIELD_SERVICE].definitions_for(tenant_id, "account")
    assert [d.field_type for d in definitions] == ["currency"]
    # an admin can change a row written by SQL
    resp = await client.patch(
        f"/api/custom-fields/{got['referral_source']['id']}",
        json={"label": "Referral source"},
        headers=admin,
    )
    assert (await resp.json())["data"]["label"] == "Referral source"


async def test_definitions_cache_is_per_tenant_and_expires(client: Any) -> None:
    app = client.app
    tenant_id, admin = await _tenant_admin(app)
    other_id, other_admin = await _tenant_admin(app)
    await _create(client, admin, REFERRAL)
    await _create(client, other_admin, {**REFERRAL, "field_name": "other_source"})
    cached = app[keys.CUSTOM_FIELD_SERVICE]
    fresh = CustomFieldService(app[keys.DB], cache_seconds=0)
    assert [d.field_name for d in await cached.definitions_for(tenant_id, "contact")] == [
        "referral_source"
    ]
    assert [d.field_name for d in await cached.definitions_for(other_id, "contact")] == [
        "other_source"
    ]
    assert await cached.definitions_for(tenant_id, "lead") == []

    def archive(session: Any) -> None:  # a change made elsewhere (another server process)
        session.execute(text("UPDATE custom_fields SET is_archived = true"))

    await app[keys.DB].run(archive, system=True)
    # within its few seconds the cache still answers; an expired one reads again
    assert not (await cached.definitions_for(tenant_id, "contact"))[0].is_archived
    assert (await fresh.definitions_for(tenant_id, "contact"))[0].is_archived
