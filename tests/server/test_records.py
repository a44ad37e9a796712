"""CRM records over HTTP: CRUD, soft delete and restore, lists, data scope, bad input."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update

from aisha_server import keys
from aisha_server.db.models import Contact, Tenant
from tests.factories import SeededUser, make_tenant, user_with_headers

MINIMAL: dict[str, dict[str, Any]] = {
    "accounts": {"name": "Acme Corporation"},
    "contacts": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@acme.test"},
    "leads": {"first_name": "Lee", "company": "Leadco", "value": "12000.50"},
    "opportunities": {"name": "Big deal", "amount": "50000", "probability": 40},
    "activities": {"subject": "Call back", "type": "call"},
    "notes": {"content": "Met at the fair"},
}
EDIT = {
    "accounts": ("industry", "Software"),
    "contacts": ("title", "Engineer"),
    "leads": ("source", "Website"),
    "opportunities": ("stage", "qualified"),
    "activities": ("description", "Ask about renewal"),
    "notes": ("title", "Fair"),
}
ENTITIES = list(MINIMAL)


@dataclass
class Team:
    tenant: Tenant
    other: Tenant
    admin: dict[str, str]
    manager: dict[str, str]
    employee: dict[str, str]
    peer: dict[str, str]
    support: dict[str, str]
    outsider: dict[str, str]
    employee_user: SeededUser
    peer_user: SeededUser


@pytest.fixture
async def team(client: Any) -> Team:
    app = client.app
    tenant = await make_tenant(app, "Records Inc")
    other = await make_tenant(app, "Elsewhere")
    _, admin = await user_with_headers(app, "admin", tenant.id)
    _, manager = await user_with_headers(app, "manager", tenant.id, department="Sales")
    employee_user, employee = await user_with_headers(
        app, "employee", tenant.id, department="Sales"
    )
    peer_user, peer = await user_with_headers(app, "employee", tenant.id, department="Support")
    _, support = await user_with_headers(app, "support", tenant.id)
    _, outsider = await user_with_headers(app, "admin", other.id)
    return Team(tenant, other, admin, manager, employee, peer, support, outsider, employee_user,
                peer_user)  # fmt: skip


async def create(client: Any, entity: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = await client.post(f"/api/{entity}", json={**MINIMAL[entity], **body}, headers=headers)
    data = await resp.json()
    assert resp.status == 201, data
    return dict(data["data"])


@pytest.mark.parametrize("entity", ENTITIES)
async def test_crud_soft_delete_and_restore(client: Any, team: Team, entity: str) -> None:
    record = await create(client, entity, team.admin)
    assert record["version"] == 1 and record["tenant_id"] == str(team.tenant.id)
    url = f"/api/{entity}/{record['id']}"
    got = await (await client.get(url, headers=team.admin)).json()
    assert got["data"]["id"] == record["id"]

    field, value = EDIT[entity]
    patched = await client.patch(url, json={field: value}, headers=team.admin)
    body = (await patched.json())["data"]
    assert patched.status == 200 and body[field] == value and body["version"] == 2
    # fields the patch did not name are kept
    for name, given in MINIMAL[entity].items():
        if name in ("value", "amount"):  # money comes back as an exact decimal string
            assert Decimal(body[name]) == Decimal(given)
        else:
            assert body[name] == given

    # PUT replaces: what is not given is cleared (required fields must be given, and a person
    # keeps something to be told by)
    kept = ("name", "subject", "content", "first_name")
    required = {k: v for k, v in MINIMAL[entity].items() if k in kept}
    put = await client.put(url, json={**required, field: value}, headers=team.admin)
    replaced = (await put.json())["data"]
    cleared = [name for name in MINIMAL[entity] if name not in required]
    # a PUT that changes nothing does not bump the version
    assert put.status == 200 and replaced["version"] == (3 if cleared else 2)
    for name in cleared:  # back to the column default (an activity's type: "task") or null
        assert replaced[name] == ("task" if name == "type" else None)

    assert (await client.delete(url, headers=team.admin)).status == 200
    assert (await client.get(url, headers=team.admin)).status == 404
    # a deleted record can still be looked at (before restoring it), when asked for
    seen = await client.get(f"{url}?include_deleted=true", headers=team.admin)
    seen_body = (await seen.json())["data"]
    assert seen.status == 200 and seen_body["id"] == record["id"] and seen_body["deleted_at"]
    assert (await client.get(f"{url}?include_deleted=maybe", headers=team.admin)).status == 422
    assert (await client.get(f"{url}?colour=red", headers=team.admin)).status == 422
    deleted = await (await client.get(f"/api/{entity}?deleted=true", headers=team.admin)).json()
    assert [r["id"] for r in deleted["data"]] == [record["id"]]
    refused = await client.post(f"{url}/restore", headers=team.support)
    assert refused.status == 403
    assert (await refused.json())["message"].startswith(f"Your role may not restore {entity}")
    restored = await client.post(f"{url}/restore", headers=team.admin)
    assert restored.status == 200
    assert (await client.get(url, headers=team.admin)).status == 200


async def test_bad_input_is_refused_and_nothing_is_stored(client: Any, team: Team) -> None:
    cases = [
        ({"name": "X", "colour": "red"}, "colour"),  # unknown field
        ({"name": "X", "employee_count": "many"}, "employee_count"),  # wrong type
        ({"industry": "Software"}, "name"),  # required missing
        ({"name": ""}, "name"),  # empty required
        ({"name": "X", "annual_revenue": "1.234"}, "annual_revenue"),  # 3 decimals
        # a website is opened as a link: no other scheme, and it names a host
        ({"name": "X", "website": "javascript:alert(1)"}, "website"),
        ({"name": "X", "website": "data:text/html,hi"}, "website"),
        ({"name": "X", "website": "not a site"}, "website"),
        ({"name": "X", "tags": [str(n) for n in range(101)]}, "tags"),  # at most 100 tags
    ]
    for body, field in cases:
        resp = await client.post("/api/accounts", json=body, headers=team.admin)
        data = await resp.json()
        assert resp.status == 422, (body, data)
        assert field in {d["field"] for d in data["details"]}, data
    listed = await (await client.get("/api/accounts", headers=team.admin)).json()
    assert listed["data"] == []
    assert (await client.get("/api/accounts/not-a-uuid", headers=team.admin)).status == 400
    assert (await client.get(f"/api/accounts/{uuid.uuid4()}", headers=team.admin)).status == 404
    malformed = await client.post(
        "/api/accounts", data=b"{nope", headers={**team.admin, "Content-Type": "application/json"}
    )
    assert malformed.status == 400


async def test_query_parameters_given_twice_are_refused(client: Any, team: Team) -> None:
    resp = await client.get("/api/contacts?limit=1&limit=2", headers=team.admin)
    body = await resp.json()
    assert resp.status == 422, body
    assert body["message"] == "Invalid query parameters: limit"
    assert body["details"] == [
        {"field": "limit", "message": "given more than once; give it once", "type": "repeated"}
    ]
    once = await client.get("/api/contacts?limit=1", headers=team.admin)
    assert once.status == 200


@pytest.mark.parametrize("action", ["export", "import", "bulk-update", "bulk-delete"])
async def test_collection_actions_are_not_record_ids(client: Any, team: Team, action: str) -> None:
    """`PATCH /api/contacts/export` is a method the path does not have (405 with the methods
    it does), not a record whose id is not a UUID."""
    url = f"/api/contacts/{action}"
    allowed = "GET" if action == "export" else "POST"
    for method in ("GET", "PUT", "PATCH", "DELETE", "POST"):
        if method == allowed:
            continue
        resp = await client.request(method, url, json={}, headers=team.admin)
        body = await resp.json()
        assert resp.status == 405, (method, body)
        assert body["status"] == "error", body
        assert allowed in resp.headers["Allow"], resp.headers
    # the record routes under such a path are not records either
    assert (await client.get(f"{url}/timeline", headers=team.admin)).status == 404
    assert (await client.post(f"{url}/restore", headers=team.admin)).status == 404
    # a record id merely starting with the word still reaches the record routes (400: no UUID)
    assert (await client.get(f"{url}x", headers=team.admin)).status == 400


async def test_empty_values_are_stored_as_a_create_stores_them(client: Any, team: Team) -> None:
    """PATCH {"tags": null} clears the tags to [] (create and PUT store [] / {}, never
    null), a blank phone is no phone as a blank e-mail is no e-mail, and websites are kept as
    typed when they name a host."""
    resp = await client.post(
        "/api/accounts",
        json={"name": "Acme", "tags": ["a"], "metadata": {"k": 1}, "phone": "",
              "website": "acme.example"},
        headers=team.admin,
    )  # fmt: skip
    created = (await resp.json())["data"]
    assert resp.status == 201, created
    assert created["phone"] is None and created["website"] == "acme.example"
    url = f"/api/accounts/{created['id']}"
    resp = await client.patch(
        url, json={"tags": None, "metadata": None, "phone": "  "}, headers=team.admin
    )
    patched = (await resp.json())["data"]
    assert resp.status == 200, patched
    assert (patched["tags"], patched["metadata"], patched["phone"]) == ([], {}, None)
    for website in ("https://acme.example/en", "http://localhost:8080", "acme.example:8443/x"):
        resp = await client.patch(url, json={"website": website}, headers=team.admin)
        assert resp.status == 200, await resp.json()
    resp = await client.post(
        "/api/accounts/bulk-update",
        json={"ids": [created["id"]], "changes": {"tags": None}},
        headers=team.admin,
    )
    assert resp.status == 200
    assert (await (await client.get(url, headers=team.admin)).json())["data"]["tags"] == []


async def test_links_an_actor_gives_point_at_records_it_can_see(client: Any, team: Team) -> None:
    """An employee cannot attach a note to, or file a contact under, a record outside its
    scope (they could, and a refusal for a made-up id told which ids exist): the answer is
    the one for a record that does not exist.  Links already stored are not judged again."""
    hidden = await create(client, "accounts", team.admin, name="Admin's")
    mine = await create(client, "accounts", team.employee, name="Mine")
    for entity, body, field in (
        ("notes", {"content": "spy", "related_type": "account", "related_id": hidden["id"]},
         "related_id"),
        ("contacts", {"first_name": "C", "account_id": hidden["id"]}, "account_id"),
        ("opportunities", {"name": "O", "account_id": hidden["id"]}, "account_id"),
    ):  # fmt: skip
        resp = await client.post(f"/api/{entity}", json=body, headers=team.employee)
        answer = await resp.json()
        assert resp.status == 422, (entity, answer)
        assert answer["details"] == [{"field": field, "message": "no such account"}], answer
        # the same answer as for an id nobody has
        made_up = {**body, field: str(uuid.uuid4())}
        resp = await client.post(f"/api/{entity}", json=made_up, headers=team.employee)
        assert (await resp.json())["details"] == answer["details"]
    timeline = await client.get(f"/api/accounts/{hidden['id']}/timeline", headers=team.admin)
    assert [i["kind"] for i in (await timeline.json())["data"]] == ["created"]

    # their own account: fine; an admin may file the employee's contact under its own
    contact = await create(client, "contacts", team.employee, first_name="Cy",
                           account_id=mine["id"])  # fmt: skip
    url = f"/api/contacts/{contact['id']}"
    resp = await client.patch(url, json={"account_id": hidden["id"]}, headers=team.admin)
    assert resp.status == 200
    # ... and the employee still edits it (the stored link is not judged again), but cannot
    # move it to another hidden record
    resp = await client.patch(url, json={"title": "Buyer"}, headers=team.employee)
    assert resp.status == 200, await resp.json()
    other_hidden = await create(client, "accounts", team.admin, name="Other")
    resp = await client.patch(url, json={"account_id": other_hidden["id"]}, headers=team.employee)
    assert resp.status == 422
    resp = await client.post(
        "/api/contacts/bulk-update",
        json={"ids": [contact["id"]], "changes": {"account_id": other_hidden["id"]}},
        headers=team.employee,
    )
    [result] = (await resp.json())["data"]["results"]
    assert (result["status"], result["message"]) == ("error", "Validation failed: account_id")
    # the manager sees its department's records: a Sales employee's account is linkable
    await create(client, "contacts", team.manager, first_name="M", email="m@x.example",
                 phone=None, account_id=mine["id"])  # fmt: skip
    resp = await client.post(
        "/api/contacts",
        json={"first_name": "M2", "account_id": other_hidden["id"]},
        headers=team.manager,
    )
    assert resp.status == 422


async def test_links_must_point_at_live_records_of_the_same_tenant(client: Any, team: Team) -> None:
    theirs = await create(client, "accounts", team.outsider)
    ours = await create(client, "accounts", team.admin)
    bad = await client.post(
        "/api/contacts", json={"first_name": "X", "account_id": theirs["id"]}, headers=team.admin
    )
    assert bad.status == 422
    assert (await bad.json())["details"][0]["field"] == "account_id"
    good = await create(client, "contacts", team.admin, account_id=ours["id"])
    assert good["account_id"] == ours["id"]
    note = await client.post(
        "/api/notes",
        json={"content": "x", "related_type": "account", "related_id": theirs["id"]},
        headers=team.admin,
    )
    assert note.status == 422
    wrong_type = await client.post(
        "/api/notes",
        json={"content": "x", "related_type": "planet", "related_id": ours["id"]},
        headers=team.admin,
    )
    assert wrong_type.status == 422
    linked = await create(
        client, "notes", team.admin, related_type="account", related_id=ours["id"]
    )
    listed = await client.get(f"/api/notes?related_id={ours['id']}", headers=team.admin)
    assert [n["id"] for n in (await listed.json())["data"]] == [linked["id"]]


async def test_data_scope_per_role(client: Any, team: Team) -> None:
    mine = await create(client, "contacts", team.employee, email="mine@acme.test")
    assert mine["owner_id"] == str(team.employee_user.id) and mine["department"] == "Sales"
    peers = await create(client, "contacts", team.peer, email="peer@acme.test")
    assigned = await create(
        client, "contacts", team.admin, email="assigned@acme.test",
        assigned_to=str(team.employee_user.id), department="Ops",
    )  # fmt: skip
    admins = await create(client, "contacts", team.admin, email="admin@acme.test", department="Ops")

    async def visible(headers: dict[str, str]) -> set[str]:
        resp = await client.get("/api/contacts?limit=100", headers=headers)
        assert resp.status == 200
        return {r["email"] for r in (await resp.json())["data"]}

    everyone = {"mine@acme.test", "peer@acme.test", "assigned@acme.test", "admin@acme.test"}
    assert await visible(team.admin) == everyone
    assert await visible(team.support) == everyone
    assert await visible(team.employee) == {"mine@acme.test", "assigned@acme.test"}
    assert await visible(team.manager) == {"mine@acme.test"}  # the Sales department
    assert await visible(team.outsider) == set()

    # invisible is 404, visible-but-not-editable is 403, and nothing changes
    peer_url = f"/api/contacts/{peers['id']}"
    assert (await client.get(peer_url, headers=team.employee)).status == 404
    assert (await client.patch(peer_url, json={"title": "x"}, headers=team.employee)).status == 404
    admin_url = f"/api/contacts/{admins['id']}"
    assert (await client.patch(admin_url, json={"title": "x"}, headers=team.support)).status == 403
    assert (await client.patch(admin_url, json={"title": "x"}, headers=team.manager)).status == 404
    # the assignee may edit; employees may not delete (matrix) nor re-own
    assigned_url = f"/api/contacts/{assigned['id']}"
    edit = await client.patch(assigned_url, json={"title": "Buyer"}, headers=team.employee)
    assert edit.status == 200
    assert (await client.delete(assigned_url, headers=team.employee)).status == 403
    reown = await client.patch(
        assigned_url, json={"owner_id": str(team.employee_user.id)}, headers=team.employee
    )
    assert reown.status == 403
    # support changes nothing
    assert (
        await client.post("/api/contacts", json={"first_name": "S"}, headers=team.support)
    ).status == 403
    # another tenant: its admin cannot reach our records, nor name our tenant
    assert (await client.get(admin_url, headers=team.outsider)).status == 404
    assert (await client.delete(admin_url, headers=team.outsider)).status == 404
    named = await client.get(f"/api/contacts?tenant_id={team.tenant.id}", headers=team.outsider)
    assert named.status == 403
    assert (await named.json())["message"] == "Access denied: Invalid tenant"
    still = await (await client.get(admin_url, headers=team.admin)).json()
    assert still["data"]["version"] == 1


async def test_superadmin_names_the_tenant(client: Any, team: Team) -> None:
    _, root = await user_with_headers(client.app, "superadmin")
    assert (await client.get("/api/accounts", headers=root)).status == 400
    created = await client.post(
        "/api/accounts", json={"name": "Via root", "tenant_id": team.tenant.slug}, headers=root
    )
    assert created.status == 201
    listed = await client.get("/api/accounts", headers={**root, "X-Tenant-ID": str(team.tenant.id)})
    assert [a["name"] for a in (await listed.json())["data"]] == ["Via root"]


async def test_lists_page_sort_filter_and_search(client: Any, team: Team) -> None:
    names = ["Delta", "alpha", "Charlie", "bravo", "Echo", "Foxtrot", "Golf"]
    for i, name in enumerate(names):
        await create(client, "accounts", team.admin, name=name, industry="Tech" if i % 2 else "Retail",
                     email=f"{name.lower()}@example.org")  # fmt: skip

    seen: list[str] = []
    cursor = None
    while True:
        url = "/api/accounts?limit=3&sort=name" + (f"&cursor={cursor}" if cursor else "")
        page = await (await client.get(url, headers=team.admin)).json()
        seen += [a["name"] for a in page["data"]]
        cursor = page["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(names)  # every record exactly once, in order

    newest = await (await client.get("/api/accounts?limit=2", headers=team.admin)).json()
    assert [a["name"] for a in newest["data"]] == ["Golf", "Foxtrot"]
    tech = await (
        await client.get("/api/accounts?industry=Tech&include_total=true", headers=team.admin)
    ).json()
    assert tech["pagination"]["total"] == 3 and all(a["industry"] == "Tech" for a in tech["data"])
    # the total counts every match, not the page (and, after a cursor, what is left)
    one = await (
        await client.get("/api/accounts?limit=1&include_total=true", headers=team.admin)
    ).json()
    assert one["pagination"]["total"] == 7 and len(one["data"]) == 1
    rest = await (await client.get(
        f"/api/accounts?limit=1&include_total=true&cursor={one['pagination']['next_cursor']}",
        headers=team.admin,
    )).json()  # fmt: skip
    assert rest["pagination"]["total"] == 6 and rest["data"][0]["name"] == "Foxtrot"
    found = await (await client.get("/api/accounts?q=ALP", headers=team.admin)).json()
    assert [a["name"] for a in found["data"]] == ["alpha"]
    by_email = await (await client.get("/api/accounts?q=echo@", headers=team.admin)).json()
    assert [a["name"] for a in by_email["data"]] == ["Echo"]
    literal = await (await client.get("/api/accounts?q=%25", headers=team.admin)).json()
    assert literal["data"] == []  # % is searched for, not a wildcard

    assert (await client.get("/api/accounts?sort=website", headers=team.admin)).status == 422
    assert (await client.get("/api/accounts?cursor=garbage", headers=team.admin)).status == 400
    assert (await client.get("/api/accounts?limit=0", headers=team.admin)).status == 422
    assert (await client.get("/api/accounts?stage=won", headers=team.admin)).status == 422


async def test_stale_write_is_refused_with_if_match(client: Any, team: Team) -> None:
    record = await create(client, "accounts", team.admin)
    url = f"/api/accounts/{record['id']}"
    ok = await client.patch(url, json={"city": "Paris"}, headers={**team.admin, "If-Match": "1"})
    assert ok.status == 200
    stale = await client.patch(url, json={"city": "Rome"}, headers={**team.admin, "If-Match": "1"})
    assert stale.status == 409
    assert (await stale.json())["details"]["current_version"] == 2
    final = await (await client.get(url, headers=team.admin)).json()
    assert final["data"]["city"] == "Paris"


async def test_api_key_scopes_apply_to_records(client: Any, team: Team) -> None:
    created = await client.post(
        "/api/api-keys", json={"name": "crm read", "permissions": ["read:contacts"]},
        headers=team.admin,
    )  # fmt: skip
    key = {"X-API-Key": (await created.json())["data"]["key"]}
    await create(client, "contacts", team.admin)
    assert (await client.get("/api/contacts", headers=key)).status == 200
    assert (await client.post("/api/contacts", json={"first_name": "K"}, headers=key)).status == 403
    assert (await client.get("/api/accounts", headers=key)).status == 403


async def test_custom_field_values_are_validated_on_every_write(client: Any, team: Team) -> None:
    for body in (
        {"entity": "contact", "field_name": "referral_source", "field_type": "select",
         "options": ["Website", "Referral", "Event", "Other"]},
        {"entity": "contact", "field_name": "renewal_date", "field_type": "date"},
        {"entity": "contact", "field_name": "tier", "field_type": "number", "is_required": True},
    ):  # fmt: skip
        resp = await client.post("/api/custom-fields", json=body, headers=team.admin)
        assert resp.status == 201, await resp.text()

    missing = await client.post("/api/contacts", json={"first_name": "A"}, headers=team.admin)
    assert missing.status == 422
    assert "custom_fields.tier" in {d["field"] for d in (await missing.json())["details"]}
    bad = await client.post(
        "/api/contacts",
        json={"first_name": "A", "custom_fields": {"tier": "gold", "referral_source": "Radio",
                                                   "renewal_date": "31/12/2026", "nope": 1}},
        headers=team.admin,
    )  # fmt: skip
    fields = {d["field"] for d in (await bad.json())["details"]}
    assert bad.status == 422
    assert fields == {"custom_fields.tier", "custom_fields.referral_source",
                      "custom_fields.renewal_date", "custom_fields.nope"}  # fmt: skip
    assert (await (await client.get("/api/contacts", headers=team.admin)).json())["data"] == []

    good = await create(
        client, "contacts", team.admin, first_name="A",
        custom_fields={"tier": 2, "referral_source": "Event", "renewal_date": "2026-12-31"},
    )  # fmt: skip
    assert good["custom_fields"] == {
        "tier": 2,
        "referral_source": "Event",
        "renewal_date": "2026-12-31",
    }
    url = f"/api/contacts/{good['id']}"
    patch = await client.patch(
        url, json={"custom_fields": {"referral_source": "Website"}}, headers=team.admin
    )
    assert (await patch.json())["data"]["custom_fields"]["tier"] == 2  # PATCH keeps the others
    cleared = await client.patch(url, json={"custom_fields": {"tier": None}}, headers=team.admin)
    assert cleared.status == 422  # a required field cannot be emptied
    # archiving a definition keeps stored values
    defs = await (await client.get("/api/custom-fields?entity=contact", headers=team.admin)).json()
    source = next(d for d in defs["data"] if d["field_name"] == "referral_source")
    assert (
        await client.delete(f"/api/custom-fields/{source['id']}", headers=team.admin)
    ).status == 200
    kept = await (await client.get(url, headers=team.admin)).json()
    assert kept["data"]["custom_fields"]["referral_source"] == "Website"


async def test_disabled_module_answers_403_and_changes_nothing(client: Any, team: Team) -> None:
    lead = await create(client, "leads", team.admin)
    off = await client.put(
        "/api/module-settings/leads", json={"is_enabled": False}, headers=team.admin
    )
    assert off.status == 200, await off.text()
    for method, url in (
        ("get", "/api/leads"),
        ("get", f"/api/leads/{lead['id']}"),
        ("patch", f"/api/leads/{lead['id']}"),
        ("delete", f"/api/leads/{lead['id']}"),
        ("post", "/api/leads"),
    ):
        kwargs = {"json": {"first_name": "Z"}} if method in ("patch", "post") else {}
        resp = await getattr(client, method)(url, headers=team.admin, **kwargs)
        body = await resp.json()
        assert resp.status == 403 and body["code"] == "module_disabled", (method, url, body)
    assert (await client.get("/api/contacts", headers=team.admin)).status == 200
    on = await client.put(
        "/api/module-settings/leads", json={"is_enabled": True}, headers=team.admin
    )
    assert on.status == 200
    again = await (await client.get(f"/api/leads/{lead['id']}", headers=team.admin)).json()
    assert again["data"]["version"] == 1 and again["data"]["first_name"] == "Lee"


async def test_opportunity_stages_come_from_module_settings(client: Any, team: Team) -> None:
    deal = await create(client, "opportunities", team.admin, stage="prospect")
    url = f"/api/opportunities/{deal['id']}"
    wrong = await client.patch(url, json={"stage": "dreaming"}, headers=team.admin)
    assert wrong.status == 422
    assert (await wrong.json())["details"][0]["field"] == "stage"
    assert (
        await client.patch(url, json={"stage": "negotiation"}, headers=team.admin)
    ).status == 200
    custom = await client.put(
        "/api/module-settings/opportunities",
        json={"settings": {"stages": ["new", "won", "lost"]}},
        headers=team.admin,
    )
    assert custom.status == 200, await custom.text()
    assert (await client.patch(url, json={"stage": "qualified"}, headers=team.admin)).status == 422
    assert (await client.patch(url, json={"stage": "won"}, headers=team.admin)).status == 200


async def test_lists_filter_on_custom_fields(client: Any, team: Team) -> None:
    for body in (
        {"entity": "contact", "field_name": "source", "field_type": "select",
         "options": ["Website", "Referral", "Event"]},
        {"entity": "contact", "field_name": "interests", "field_type": "multiselect",
         "options": ["crm", "ai", "voice"]},
        {"entity": "contact", "field_name": "vip", "field_type": "boolean"},
        {"entity": "contact", "field_name": "seats", "field_type": "number"},
        {"entity": "contact", "field_name": "budget", "field_type": "currency"},
    ):  # fmt: skip
        assert (
            await client.post("/api/custom-fields", json=body, headers=team.admin)
        ).status == 201
    rows = [
        ("a@x.example.com", {"source": "Website", "interests": ["crm", "ai"], "vip": True, "seats": 10, "budget": "1000"}),
        ("b@x.example.com", {"source": "Event", "interests": ["voice"], "vip": False, "seats": 2.5}),
        ("c@x.example.com", {"source": "Website", "interests": ["ai"], "budget": 99.5}),
    ]  # fmt: skip
    for email, values in rows:
        await create(client, "contacts", team.admin, email=email, custom_fields=values)

    async def emails(query: str) -> list[str]:
        resp = await client.get(f"/api/contacts?{query}", headers=team.admin)
        body = await resp.json()
        assert resp.status == 200, body
        return sorted(r["email"] for r in body["data"])

    assert await emails("cf.source=Website") == ["a@x.example.com", "c@x.example.com"]
    assert await emails("cf.source=website") == ["a@x.example.com", "c@x.example.com"]
    assert await emails("cf.interests=ai") == ["a@x.example.com", "c@x.example.com"]
    assert await emails("cf.interests=voice") == ["b@x.example.com"]
    assert await emails("cf.vip=true") == ["a@x.example.com"]
    assert await emails("cf.vip=false") == ["b@x.example.com"]
    assert await emails("cf.seats=2.5") == ["b@x.example.com"]
    assert await emails("cf.budget=99.50") == ["c@x.example.com"]
    assert await emails("cf.source=Website&cf.vip=true") == ["a@x.example.com"]

    for bad in ("cf.nope=1", "cf.vip=yes", "cf.source=Radio", "colour=red", "cf.=1"):
        resp = await client.get(f"/api/contacts?{bad}", headers=team.admin)
        assert resp.status == 422, (bad, await resp.json())


@pytest.mark.parametrize("entity", ENTITIES)
async def test_list_items_equal_the_record_as_read_alone(
    client: Any, team: Team, entity: str
) -> None:
    """Lists read plain rows (stored text on SQLite) and must show every field exactly as a
    GET of the record does: ids, timestamps, JSON documents, money, dates, links."""
    extra: dict[str, Any] = {"metadata": {"source": "fair", "n": [1, 2.5, None]}}
    if entity in ("accounts", "contacts", "leads"):
        extra["tags"] = ["vip", "émigré"]
    if entity == "accounts":  # a whole amount is stored as an integer on SQLite
        extra.update(annual_revenue="12000", employee_count=0)
    if entity == "leads":
        extra.update(value="-0.10", score=7)
    if entity == "opportunities":
        extra.update(close_date="2026-12-31", amount="1234.50")
    if entity == "activities":  # fractions: some, none, trailing zeros
        extra.update(due_date="2026-12-01T09:30:00.250000+00:00",
                     completed_at="2026-12-02T10:00:00+00:00")  # fmt: skip
    record = await create(client, entity, team.admin, **extra)
    await client.delete(f"/api/{entity}/{record['id']}", headers=team.admin)
    await client.post(f"/api/{entity}/{record['id']}/restore", headers=team.admin)
    alone = await (await client.get(f"/api/{entity}/{record['id']}", headers=team.admin)).json()
    listed = await (await client.get(f"/api/{entity}", headers=team.admin)).json()
    [item] = [i for i in listed["data"] if i["id"] == record["id"]]
    assert item == alone["data"]


async def test_owner_and_assignee_must_be_users_of_the_tenant(client: Any, team: Team) -> None:
    outsider_user = await (await client.get("/api/auth/me", headers=team.outsider)).json()
    for field, ref in (
        ("owner_id", str(uuid.uuid4())),
        ("assigned_to", str(uuid.uuid4())),
        ("assigned_to", outsider_user["data"]["user"]["id"]),  # another tenant's user
    ):
        resp = await client.post("/api/contacts", json={"first_name": "X", field: ref},
                                 headers=team.admin)  # fmt: skip
        body = await resp.json()
        assert resp.status == 422 and body["details"][0]["field"] == field, body
    record = await create(client, "contacts", team.admin,
                          assigned_to=str(team.employee_user.id))  # fmt: skip
    resp = await client.patch(
        f"/api/contacts/{record['id']}", json={"assigned_to": str(uuid.uuid4())}, headers=team.admin
    )
    assert resp.status == 422


async def test_activity_times_without_an_offset_are_utc(client: Any, team: Team) -> None:
    # a date-only due date (as the desktop's date fields send it) was a 500
    day = await create(client, "activities", team.admin, subject="Call", due_date="2026-12-01")
    assert day["due_date"].startswith("2026-12-01T00:00:00") and day["due_date"].endswith(
        ("+00:00", "Z")
    )
    local = await create(client, "activities", team.admin, subject="Call",
                         due_date="2026-12-01T09:30:00+02:00", completed_at="2026-12-02T08:00")  # fmt: skip
    assert local["due_date"].startswith("2026-12-01T07:30:00")
    assert local["completed_at"].startswith("2026-12-02T08:00:00")
    bad = await client.post("/api/activities", json={"subject": "Call", "due_date": "soon"},
                            headers=team.admin)  # fmt: skip
    assert bad.status == 422
    body = await bad.json()
    assert body["status"] == "error" and "due_date" in str(body)
    # list filters take dates the same way
    listed = await client.get("/api/activities?updated_from=2020-01-01&updated_to=2100-01-01",
                              headers=team.admin)  # fmt: skip
    assert listed.status == 200
    ids = {a["id"] for a in (await listed.json())["data"]}
    assert {day["id"], local["id"]} <= ids


async def test_nul_characters_are_refused_as_bad_input(client: Any, team: Team) -> None:
    # PostgreSQL stores no NUL in text or JSON: a 422 naming the field, never a 500
    listed = await client.get("/api/contacts?status=%00&q=ann", headers=team.admin)
    assert listed.status == 422
    assert (await listed.json())["details"][0]["field"] == "status"
    for body, field in (
        ({"first_name": "A\u0000n", "last_name": "Lee"}, "first_name"),
        ({"first_name": "Ann", "last_name": "Lee", "metadata": {"note": ["ok", "x\u0000"]}},
         "metadata.note[1]"),
    ):  # fmt: skip
        made = await client.post("/api/contacts", json=body, headers=team.admin)
        assert made.status == 422, await made.text()
        answer = await made.json()
        assert answer["status"] == "error" and answer["details"][0]["field"] == field
    fine = await client.get("/api/contacts?q=ann", headers=team.admin)
    assert fine.status == 200 and (await fine.json())["data"] == []  # nothing was stored


@pytest.mark.parametrize("entity", ["contacts", "leads"])
async def test_a_person_needs_a_name_an_email_or_a_phone(
    client: Any, team: Team, entity: str
) -> None:
    """A contact or lead with nothing to tell it by is refused on every write path; a stored
    one that already lacks them stays editable in its other fields."""
    for body in ({}, {"title": "Engineer"}, {"first_name": "  ", "email": ""}):
        resp = await client.post(f"/api/{entity}", json=body, headers=team.admin)
        data = await resp.json()
        assert resp.status == 422, (body, data)
        assert "needs at least one of" in data["message"]
        assert {"first_name", "last_name", "email", "phone"} <= {
            d["field"] for d in data["details"]
        }
    # any one of them will do
    for body in ({"last_name": "Solo"}, {"phone": "+1 415 555 0100"}, {"email": "x@solo.test"}):
        resp = await client.post(
            f"/api/{entity}?confirm_duplicate=true", json=body, headers=team.admin
        )
        assert resp.status == 201, await resp.json()
    listed = await (await client.get(f"/api/{entity}?limit=500", headers=team.admin)).json()
    assert len(listed["data"]) == 3

    record = await create(client, entity, team.admin, first_name="Ann", last_name=None,
                          company=None, email=None)  # fmt: skip
    url = f"/api/{entity}/{record['id']}"
    blanked = await client.patch(url, json={"first_name": ""}, headers=team.admin)
    assert blanked.status == 422, await blanked.json()
    put = await client.put(url, json={"title": "Boss"}, headers=team.admin)
    assert put.status == 422, await put.json()
    bulk = await client.post(
        f"/api/{entity}/bulk-update",
        json={"ids": [record["id"]], "changes": {"first_name": None}},
        headers=team.admin,
    )
    result = (await bulk.json())["data"]["results"][0]
    assert bulk.status == 200 and result["status"] == "error", result
    assert "needs at least one of" in result["message"]
    got = (await (await client.get(url, headers=team.admin)).json())["data"]
    assert got["first_name"] == "Ann" and got["version"] == record["version"]
    # a change that moves the name to another identity field is fine
    moved = await client.patch(url, json={"first_name": None, "last_name": "Ann"},
                               headers=team.admin)  # fmt: skip
    assert moved.status == 200, await moved.json()


async def test_a_person_stored_without_identity_stays_editable(client: Any, team: Team) -> None:
    """Records stored before the rule (or by an older client) are not held to it by an edit
    that leaves its fields alone."""
    record = await create(client, "contacts", team.admin)
    await client.app[keys.DB].run(
        lambda s: s.execute(
            update(Contact)
            .where(Contact.id == uuid.UUID(record["id"]))
            .values(first_name=None, last_name=None, email=None)
        ),
        system=True,
    )
    url = f"/api/contacts/{record['id']}"
    resp = await client.patch(url, json={"title": "Kept"}, headers=team.admin)
    assert resp.status == 200, await resp.json()
    assert (await resp.json())["data"]["title"] == "Kept"
