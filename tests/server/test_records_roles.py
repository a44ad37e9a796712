"""Every record endpoint as every role and as another tenant (issue 3: data scope).

For each entity, an admin-owned record in another department and a record the actor owns
are tried with list, get, create, patch, delete and restore.  The expected answers follow
the guide's matrix (3.2) and data scope (3.3): invisible records are 404, visible but not
editable ones 403, and a refused request changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import make_tenant, user_with_headers
from tests.server.test_records import ENTITIES, MINIMAL

# role -> (foreign record: get, patch, delete), (own record: get, patch, delete), create
EXPECTED: dict[str, tuple[tuple[int, int, int], tuple[int, int, int] | None, int]] = {
    "admin": ((200, 200, 200), (200, 200, 200), 201),
    "superadmin": ((200, 200, 200), (200, 200, 200), 201),
    # deleting is refused by role before any lookup, so it is 403 whatever the id
    "manager": ((404, 404, 403), (200, 200, 403), 201),
    "employee": ((404, 404, 403), (200, 200, 403), 201),
    "support": ((200, 403, 403), None, 403),
    "outsider": ((404, 404, 404), None, 201),
}


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("entity", ENTITIES)
async def test_role_matrix_on_records(client: Any, entity: str, role: str) -> None:
    app = client.app
    tenant = await make_tenant(app)
    other = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    if role == "superadmin":
        _, actor = await user_with_headers(app, "superadmin")
        actor = {**actor, "X-Tenant-ID": str(tenant.id)}
    elif role == "outsider":
        _, actor = await user_with_headers(app, "admin", other.id)
    else:
        _, actor = await user_with_headers(app, role, tenant.id, department="Sales")

    made = await client.post(
        f"/api/{entity}", json={**MINIMAL[entity], "department": "Ops"}, headers=admin
    )
    foreign = (await made.json())["data"]
    url = f"/api/{entity}/{foreign['id']}"
    (get_s, patch_s, delete_s), own, create_s = EXPECTED[role]

    listed = await client.get(f"/api/{entity}", headers=actor)
    assert listed.status == 200
    ids = {r["id"] for r in (await listed.json())["data"]}
    assert (foreign["id"] in ids) == (get_s == 200)

    assert (await client.get(url, headers=actor)).status == get_s
    assert (await client.patch(url, json={"status": "x"}, headers=actor)).status == patch_s
    if patch_s != 200:  # refused: nothing changed
        after = (await (await client.get(url, headers=admin)).json())["data"]
        assert after["version"] == 1 and after["status"] is None
    assert (await client.delete(url, headers=actor)).status == delete_s
    if delete_s == 200:
        assert (await client.post(f"{url}/restore", headers=actor)).status == 200
    else:
        assert (await client.get(url, headers=admin)).status == 200

    # the actor's own record (a different email: an equal one is a possible duplicate)
    own_body = {**MINIMAL[entity]}
    if "email" in own_body:
        own_body["email"] = f"own-{role}@acme.test"
    created = await client.post(f"/api/{entity}", json=own_body, headers=actor)
    assert created.status == create_s
    if own is not None and create_s == 201:
        mine = f"/api/{entity}/{(await created.json())['data']['id']}"
        own_get, own_patch, own_delete = own
        assert (await client.get(mine, headers=actor)).status == own_get
        assert (await client.patch(mine, json={"status": "y"}, headers=actor)).status == own_patch
        assert (await client.delete(mine, headers=actor)).status == own_delete
