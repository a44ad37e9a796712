"""/api/tenants (guide 4.2-4.4) on both backends: creation with default modules, slugs,
settings validation, listing, reading by UUID or slug, configuration and soft delete."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.db.models import ModuleSetting, Tenant
from aisha_server.errors import Invalid
from aisha_server.services.tenants import DEFAULT_MODULES, slugify
from tests.factories import make_tenant, user_with_headers

GUIDE_TENANT = {
    "name": "Acme Corporation",
    "slug": "acme-corp",
    "status": "active",
    "settings": {"timezone": "America/New_York", "currency": "USD", "date_format": "MM/DD/YYYY"},
    "metadata": {"industry": "Technology", "company_size": "50-200"},
}


async def _superadmin(app: Any) -> dict[str, str]:
    _, headers = await user_with_headers(app, "superadmin")
    return headers


async def _count_tenants(app: Any) -> int:
    return int(
        await app[keys.DB].run(
            lambda s: s.scalar(select(func.count()).select_from(Tenant)), system=True
        )
    )


async def _tenant_row(app: Any, tenant_id: Any) -> Tenant:
    def read(session: Session) -> Tenant:
        tenant = session.get(Tenant, uuid.UUID(str(tenant_id)))
        assert tenant is not None
        return tenant

    return await app[keys.DB].run(read, system=True)


async def _modules(app: Any, tenant_id: Any) -> dict[str, tuple[bool, Any]]:
    def read(session: Session) -> dict[str, tuple[bool, Any]]:
        rows = session.scalars(
            select(ModuleSetting).where(ModuleSetting.tenant_id == uuid.UUID(str(tenant_id)))
        )
        return {r.module_name: (r.is_enabled, r.settings) for r in rows}

    return await app[keys.DB].run(read, system=True)


# -- create ---------------------------------------------------------------------------------


async def test_superadmin_creates_the_guides_tenant_with_default_modules(client: Any) -> None:
    headers = await _superadmin(client.app)
    resp = await client.post("/api/tenants", json=GUIDE_TENANT, headers=headers)
    body = await resp.json()
    assert resp.status == 201, body
    data = body["data"]
    assert uuid.UUID(data["id"])
    assert (data["name"], data["slug"], data["status"]) == (
        "Acme Corporation",
        "acme-corp",
        "active",
    )
    assert data["settings"] == GUIDE_TENANT["settings"]
    assert data["metadata"] == GUIDE_TENANT["metadata"]
    assert set(data["modules"]) == {m.name for m in DEFAULT_MODULES}

    stored = await _modules(client.app, data["id"])
    assert stored["opportunities"] == (
        True,
        {"stages": ["prospect", "qualified", "proposal", "negotiation", "closed"]},
    )
    assert stored["workflows"] == (True, {"max_workflows": 50})
    assert stored["document_processing"] == (False, None)
    assert stored["realtime_voice"] == (True, {"ptt_enabled": True, "auto_play_responses": True})
    for name in ("accounts", "contacts", "leads", "activities", "notes", "ai_campaigns", "care"):
        assert stored[name] == (True, None)


async def test_slug_is_derived_from_the_name_and_kept_unique(client: Any) -> None:
    headers = await _superadmin(client.app)
    slugs = []
    for _ in range(3):
        resp = await client.post("/api/tenants", json={"name": "Acme Corporation"}, headers=headers)
        assert resp.status == 201
        slugs.append((await resp.json())["data"]["slug"])
    assert slugs == ["acme-corporation", "acme-corporation-2", "acme-corporation-3"]
    resp = await client.post(
        "/api/tenants", json={"name": "  Café Ünïcode & Co!! "}, headers=headers
    )
    data = (await resp.json())["data"]
    assert (data["name"], data["slug"]) == ("Café Ünïcode & Co!!", "cafe-unicode-co")
    # defaults fill settings that were not given
    assert data["settings"] == {"timezone": "UTC", "currency": "USD", "date_format": "MM/DD/YYYY"}


def test_slugify_edge_cases() -> None:
    assert slugify("Acme Corporation") == "acme-corporation"
    assert slugify("東京") == "tenant"
    assert slugify("--A  B--") == "a-b"
    long = slugify("x" * 150)
    assert len(long) == 100


async def test_taken_explicit_slug_is_409_and_creates_nothing(client: Any) -> None:
    app = client.app
    headers = await _superadmin(app)
    await make_tenant(app, "Existing", slug="acme-corp")
    before = await _count_tenants(app)
    resp = await client.post("/api/tenants", json=GUIDE_TENANT, headers=headers)
    body = await resp.json()
    assert resp.status == 409
    assert body["message"] == "Tenant slug already in use: acme-corp"
    assert await _count_tenants(app) == before


BAD_CREATES = [
    ({**GUIDE_TENANT, "settings": {"timezone": "Mars/Olympus_Mons"}}, "settings.timezone"),
    ({**GUIDE_TENANT, "settings": {"currency": "XYZ"}}, "settings.currency"),
    ({**GUIDE_TENANT, "settings": {"currency": 840}}, "settings.currency"),
    ({**GUIDE_TENANT, "settings": {"date_format": "YYYY.MM.DD"}}, "settings.date_format"),
    ({**GUIDE_TENANT, "slug": "Acme Corp"}, "slug"),
    ({**GUIDE_TENANT, "slug": "acme--corp"}, "slug"),
    ({**GUIDE_TENANT, "slug": "a" * 101}, "slug"),
    ({**GUIDE_TENANT, "name": ""}, "name"),
    ({**GUIDE_TENANT, "name": 42}, "name"),
    ({"slug": "no-name"}, "name"),
    ({**GUIDE_TENANT, "status": "deleted"}, "status"),
    ({**GUIDE_TENANT, "metadata": "not an object"}, "metadata"),
    ({**GUIDE_TENANT, "settings": ["UTC"]}, "settings"),
    ({**GUIDE_TENANT, "owner": "someone"}, "owner"),
]


async def test_bad_creates_are_422_naming_the_field(client: Any) -> None:
    app = client.app
    headers = await _superadmin(app)
    before = await _count_tenants(app)
    for payload, field in BAD_CREATES:
        resp = await client.post("/api/tenants", json=payload, headers=headers)
        body = await resp.json()
        assert resp.status == 422, (payload, body)
        assert field in [d["field"] for d in body["details"]], (payload, body)
        assert field in body["message"]
    resp = await client.post(
        "/api/tenants", data=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert await _count_tenants(app) == before


async def test_currency_is_normalised_and_zone_names_are_exact(client: Any) -> None:
    headers = await _superadmin(client.app)
    payload = {"name": "Euro Co", "settings": {"currency": "eur", "timezone": "Europe/Berlin"}}
    resp = await client.post("/api/tenants", json=payload, headers=headers)
    assert resp.status == 201
    assert (await resp.json())["data"]["settings"]["currency"] == "EUR"
    payload = {"name": "Lower Co", "settings": {"timezone": "europe/berlin"}}
    resp = await client.post("/api/tenants", json=payload, headers=headers)
    assert resp.status == 422


@pytest.mark.parametrize("role", ["admin", "manager", "employee", "support"])
async def test_only_superadmin_creates_tenants(client: Any, role: str) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, role, tenant.id)
    before = await _count_tenants(app)
    resp = await client.post("/api/tenants", json={"name": "Sneaky"}, headers=headers)
    assert resp.status == 403
    assert await _count_tenants(app) == before


async def test_create_needs_authentication(client: Any) -> None:
    resp = await client.post("/api/tenants", json={"name": "Anonymous"})
    assert resp.status == 401


async def test_cli_creation_returns_id_name_slug(client: Any) -> None:
    service = client.app[keys.TENANT_SERVICE]
    made = await service.create_from_cli(
        name="Command Line Inc", slug=None, settings={"timezone": "Asia/Tokyo", "currency": "JPY"}
    )
    assert (made.name, made.slug) == ("Command Line Inc", "command-line-inc")
    row = await _tenant_row(client.app, made.id)
    assert row.settings["timezone"] == "Asia/Tokyo"
    assert len(await _modules(client.app, made.id)) == len(DEFAULT_MODULES)
    with pytest.raises(Invalid) as caught:
        await service.create_from_cli(name="Bad", slug=None, settings={"timezone": "Nowhere/Land"})
    assert caught.value.details[0]["field"] == "settings.timezone"


# -- list -----------------------------------------------------------------------------------


async def test_superadmin_lists_searches_and_pages(client: Any) -> None:
    app = client.app
    headers = await _superadmin(app)
    await make_tenant(app, "Alpha Widgets", slug="alpha")
    await make_tenant(app, "Beta Gadgets", slug="beta", status="suspended")
    await make_tenant(app, "Gamma 100% Widgets", slug="gamma")
    resp = await client.get("/api/tenants", headers=headers)
    body = await resp.json()
    assert resp.status == 200
    assert [t["slug"] for t in body["data"]] == ["alpha", "beta", "gamma"]
    assert body["pagination"] == {"limit": 50, "offset": 0, "total": 3}
    assert "modules" not in body["data"][0]

    resp = await client.get("/api/tenants", params={"q": "WIDGETS"}, headers=headers)
    assert [t["slug"] for t in (await resp.json())["data"]] == ["alpha", "gamma"]
    resp = await client.get("/api/tenants", params={"q": "100%"}, headers=headers)
    assert [t["slug"] for t in (await resp.json())["data"]] == ["gamma"]
    resp = await client.get("/api/tenants", params={"status": "suspended"}, headers=headers)
    assert [t["slug"] for t in (await resp.json())["data"]] == ["beta"]
    resp = await client.get("/api/tenants", params={"limit": 1, "offset": 1}, headers=headers)
    body = await resp.json()
    assert [t["slug"] for t in body["data"]] == ["beta"]
    assert body["pagination"]["total"] == 3

    for params in ({"limit": "lots"}, {"limit": 0}, {"offset": -1}, {"status": "gone"}):
        resp = await client.get("/api/tenants", params=params, headers=headers)
        assert resp.status == 422, params


async def test_tenant_users_cannot_list_tenants(client: Any) -> None:
    tenant = await make_tenant(client.app)
    _, headers = await user_with_headers(client.app, "admin", tenant.id)
    resp = await client.get("/api/tenants", headers=headers)
    assert resp.status == 403


# -- read -----------------------------------------------------------------------------------


async def test_get_by_uuid_or_slug(client: Any) -> None:
    app = client.app
    headers = await _superadmin(app)
    tenant = await make_tenant(app, "Acme", slug="acme-corp")
    for ref in (str(tenant.id), "acme-corp", str(tenant.id).upper()):
        resp = await client.get(f"/api/tenants/{ref}", headers=headers)
        body = await resp.json()
        assert resp.status == 200, body
        assert body["data"]["id"] == str(tenant.id)
        assert body["data"]["modules"]["opportunities"]["is_enabled"] is True
    for ref in (str(uuid.uuid4()), "no-such-tenant"):
        resp = await client.get(f"/api/tenants/{ref}", headers=headers)
        assert resp.status == 404


async def test_tenant_user_reads_only_their_own_tenant(client: Any) -> None:
    app = client.app
    own = await make_tenant(app, "Own", slug="own")
    other = await make_tenant(app, "Other", slug="other")
    _, headers = await user_with_headers(app, "employee", own.id)
    resp = await client.get(f"/api/tenants/{own.id}", headers=headers)
    assert resp.status == 200
    resp = await client.get("/api/tenants/own", headers=headers)
    assert resp.status == 200
    for ref in (str(other.id), "other", str(uuid.uuid4())):
        resp = await client.get(f"/api/tenants/{ref}", headers=headers)
        body = await resp.json()
        assert resp.status == 403, ref
        assert body["message"] == "Access denied: Invalid tenant"


# -- update ---------------------------------------------------------------------------------

GUIDE_SETTINGS_UPDATE = {
    "timezone": "America/Los_Angeles",
    "currency": "USD",
    "date_format": "MM/DD/YYYY",
    "modules": {"opportunities": True, "workflows": True, "document_processing": False},
}


async def test_admin_updates_settings_with_the_guides_payload(client: Any) -> None:
    app = client.app
    headers = await _superadmin(app)
    resp = await client.post(
        "/api/tenants",
        json={**GUIDE_TENANT, "settings": {**GUIDE_TENANT["settings"], "week_start": "monday"}},
        headers=headers,
    )
    created = (await resp.json())["data"]
    _, admin = await user_with_headers(app, "admin", uuid.UUID(created["id"]))

    resp = await client.put(
        f"/api/tenants/{created['id']}", json=GUIDE_SETTINGS_UPDATE, headers=admin
    )
    body = await resp.json()
    assert resp.status == 200, body
    data = body["data"]
    assert data["settings"] == {
        "timezone": "America/Los_Angeles",
        "currency": "USD",
        "date_format": "MM/DD/YYYY",
        "week_start": "monday",
    }
    assert data["version"] == created["version"] + 1

    change = {
        "modules": {
            "document_processing": True,
            "realtime_voice": {"settings": {"ptt_enabled": False}},
        }
    }
    resp = await client.put(f"/api/tenants/{created['id']}", json=change, headers=admin)
    assert resp.status == 200
    stored = await _modules(app, created["id"])
    assert stored["document_processing"] == (True, None)
    assert stored["realtime_voice"] == (True, {"ptt_enabled": False, "auto_play_responses": True})
    resp = await client.put(
        f"/api/tenants/{created['id']}", json={"modules": {"realtime_voice": False}}, headers=admin
    )
    assert (await resp.json())["data"]["modules"]["realtime_voice"]["is_enabled"] is False


async def test_module_toggle_creates_a_missing_row(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)  # the factory writes only the opportunities row
    _, admin = await user_with_headers(app, "admin", tenant.id)
    resp = await client.put(
        f"/api/tenants/{tenant.id}", json={"modules": {"workflows": False}}, headers=admin
    )
    assert resp.status == 200
    assert (await _modules(app, tenant.id))["workflows"] == (False, {"max_workflows": 50})


async def test_superadmin_renames_reslugs_and_suspends(client: Any) -> None:
    app = client.app
    headers = await _superadmin(app)
    tenant = await make_tenant(app, "Old Name", slug="old-slug")
    await make_tenant(app, "Taken", slug="taken")
    resp = await client.get("/api/tenants/old-slug", headers=headers)
    assert resp.status == 200  # cached in the directory now
    update = {
        "name": "New Name",
        "slug": "new-slug",
        "status": "suspended",
        "metadata": {"tier": "gold"},
    }
    resp = await client.put(f"/api/tenants/{tenant.id}", json=update, headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert (body["data"]["name"], body["data"]["slug"], body["data"]["status"]) == (
        "New Name",
        "new-slug",
        "suspended",
    )
    assert body["data"]["metadata"] == {"tier": "gold"}
    assert (await client.get("/api/tenants/new-slug", headers=headers)).status == 200
    assert (await client.get("/api/tenants/old-slug", headers=headers)).status == 404

    resp = await client.put(f"/api/tenants/{tenant.id}", json={"slug": "taken"}, headers=headers)
    assert resp.status == 409
    assert (await _tenant_row(app, tenant.id)).slug == "new-slug"


async def test_admin_cannot_change_identity_and_nothing_changes(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app, "Keep Me", slug="keep-me")
    _, admin = await user_with_headers(app, "admin", tenant.id)
    for change in (
        {"name": "Mine Now"},
        {"status": "archived"},
        {"slug": "mine", "timezone": "UTC"},
    ):
        resp = await client.put(f"/api/tenants/{tenant.id}", json=change, headers=admin)
        assert resp.status == 403, change
    row = await _tenant_row(app, tenant.id)
    assert (row.name, row.slug, row.status, row.version) == ("Keep Me", "keep-me", "active", 1)


@pytest.mark.parametrize("role", ["manager", "employee", "support"])
async def test_non_admins_cannot_change_settings(client: Any, role: str) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, role, tenant.id)
    resp = await client.put(
        f"/api/tenants/{tenant.id}", json={"timezone": "Europe/Paris"}, headers=headers
    )
    assert resp.status == 403
    assert (await _tenant_row(app, tenant.id)).settings["timezone"] == "UTC"


async def test_admin_of_another_tenant_is_refused_and_nothing_changes(client: Any) -> None:
    app = client.app
    victim = await make_tenant(app, slug="victim")
    attacker_tenant = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", attacker_tenant.id)
    for ref in (str(victim.id), "victim"):
        resp = await client.put(
            f"/api/tenants/{ref}",
            json={"timezone": "Europe/Paris", "modules": {"opportunities": False}},
            headers=admin,
        )
        body = await resp.json()
        assert resp.status == 403
        assert body["message"] == "Access denied: Invalid tenant"
    row = await _tenant_row(app, victim.id)
    assert (row.settings["timezone"], row.version) == ("UTC", 1)
    assert (await _modules(app, victim.id))["opportunities"][0] is True


BAD_UPDATES = [
    ({"timezone": "Not/AZone"}, "timezone"),
    ({"currency": "ABC"}, "currency"),
    ({"date_format": "dd/mm/yy"}, "date_format"),
    ({"settings": {"timezone": "Atlantis/Capital"}}, "settings.timezone"),
    ({"modules": {"teleportation": True}}, "modules.teleportation"),
    ({"modules": {"workflows": "yes"}}, "modules.workflows.bool"),
    ({"modules": ["workflows"]}, "modules"),
    ({"name": ["x"]}, "name"),
    ({"unknown": 1}, "unknown"),
    ({}, None),
]


async def test_bad_updates_are_422_and_change_nothing(client: Any) -> None:
    app = client.app
    headers = await _superadmin(app)
    tenant = await make_tenant(app)
    for payload, field in BAD_UPDATES:
        resp = await client.put(f"/api/tenants/{tenant.id}", json=payload, headers=headers)
        body = await resp.json()
        assert resp.status == 422, (payload, body)
        if field is not None:
            assert field in [d["field"] for d in body["details"]], (payload, body)
    row = await _tenant_row(app, tenant.id)
    assert row.version == 1
    resp = await client.put(
        f"/api/tenants/{uuid.uuid4()}", json={"timezone": "UTC"}, headers=headers
    )
    assert resp.status == 404


# -- delete ---------------------------------------------------------------------------------


async def test_superadmin_soft_deletes_a_tenant(client: Any) -> None:
    app = client.app
    headers = await _superadmin(app)
    tenant = await make_tenant(app, "Doomed", slug="doomed")
    assert (await client.get("/api/tenants/doomed", headers=headers)).status == 200
    resp = await client.delete(f"/api/tenants/{tenant.id}", headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"]["status"] == "archived"
    assert body["data"]["deleted_at"] is not None
    row = await _tenant_row(app, tenant.id)  # still there: a tombstone
    assert row.deleted_at is not None and row.status == "archived"
    assert (await client.get("/api/tenants/doomed", headers=headers)).status == 404
    assert (await client.delete(f"/api/tenants/{tenant.id}", headers=headers)).status == 404
    listed = await (await client.get("/api/tenants", headers=headers)).json()
    assert str(tenant.id) not in [t["id"] for t in listed["data"]]


async def test_admin_cannot_delete_even_their_own_tenant(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    resp = await client.delete(f"/api/tenants/{tenant.id}", headers=admin)
    assert resp.status == 403
    assert (await _tenant_row(app, tenant.id)).deleted_at is None
