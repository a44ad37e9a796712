"""A suspended or deleted tenant locks its users and API keys out at once; others go on."""

from __future__ import annotations

from typing import Any

import pytest

from aisha_server import keys
from aisha_server.auth.tokens import digest
from aisha_server.db.models import ApiKey
from tests.factories import bearer, login, make_tenant, make_user


@pytest.mark.parametrize("change", ["suspend", "delete"])
async def test_suspended_tenant_locks_out_users_and_keys(client: Any, change: str) -> None:
    app = client.app
    root = await make_user(app, role="superadmin")
    root_headers = bearer((await login(client, root.email, root.password))["token"])
    acme = await make_tenant(app, "Acme")
    other = await make_tenant(app, "Other")
    member = await make_user(app, role="admin", tenant_id=acme.id)
    bystander = await make_user(app, role="admin", tenant_id=other.id)
    session = await login(client, member.email, member.password)
    member_headers = bearer(session["token"])
    bystander_headers = bearer((await login(client, bystander.email, bystander.password))["token"])

    plaintext = "ak_suspension_test_key"

    def add_key(s: Any) -> None:
        s.add(ApiKey(key=digest(plaintext), tenant_id=acme.id, name="k", permissions=["*"]))

    await app[keys.DB].run(add_key, tenant_id=acme.id)
    assert (await client.get(f"/api/tenants/{acme.id}", headers=member_headers)).status == 200
    key_headers = {"X-API-Key": plaintext}
    assert (await client.get(f"/api/tenants/{acme.id}", headers=key_headers)).status == 200

    if change == "suspend":
        resp = await client.put(
            f"/api/tenants/{acme.id}", json={"status": "suspended"}, headers=root_headers
        )
    else:
        resp = await client.delete(f"/api/tenants/{acme.id}", headers=root_headers)
    assert resp.status == 200, await resp.text()

    refused = await client.get(f"/api/tenants/{acme.id}", headers=member_headers)
    assert refused.status == 401
    assert (await refused.json())["code"] == "tenant_inactive"
    assert (await client.get(f"/api/tenants/{acme.id}", headers=key_headers)).status == 401
    relogin = await client.post(
        "/api/auth/login", json={"email": member.email, "password": member.password}
    )
    assert relogin.status == 403
    assert (await relogin.json())["code"] == "tenant_inactive"
    refresh = await client.post(
        "/api/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refresh.status == 401
    # another tenant is untouched
    assert (await client.get(f"/api/tenants/{other.id}", headers=bystander_headers)).status == 200
