"""/api/module-settings (guide 4.4 "Module Settings") on both backends: every module with its
default, toggling and merging settings, validation, roles and tenants, and the cached
`is_enabled`/`require_enabled`/`settings_for` the record endpoints ask."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.db.models import ModuleSetting
from aisha_server.errors import NotFound, PermissionDenied
from aisha_server.services.tenants import DEFAULT_MODULES
from tests.factories import make_tenant, user_with_headers

URL = "/api/module-settings"
VOICE_DEFAULTS = {"ptt_enabled": True, "auto_play_responses": True}
STAGES = ["prospect", "qualified", "proposal", "negotiation", "closed"]


async def _rows(app: Any, tenant_id: uuid.UUID) -> dict[str, tuple[bool, Any]]:
    def read(session: Session) -> dict[str, tuple[bool, Any]]:
        rows = session.scalars(select(ModuleSetting).where(ModuleSetting.tenant_id == tenant_id))
        return {r.module_name: (r.is_enabled, r.settings) for r in rows}

    return await app[keys.DB].run(read, system=True)


async def _ok(resp: Any) -> Any:
    body = await resp.json()
    assert resp.status == 200, body
    return body["data"]


async def test_every_module_is_listed_with_its_default(client: Any) -> None:
    tenant = await make_tenant(client.app)  # has only an opportunities row
    _, headers = await user_with_headers(client.app, "employee", tenant.id)
    data = await _ok(await client.get(URL, headers=headers))
    by_name = {m["module_name"]: m for m in data}
    assert list(by_name) == [m.name for m in DEFAULT_MODULES]
    assert by_name["realtime_voice"] == {
        "module_name": "realtime_voice",
        "is_enabled": True,
        "settings": VOICE_DEFAULTS,
    }
    assert by_name["document_processing"]["is_enabled"] is False
    assert by_name["opportunities"]["settings"] == {"stages": STAGES}
    assert by_name["workflows"]["settings"] == {"max_workflows": 50}

    one = await _ok(await client.get(f"{URL}/workflows", headers=headers))
    assert one == {
        "module_name": "workflows",
        "is_enabled": True,
        "settings": {"max_workflows": 50},
    }
    resp = await client.get(f"{URL}/no_such_module", headers=headers)
    assert resp.status == 404
    assert (await client.get(URL)).status == 401


async def test_disabling_realtime_voice_keeps_its_settings(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    service = app[keys.MODULE_SETTINGS_SERVICE]
    assert await service.is_enabled(tenant.id, "realtime_voice") is True  # now cached

    data = await _ok(
        await client.put(f"{URL}/realtime_voice", json={"is_enabled": False}, headers=admin)
    )
    assert data == {
        "module_name": "realtime_voice",
        "is_enabled": False,
        "settings": VOICE_DEFAULTS,
    }
    data = await _ok(await client.get(f"{URL}/realtime_voice", headers=admin))
    assert data["is_enabled"] is False and data["settings"] == VOICE_DEFAULTS
    assert (await _rows(app, tenant.id))["realtime_voice"] == (False, VOICE_DEFAULTS)

    # the cache was dropped by the change
    assert await service.is_enabled(tenant.id, "realtime_voice") is False
    with pytest.raises(PermissionDenied) as raised:
        await service.require_enabled(tenant.id, "realtime_voice")
    assert raised.value.code == "module_disabled"
    assert raised.value.message == "Module disabled: realtime_voice"
    await service.require_enabled(tenant.id, "accounts")  # enabled: no error
    with pytest.raises(NotFound):
        await service.is_enabled(tenant.id, "no_such_module")

    # settings merge: one key changed, the other kept
    data = await _ok(
        await client.put(
            f"{URL}/realtime_voice",
            json={"is_enabled": True, "settings": {"ptt_enabled": False}},
            headers=admin,
        )
    )
    assert data == {
        "module_name": "realtime_voice",
        "is_enabled": True,
        "settings": {"ptt_enabled": False, "auto_play_responses": True},
    }
    assert await service.settings_for(tenant.id, "realtime_voice") == data["settings"]


async def test_the_tenant_put_drops_the_cache(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    service = app[keys.MODULE_SETTINGS_SERVICE]
    assert await service.is_enabled(tenant.id, "workflows") is True
    resp = await client.put(
        f"/api/tenants/{tenant.id}", json={"modules": {"workflows": False}}, headers=admin
    )
    assert resp.status == 200, await resp.json()
    assert await service.is_enabled(tenant.id, "workflows") is False
    with pytest.raises(PermissionDenied):
        await service.require_enabled(tenant.id, "workflows")


async def test_opportunity_stages_and_workflow_limits(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    stages = ["new", "won", "lost"]
    data = await _ok(
        await client.put(
            f"{URL}/opportunities", json={"settings": {"stages": stages}}, headers=admin
        )
    )
    assert data["settings"] == {"stages": stages} and data["is_enabled"] is True
    service = app[keys.MODULE_SETTINGS_SERVICE]
    assert (await service.settings_for(tenant.id, "opportunities"))["stages"] == stages

    data = await _ok(
        await client.put(f"{URL}/workflows", json={"settings": {"max_workflows": 0}}, headers=admin)
    )
    assert data["settings"] == {"max_workflows": 0}
    # keys of no known meaning are kept as given
    data = await _ok(
        await client.put(f"{URL}/notes", json={"settings": {"color": "blue"}}, headers=admin)
    )
    assert data["settings"] == {"color": "blue"}


async def test_bad_input_is_refused_and_nothing_changes(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    await _ok(await client.put(f"{URL}/realtime_voice", json={"is_enabled": True}, headers=admin))
    before = await _rows(app, tenant.id)
    cases: list[tuple[str, Any, str]] = [
        ("realtime_voice", {"is_enabled": "no"}, "is_enabled"),
        ("realtime_voice", {"is_enabled": 0}, "is_enabled"),
        (
            "realtime_voice",
            {"is_enabled": False, "settings": {"ptt_enabled": "yes"}},
            "settings.ptt_enabled",
        ),
        (
            "realtime_voice",
            {"settings": {"auto_play_responses": 1}},
            "settings.auto_play_responses",
        ),
        ("realtime_voice", {"settings": ["ptt_enabled"]}, "settings"),
        ("opportunities", {"settings": {"stages": []}}, "settings.stages"),
        ("opportunities", {"settings": {"stages": "prospect"}}, "settings.stages"),
        ("opportunities", {"settings": {"stages": ["a", "a"]}}, "settings.stages"),
        ("opportunities", {"settings": {"stages": ["a", " "]}}, "settings.stages"),
        # names no opportunity could hold (stage is 50 characters), or tell apart
        ("opportunities", {"settings": {"stages": ["a" * 51]}}, "settings.stages"),
        ("opportunities", {"settings": {"stages": ["Prospect", "prospect"]}}, "settings.stages"),
        ("opportunities", {"settings": {"stages": [str(n) for n in range(51)]}}, "settings.stages"),
        ("opportunities", {"settings": {"stages": ["a", 3]}}, "settings.stages"),
        ("workflows", {"settings": {"max_workflows": -1}}, "settings.max_workflows"),
        ("workflows", {"settings": {"max_workflows": "50"}}, "settings.max_workflows"),
        ("workflows", {"settings": {"max_workflows": 2.5}}, "settings.max_workflows"),
        ("workflows", {"settings": {"max_workflows": True}}, "settings.max_workflows"),
        ("workflows", {"enabled": True}, "enabled"),
        ("workflows", {}, ""),
    ]
    for module, payload, field in cases:
        resp = await client.put(f"{URL}/{module}", json=payload, headers=admin)
        body = await resp.json()
        assert resp.status == 422, (module, payload, body)
        assert field in body["message"], (payload, body)
    resp = await client.put(f"{URL}/workflows", data=b"{oops", headers=admin)
    assert resp.status == 400
    resp = await client.put(f"{URL}/no_such_module", json={"is_enabled": False}, headers=admin)
    assert resp.status == 404
    assert await _rows(app, tenant.id) == before


async def test_roles_and_other_tenants(client: Any) -> None:
    app = client.app
    a, b = await make_tenant(app), await make_tenant(app)
    _, employee_a = await user_with_headers(app, "employee", a.id)
    _, manager_a = await user_with_headers(app, "manager", a.id)
    _, support_a = await user_with_headers(app, "support", a.id)
    _, admin_b = await user_with_headers(app, "admin", b.id)
    _, superadmin = await user_with_headers(app, "superadmin")
    before = await _rows(app, a.id)

    for headers in (employee_a, manager_a, support_a):
        resp = await client.put(f"{URL}/workflows", json={"is_enabled": False}, headers=headers)
        assert resp.status == 403, await resp.json()
    assert len(await _ok(await client.get(URL, headers=support_a))) == len(DEFAULT_MODULES)

    # B's admin naming A, by UUID or slug, in the query or the header
    for named in (str(a.id), a.slug):
        for kwargs in ({"params": {"tenant_id": named}}, {"headers": {"X-Tenant-ID": named}}):
            headers = {**admin_b, **kwargs.get("headers", {})}
            params = kwargs.get("params")
            resp = await client.get(URL, headers=headers, params=params)
            body = await resp.json()
            assert resp.status == 403, body
            assert body["message"] == "Access denied: Invalid tenant"
            resp = await client.get(f"{URL}/workflows", headers=headers, params=params)
            assert resp.status == 403
            resp = await client.put(
                f"{URL}/workflows", json={"is_enabled": False}, headers=headers, params=params
            )
            assert resp.status == 403
    assert await _rows(app, a.id) == before

    # the superadmin names the tenant; without one it is a 400
    resp = await client.get(URL, headers=superadmin)
    assert resp.status == 400
    resp = await client.put(
        f"{URL}/workflows",
        json={"is_enabled": False},
        headers={**superadmin, "X-Tenant-ID": a.slug},
    )
    assert (await _ok(resp))["is_enabled"] is False
    data = await _ok(await client.get(f"{URL}/workflows", headers=employee_a))
    assert data["is_enabled"] is False
    data = await _ok(
        await client.get(f"{URL}/workflows", headers=superadmin, params={"tenant_id": str(b.id)})
    )
    assert data["is_enabled"] is True
