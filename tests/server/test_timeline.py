"""A record's timeline merges its activities and notes, newest first, within data scope."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aisha_server.services.pagination import encode_cursor
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
    # a deleted record's timeline: 404 like the record, unless asked for (to look before
    # restoring it)
    assert (await client.get(f"{url}/timeline", headers=admin)).status == 404
    gone = await client.get(f"{url}/timeline?include_deleted=true", headers=admin)
    assert gone.status == 200
    assert [i["kind"] for i in (await gone.json())["data"]][:2] == ["deleted", "change"]
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


async def test_timeline_pages_by_cursor_through_entries_of_one_moment(client: Any) -> None:
    """A CSV import gives its activities one `created_at`: paging by time alone skipped all
    but the first of them; the cursor carries the entry's id as well."""
    app = client.app
    tenant = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    contact = await post(client, "/api/contacts", {"first_name": "Tia"}, admin)
    rows = "\n".join(f"Call {n},call,contact,{contact['id']}" for n in range(5))
    resp = await client.post(
        "/api/activities/import",
        data=f"subject,type,related_type,related_id\n{rows}\n",
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert resp.status in (200, 201), await resp.text()
    await asyncio.sleep(0.01)
    await post(client, "/api/notes", {"content": "after the calls", "related_type": "contact",
                                      "related_id": contact["id"]}, admin)  # fmt: skip
    assert (
        await client.patch(f"/api/contacts/{contact['id']}", json={"title": "Buyer"}, headers=admin)
    ).status == 200
    url = f"/api/contacts/{contact['id']}/timeline"
    whole = await (await client.get(url, headers=admin)).json()
    everything = [i["id"] for i in whole["data"]]
    assert len(everything) == 8 and whole["pagination"]["next_cursor"] is None
    stamps = [i["at"] for i in whole["data"] if i["kind"] == "activity"]
    assert len(set(stamps)) == 1  # the five calls share one moment

    for size in (1, 2, 3):
        seen: list[str] = []
        cursor = None
        while True:
            query = f"?limit={size}" + (f"&cursor={cursor}" if cursor else "")
            body = await (await client.get(url + query, headers=admin)).json()
            assert body["status"] == "success", body
            assert len(body["data"]) <= size
            seen += [i["id"] for i in body["data"]]
            cursor = body["pagination"]["next_cursor"]
            if cursor is None:
                break
        assert seen == everything, size


async def test_timeline_refuses_bad_paging_clearly(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    contact = await post(client, "/api/contacts", {"first_name": "Ned"}, admin)
    url = f"/api/contacts/{contact['id']}/timeline"
    # a time without an offset is UTC (it was a 500), as in the record lists
    for before in ("2020-01-01", "2020-01-01T00:00:00", "2999-01-01T00:00:00+02:00"):
        resp = await client.get(url, params={"before": before}, headers=admin)
        assert resp.status == 200, await resp.text()
    future = await (await client.get(url, params={"before": "2999-01-01"}, headers=admin)).json()
    past = await (await client.get(url, params={"before": "2020-01-01"}, headers=admin)).json()
    assert [i["kind"] for i in future["data"]] == ["created"] and past["data"] == []
    cursor = encode_cursor(["2026-12-07T00:00:00", "x"])  # no offset
    for params in (
        {"cursor": "garbage"},
        {"cursor": cursor},
        {"cursor": encode_cursor(["2026-12-07T00:00:00+00:00", ""])},
        {"cursor": encode_cursor(["2026-12-07T00:00:00+00:00", "x"]), "before": "2020-01-01"},
    ):
        resp = await client.get(url, params=params, headers=admin)
        body = await resp.json()
        assert (resp.status, body["code"]) == (400, "invalid_cursor"), body
