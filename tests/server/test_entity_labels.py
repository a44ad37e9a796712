"""/api/entity-labels/{tenant} (guide 4.4 "Entity Label Customization") on both backends:
defaults, renaming (all or nothing), reset, per-tenant isolation, roles, the guide's SQL."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.db.models import EntityLabel
from tests.factories import make_tenant, user_with_headers

DEFAULTS = {
    "accounts": ("Accounts", "Account"),
    "contacts": ("Contacts", "Contact"),
    "leads": ("Leads", "Lead"),
    "opportunities": ("Opportunities", "Opportunity"),
    "activities": ("Activities", "Activity"),
}
CLIENTS = {"labels": {"accounts": {"plural": "Clients", "singular": "Client"}}}


def _url(tenant: Any) -> str:
    return f"/api/entity-labels/{tenant}"


async def _stored(app: Any, tenant_id: uuid.UUID) -> dict[str, tuple[str, str | None, bool]]:
    def read(session: Session) -> dict[str, tuple[str, str | None, bool]]:
        rows = session.scalars(select(EntityLabel).where(EntityLabel.tenant_id == tenant_id))
        return {
            r.entity_key: (r.custom_label, r.custom_label_singular, r.deleted_at is None)
            for r in rows
        }

    return await app[keys.DB].run(read, system=True)


async def _get(client: Any, tenant: Any, headers: dict[str, str]) -> dict[str, Any]:
    resp = await client.get(_url(tenant), headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    return dict(body["data"])


def _pairs(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {k: (v["plural"], v["singular"]) for k, v in data.items()}


async def test_every_user_reads_the_defaults(client: Any) -> None:
    tenant = await make_tenant(client.app)
    _, headers = await user_with_headers(client.app, "employee", tenant.id)
    data = await _get(client, tenant.id, headers)
    assert list(data) == list(DEFAULTS)
    assert _pairs(data) == DEFAULTS
    assert not any(v["customized"] for v in data.values())
    # the slug names the same tenant
    assert _pairs(await _get(client, tenant.slug, headers)) == DEFAULTS


async def test_admin_renames_and_another_tenant_keeps_the_defaults(client: Any) -> None:
    app = client.app
    a, b = await make_tenant(app), await make_tenant(app)
    _, admin_a = await user_with_headers(app, "admin", a.id)
    _, user_b = await user_with_headers(app, "employee", b.id)

    resp = await client.put(_url(a.id), json=CLIENTS, headers=admin_a)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"]["accounts"] == {
        "plural": "Clients",
        "singular": "Client",
        "default_plural": "Accounts",
        "default_singular": "Account",
        "customized": True,
    }
    assert _pairs(await _get(client, a.id, admin_a))["accounts"] == ("Clients", "Client")
    assert await _stored(app, a.id) == {"accounts": ("Clients", "Client", True)}

    assert _pairs(await _get(client, b.id, user_b)) == DEFAULTS
    assert await _stored(app, b.id) == {}
    assert (await app[keys.ENTITY_LABEL_SERVICE].labels_for(a.id))["accounts"]["plural"] == (
        "Clients"
    )
    assert _pairs(await app[keys.ENTITY_LABEL_SERVICE].labels_for(b.id)) == DEFAULTS


async def test_singular_is_optional_and_kept_when_omitted(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    resp = await client.put(
        _url(tenant.id), json={"labels": {"leads": {"plural": "Prospects"}}}, headers=admin
    )
    assert resp.status == 200
    assert _pairs((await resp.json())["data"])["leads"] == ("Prospects", "Lead")

    await client.put(_url(tenant.id), json=CLIENTS, headers=admin)
    resp = await client.put(
        _url(tenant.id), json={"labels": {"accounts": {"plural": "  Customers "}}}, headers=admin
    )
    assert _pairs((await resp.json())["data"])["accounts"] == ("Customers", "Client")
    # an explicit null restores the default singular
    resp = await client.put(
        _url(tenant.id),
        json={"labels": {"accounts": {"plural": "Customers", "singular": None}}},
        headers=admin,
    )
    assert _pairs((await resp.json())["data"])["accounts"] == ("Customers", "Account")


async def test_bad_labels_are_refused_and_nothing_is_stored(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    good = {"plural": "Clients", "singular": "Client"}
    cases: list[tuple[Any, str]] = [
        ({"labels": {"accounts": good, "widgets": good}}, "labels.widgets"),
        ({"labels": {"accounts": good, "leads": {"plural": ""}}}, "labels.leads.plural"),
        ({"labels": {"accounts": good, "leads": {"plural": "   "}}}, "labels.leads.plural"),
        ({"labels": {"accounts": good, "leads": {"plural": "x" * 101}}}, "labels.leads.plural"),
        (
            {"labels": {"accounts": good, "leads": {"plural": "P", "singular": "y" * 101}}},
            "labels.leads.singular",
        ),
        ({"labels": {"accounts": good, "leads": {"plural": 5}}}, "labels.leads.plural"),
        ({"labels": {"accounts": good, "leads": "Prospects"}}, "labels.leads"),
        ({"labels": {"accounts": {"singular": "Client"}}}, "labels.accounts.plural"),
        ({"labels": {}}, "labels"),
        ({"labels": ["accounts"]}, "labels"),
        ({}, "labels"),
        ({"labels": {"accounts": good}, "extra": 1}, "extra"),
    ]
    for payload, field in cases:
        resp = await client.put(_url(tenant.id), json=payload, headers=admin)
        body = await resp.json()
        assert resp.status == 422, (payload, body)
        assert field in body["message"], (payload, body)
        assert any(d["field"].startswith(field) for d in body["details"]), body
    resp = await client.put(_url(tenant.id), data=b"{not json", headers=admin)
    assert resp.status == 400
    assert await _stored(app, tenant.id) == {}

    resp = await client.delete(_url(tenant.id) + "?entity=widgets", headers=admin)
    assert resp.status == 422


async def test_reset_one_key_or_all(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    both = {
        "labels": {
            "accounts": {"plural": "Clients", "singular": "Client"},
            "leads": {"plural": "Prospects", "singular": "Prospect"},
        }
    }
    assert (await client.put(_url(tenant.id), json=both, headers=admin)).status == 200

    resp = await client.delete(_url(tenant.id) + "?entity=accounts", headers=admin)
    data = (await resp.json())["data"]
    assert resp.status == 200
    assert _pairs(data)["accounts"] == ("Accounts", "Account")
    assert not data["accounts"]["customized"]
    assert _pairs(data)["leads"] == ("Prospects", "Prospect")

    # renaming a reset key again revives its row without the old singular
    again = {"labels": {"accounts": {"plural": "Customers"}}}
    resp = await client.put(_url(tenant.id), json=again, headers=admin)
    assert _pairs((await resp.json())["data"])["accounts"] == ("Customers", "Account")

    resp = await client.delete(_url(tenant.id), headers=admin)
    assert resp.status == 200
    assert _pairs((await resp.json())["data"]) == DEFAULTS
    assert _pairs(await _get(client, tenant.id, admin)) == DEFAULTS
    assert all(not live for _, _, live in (await _stored(app, tenant.id)).values())


async def test_roles_and_other_tenants(client: Any) -> None:
    app = client.app
    a, b = await make_tenant(app), await make_tenant(app)
    _, employee_a = await user_with_headers(app, "employee", a.id)
    _, manager_a = await user_with_headers(app, "manager", a.id)
    _, admin_b = await user_with_headers(app, "admin", b.id)
    _, superadmin = await user_with_headers(app, "superadmin")

    for headers in (employee_a, manager_a):
        assert (await client.put(_url(a.id), json=CLIENTS, headers=headers)).status == 403
        assert (await client.delete(_url(a.id), headers=headers)).status == 403

    for tenant_ref in (a.id, a.slug):
        for method in ("get", "delete"):
            resp = await getattr(client, method)(_url(tenant_ref), headers=admin_b)
            body = await resp.json()
            assert resp.status == 403, body
            assert body["message"] == "Access denied: Invalid tenant"
        resp = await client.put(_url(tenant_ref), json=CLIENTS, headers=admin_b)
        assert resp.status == 403
    # a tenant that does not exist looks the same to a tenant user
    resp = await client.get(_url(uuid.uuid4()), headers=admin_b)
    assert resp.status == 403
    assert await _stored(app, a.id) == {}

    # the superadmin works on any tenant; an unknown one is a 404
    resp = await client.put(_url(a.slug), json=CLIENTS, headers=superadmin)
    assert resp.status == 200
    assert _pairs(await _get(client, a.id, employee_a))["accounts"] == ("Clients", "Client")
    assert (await client.get(_url(uuid.uuid4()), headers=superadmin)).status == 404
    assert (await client.get(_url("no-such-tenant"), headers=superadmin)).status == 404

    assert (await client.get(_url(a.id))).status == 401


async def test_the_guides_sql_row_shows_up_customised(client: Any, backend: str) -> None:
    app = client.app
    tenant = await make_tenant(app)
    if backend == "postgres":
        sql = f"""INSERT INTO entity_labels (tenant_id, entity_key, custom_label, custom_label_singular)
        VALUES ('{tenant.id}', 'accounts', 'Clients', 'Client')"""
    else:  # no database-side UUID default on SQLite; UUIDs are stored as 32 hex digits
        sql = f"""INSERT INTO entity_labels
        (id, tenant_id, entity_key, custom_label, custom_label_singular)
        VALUES ('{uuid.uuid4().hex}', '{tenant.id.hex}', 'accounts', 'Clients', 'Client')"""
    await app[keys.DB].run(lambda s: s.execute(text(sql)), system=True)

    _, headers = await user_with_headers(app, "support", tenant.id)
    data = await _get(client, tenant.id, headers)
    assert _pairs(data)["accounts"] == ("Clients", "Client")
    assert data["accounts"]["customized"] is True
    assert data["leads"]["customized"] is False
