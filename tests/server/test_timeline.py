"""A record's timeline merges its activities and notes, newest first, within data scope."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.factories import make_tenant, user_with_headers


async def post(
    client: Any, url: str, body: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    resp = await client.post(url, json=body, headers=headers)
    data = await resp.json()
    assert resp.status == 201, data
    return dict(data["data"])


async def test_timeline_merges_activities_and_notes(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    other = await make_tenant(app)
    admin_user, admin = await user_with_headers(app, "admin", tenant.id)
    employee_user, employee = await user_with_headers(app, "employee", tenant.id)
    _, outsider = await user_with_headers(app, "admin", other.id)

    contact = await post(
        client, "/api/contacts", {"first_name": "Tim", "assigned_to": str(employee_user.id)}, admin
    )
    link = {"related_type": "contact", "related_id": contact["id"]}
    call = await post(
        client, "/api/activities", {"subject": "Intro call", "type": "call", **link}, admin
    )
    await asyncio.sleep(0.01)
    note = await post(client, "/api/notes", {"content": "Wants pricing", **link}, employee)
    await asyncio.sleep(0.01)
    task = await post(client, "/api/activities", {"subject": "Send pricing", **link}, employee)
    unrelated = await post(client, "/api/notes", {"content": "elsewhere"}, admin)

    url = f"/api/contacts/{contact['id']}/timeline"
    resp = await client.get(url, headers=admin)
    assert resp.status == 200
    items = (await resp.json())["data"]
    assert [i["id"] for i in items] == [task["id"], note["id"], call["id"], contact["id"]]
    assert [i["kind"] for i in items] == ["activity", "note", "activity", "created"]
    assert unrelated["id"] not in {i["id"] for i in items}
    assert items[1]["record"]["content"] == "Wants pricing"

    # the employee (assignee of the contact) sees only what their scope shows: their own
    # note and task, not the admin's call
    mine = (await (await client.get(url, headers=employee)).json())["data"]
    assert [i["id"] for i in mine] == [task["id"], note["id"], contact["id"]]

    # paging and limits
    older = (await (await client.get(f"{url}?limit=2", headers=admin)).json())["data"]
    assert len(older) == 2
    assert (await client.get(f"{url}?limit=0", headers=admin)).status == 422
    # other tenants and unknown records are 404; activities have no timeline
    assert (await client.get(url, headers=outsider)).status == 404
    assert (await client.get(f"/api/contacts/{uuid.uuid4()}/timeline", headers=admin)).status == 404
    assert (await client.get("/api/contacts/nope/timeline", headers=admin)).status == 400
    assert admin_user.tenant_id == tenant.id


async def test_timeline_shows_field_changes_with_old_and_new_values(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    admin_user, admin = await user_with_headers(app, "admin", tenant.id)
    contact = await post(client, "/api/contacts", {"first_name": "Val", "title": "Dev"}, admin)
    url = f"/api/contacts/{contact['id']}"
    for body in ({"title": "Lead"}, {"title": "CTO", "company": "Acme"}):
        await asyncio.sleep(0.01)
        assert (await client.patch(url, json=body, headers=admin)).status == 200
    await asyncio.sleep(0.01)
    assert (await client.delete(url, headers=admin)).status == 200
    await asyncio.sleep(0.01)
    assert (await client.post(f"{url}/restore", headers=admin)).status == 200

    items = (await (await client.get(f"{url}/timeline", headers=admin)).json())["data"]
    assert [i["kind"] for i in items] == ["restored", "deleted", "change", "change", "created"]
    second, first = items[2], items[3]
    assert first["changes"] == {"title": {"old": "Dev", "new": "Lead"}}
    assert second["changes"] == {
        "company": {"old": None, "new": "Acme"},
        "title": {"old": "Lead", "new": "CTO"},
    }
    assert [i.get("version") for i in items[:4]] == [5, 4, 3, 2]
    assert all(i["actor_id"] == str(admin_user.id) for i in items)
