"""Record lifecycle beyond CRUD: emails and phones normalised, duplicates flagged on create
(and confirmed), merging duplicates, converting leads; on both backends."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.db.models import Tenant
from tests.factories import make_user
from tests.server import test_records
from tests.server.test_records import Team, create

team = test_records.team  # the same fixture: a tenant with every role, and an outsider


async def _post(client: Any, url: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    resp = await client.post(url, json=body, headers=headers)
    return resp.status, await resp.json()


async def _get(client: Any, url: str, headers: dict[str, str]) -> Any:
    resp = await client.get(url, headers=headers)
    return resp.status, await resp.json()


async def _set_region(client: Any, tenant_id: uuid.UUID, region: str) -> None:
    def write(session: Session) -> None:
        settings = session.get(Tenant, tenant_id).settings  # type: ignore[union-attr]
        session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(settings={**settings, "default_region": region})
        )

    await client.app[keys.DB].run(write, system=True)


# -- normalisation ---------------------------------------------------------------------------


async def test_emails_are_normalised_and_invalid_ones_refused(client: Any, team: Team) -> None:
    contact = await create(client, "contacts", team.admin, email="  Ada.Lovelace@ACME.Test ")
    assert contact["email"] == "ada.lovelace@acme.test"
    account = await create(client, "accounts", team.admin, email="Sales@Example.COM")
    assert account["email"] == "sales@example.com"
    for entity in ("contacts", "leads", "accounts"):
        body_in = {"name": "X"} if entity == "accounts" else {"first_name": "X"}
        status, body = await _post(
            client, f"/api/{entity}", {**body_in, "email": "nope@"}, team.admin
        )
        assert status == 422, body
        assert body["details"][0]["field"] == "email", (entity, body)
    status, body = await _post(client, "/api/leads", {"email": "x@localhost"}, team.admin)
    assert status == 422
    # PATCH normalises too, and a bad address changes nothing
    url = f"/api/contacts/{contact['id']}"
    bad = await client.patch(url, json={"email": "a@b@c"}, headers=team.admin)
    assert bad.status == 422
    ok = await client.patch(url, json={"email": "NEW@Acme.test"}, headers=team.admin)
    assert (await ok.json())["data"]["email"] == "new@acme.test"
    _, got = await _get(client, url, team.admin)
    assert got["data"]["version"] == 2
    listed = await (await client.get("/api/leads", headers=team.admin)).json()
    assert listed["data"] == []


async def test_phones_keep_what_was_typed_and_get_e164(client: Any, team: Team) -> None:
    contact = await create(
        client, "contacts", team.admin, phone="(415) 555-2671", mobile="call after 5pm"
    )
    assert contact["phone"] == "(415) 555-2671" and contact["phone_e164"] == "+14155552671"
    # an unparseable phone is kept as entered, without an E.164 form (not refused)
    assert contact["mobile"] == "call after 5pm" and contact["mobile_e164"] is None
    lead = await create(client, "leads", team.admin, phone="+44 20 7946 0958 ext. 12")
    assert lead["phone_e164"] == "+442079460958"
    # the tenant's default region reads national numbers
    await _set_region(client, team.tenant.id, "GB")
    account = await create(client, "accounts", team.admin, phone="020 7946 0018")
    assert account["phone_e164"] == "+442079460018"
    url = f"/api/contacts/{contact['id']}"
    patched = await (
        await client.patch(url, json={"mobile": "07911 123456"}, headers=team.admin)
    ).json()
    assert patched["data"]["mobile_e164"] == "+447911123456"
    # PUT clears the phone and its E.164 form together
    put = await (await client.put(url, json={"first_name": "Ada"}, headers=team.admin)).json()
    assert put["data"]["phone"] is None and put["data"]["phone_e164"] is None
    # clients cannot write the derived column
    status, _ = await _post(client, "/api/leads", {"phone_e164": "+15550000000"}, team.admin)
    assert status == 422


# -- duplicates ------------------------------------------------------------------------------


async def test_duplicates_answer_409_until_confirmed(client: Any, team: Team) -> None:
    first = await create(client, "contacts", team.admin, email="dup@acme.test",
                         phone="+1 415 555 2671")  # fmt: skip
    # same email, other case
    status, body = await _post(
        client, "/api/contacts", {"first_name": "B", "email": "DUP@acme.test"}, team.admin
    )
    assert status == 409 and body["code"] == "possible_duplicates", body
    assert body["details"] == [
        {"id": first["id"], "entity": "contact", "name": "Ada Lovelace",
         "email": "dup@acme.test", "phone": "+1 415 555 2671", "matched_on": ["email"]}
    ]  # fmt: skip
    # same number written differently, as someone's mobile
    status, body = await _post(
        client, "/api/contacts", {"first_name": "C", "mobile": "(415) 555-2671"}, team.admin
    )
    assert status == 409 and body["details"][0]["matched_on"] == ["phone_e164"]
    _, listed = await _get(client, "/api/contacts", team.admin)
    assert len(listed["data"]) == 1  # nothing stored
    status, body = await _post(
        client, "/api/contacts?confirm_duplicate=true",
        {"first_name": "B", "email": "DUP@acme.test"}, team.admin,
    )  # fmt: skip
    assert status == 201 and body["data"]["email"] == "dup@acme.test"
    status, _ = await _post(client, "/api/contacts?confirm_duplicate=maybe", {}, team.admin)
    assert status == 422
    # a lead with a contact's address is a possible duplicate too (people are people) ...
    status, body = await _post(
        client, "/api/leads", {"first_name": "L", "email": "dup@acme.test"}, team.admin
    )
    assert status == 409 and {d["entity"] for d in body["details"]} == {"contact"}, body
    lead = await create(client, "leads", team.admin, email="lead-only@acme.test")
    status, body = await _post(
        client, "/api/contacts", {"first_name": "D", "email": "lead-only@acme.test"}, team.admin
    )
    assert status == 409 and body["details"][0]["id"] == lead["id"]
    # ... accounts are not people, and deleted records do not count
    await create(client, "accounts", team.admin, email="dup@acme.test")
    await create(client, "accounts", team.admin, email="acct@acme.test")
    gone = await create(client, "accounts", team.admin, name="Gone", email="gone@acme.test")
    await client.delete(f"/api/accounts/{gone['id']}", headers=team.admin)
    await create(client, "accounts", team.admin, name="Again", email="gone@acme.test")
    status, body = await _post(
        client, "/api/accounts", {"name": "Twin", "email": "acct@acme.test"}, team.admin
    )
    assert status == 409


async def test_an_edit_that_makes_a_duplicate_answers_409_until_confirmed(
    client: Any, team: Team
) -> None:
    """PATCH and PUT follow the create's rule for the e-mail or phone they change; values the
    record keeps are not judged again, and the record itself never counts."""
    ada = await create(client, "contacts", team.admin, email="ada@acme.test",
                       phone="+1 415 555 2671")  # fmt: skip
    bob = await create(client, "contacts", team.admin, first_name="Bob", email="bob@acme.test")
    url = f"/api/contacts/{bob['id']}"
    for method, body in (
        ("PATCH", {"email": "ADA@acme.test"}),
        ("PATCH", {"mobile": "(415) 555-2671"}),
        ("PUT", {"first_name": "Bob", "phone": "415.555.2671"}),
    ):
        resp = await client.request(method, url, json=body, headers=team.admin)
        data = await resp.json()
        assert resp.status == 409 and data["code"] == "possible_duplicates", (body, data)
        assert [d["id"] for d in data["details"]] == [ada["id"]]
    _, got = await _get(client, url, team.admin)
    assert got["data"]["version"] == bob["version"] and got["data"]["mobile"] is None
    # a lead given a contact's phone is one too
    lead = await create(client, "leads", team.admin, first_name="Lee", company=None,
                        value=None)  # fmt: skip
    resp = await client.patch(f"/api/leads/{lead['id']}", json={"phone": "4155552671"},
                              headers=team.admin)  # fmt: skip
    assert resp.status == 409
    # its own values, and values it keeps, are not duplicates
    own = await client.patch(f"/api/contacts/{ada['id']}", json={"email": "ada@ACME.test",
                             "title": "Countess"}, headers=team.admin)  # fmt: skip
    assert own.status == 200, await own.json()
    twin = await client.post("/api/contacts?confirm_duplicate=true",
                             json={"first_name": "Twin", "email": "ada@acme.test"},
                             headers=team.admin)  # fmt: skip
    twin_url = f"/api/contacts/{(await twin.json())['data']['id']}"
    kept = await client.patch(twin_url, json={"title": "Twin"}, headers=team.admin)
    assert kept.status == 200
    confirmed = await client.patch(
        f"{url}?confirm_duplicate=true", json={"email": "ada@acme.test"}, headers=team.admin
    )
    assert confirmed.status == 200 and (await confirmed.json())["data"]["email"] == "ada@acme.test"
    unknown = await client.patch(f"{url}?confirm=true", json={"title": "x"}, headers=team.admin)
    assert unknown.status == 422


async def test_duplicates_only_reveal_what_the_caller_sees(client: Any, team: Team) -> None:
    await create(client, "leads", team.peer, email="secret@acme.test", first_name="Hidden")
    await create(client, "leads", team.outsider, email="mine@acme.test")
    # the employee cannot see the peer's lead: no 409, nothing revealed
    lead = await create(client, "leads", team.employee, email="secret@acme.test")
    assert lead["email"] == "secret@acme.test"
    # another tenant's records never match
    await create(client, "leads", team.admin, email="mine@acme.test")
    # the admin sees both
    status, body = await _post(client, "/api/leads", {"email": "secret@acme.test"}, team.admin)
    assert status == 409 and len(body["details"]) == 2


# -- merge -----------------------------------------------------------------------------------


async def test_merge_moves_everything_and_deletes_the_duplicate(client: Any, team: Team) -> None:
    keep = await create(client, "accounts", team.admin, name="Acme", industry="Software",
                        tags=["a"], custom_fields={}, metadata={"k": "keep"})  # fmt: skip
    dup = await create(client, "accounts", team.admin, name="ACME Corp", website="acme.test",
                       phone="+1 415 555 2671", tags=["a", "b"], metadata={"k": "dup", "x": 1},
                       industry="Retail")  # fmt: skip
    person = await create(client, "contacts", team.admin, account_id=dup["id"])
    deal = await create(client, "opportunities", team.admin, account_id=dup["id"])
    note = await create(client, "notes", team.admin, related_type="account", related_id=dup["id"])
    task = await create(client, "activities", team.admin, related_type="account",
                        related_id=dup["id"])  # fmt: skip
    url = f"/api/accounts/{keep['id']}/merge"
    status, body = await _post(client, url, {"duplicate_id": dup["id"]}, team.admin)
    assert status == 200, body
    merged = body["data"]["record"]
    assert merged["name"] == "Acme" and merged["industry"] == "Software"  # the record wins
    assert merged["website"] == "acme.test" and merged["phone_e164"] == "+14155552671"
    assert merged["tags"] == ["a", "b"]
    assert merged["metadata"] == {"k": "keep", "x": 1, "merged_from": [dup["id"]]}
    assert body["data"]["repointed"] == {"activities": 1, "notes": 1, "contacts": 1,
                                         "opportunities": 1, "leads": 0}  # fmt: skip
    for entity, record, column in (("contacts", person, "account_id"),
                                   ("opportunities", deal, "account_id"),
                                   ("notes", note, "related_id"),
                                   ("activities", task, "related_id")):  # fmt: skip
        _, got = await _get(client, f"/api/{entity}/{record['id']}", team.admin)
        assert got["data"][column] == keep["id"], entity
    assert (await client.get(f"/api/accounts/{dup['id']}", headers=team.admin)).status == 404
    _, deleted = await _get(client, "/api/accounts?deleted=true", team.admin)
    assert deleted["data"][0]["metadata"]["merged_into"] == keep["id"]
    # merging it again: the duplicate is gone
    status, _ = await _post(client, url, {"duplicate_id": dup["id"]}, team.admin)
    assert status == 404


async def test_merge_refuses_bad_input_and_what_the_caller_cannot_touch(
    client: Any, team: Team
) -> None:
    mine = await create(client, "contacts", team.employee, email="m1@acme.test")
    also = await create(client, "contacts", team.employee, email="m2@acme.test")
    peers = await create(client, "contacts", team.peer, email="p@acme.test")
    theirs = await create(client, "contacts", team.outsider, email="o@acme.test")
    admins = await create(client, "contacts", team.admin, email="a@acme.test")
    url = f"/api/contacts/{mine['id']}/merge"
    cases = [
        (team.employee, url, {"duplicate_id": mine["id"]}, 422),  # itself
        (team.employee, url, {"duplicate_id": "nope"}, 422),
        (team.employee, url, {}, 422),
        (team.employee, url, {"duplicate_id": peers["id"]}, 404),  # out of scope
        (team.employee, url, {"duplicate_id": theirs["id"]}, 404),  # other tenant
        (team.outsider, f"/api/contacts/{theirs['id']}/merge", {"duplicate_id": mine["id"]}, 404),
        (team.support, f"/api/contacts/{admins['id']}/merge", {"duplicate_id": mine["id"]}, 403),
        (team.employee, f"/api/accounts/{mine['id']}/merge", {"duplicate_id": also["id"]}, 404),
        (team.employee, f"/api/notes/{mine['id']}/merge", {"duplicate_id": also["id"]}, 404),
    ]
    for headers, target, body, expected in cases:
        status, answer = await _post(client, target, body, headers)
        assert status == expected, (target, body, answer)
    for record, headers in ((mine, team.employee), (also, team.employee), (peers, team.peer),
                            (theirs, team.outsider), (admins, team.admin)):  # fmt: skip
        _, got = await _get(client, f"/api/contacts/{record['id']}", headers)
        assert got["data"]["version"] == 1
    status, body = await _post(client, url, {"duplicate_id": also["id"]}, team.employee)
    assert status == 200 and body["data"]["record"]["email"] == "m1@acme.test"


# -- lead conversion -------------------------------------------------------------------------


async def test_convert_lead_creates_linked_records(client: Any, team: Team) -> None:
    lead = await create(client, "leads", team.employee, first_name="Lee", last_name="Ng",
                        email="lee@leadco.test", phone="+1 415 555 2671", title="CTO",
                        company="Leadco", value="12000.50")  # fmt: skip
    note = await create(client, "notes", team.employee, related_type="lead", related_id=lead["id"])
    status, body = await _post(
        client, f"/api/leads/{lead['id']}/convert",
        {"contact": {"title": "Chief Technology Officer"}, "opportunity": {}}, team.employee,
    )  # fmt: skip
    assert status == 201, body
    data = body["data"]
    contact, account, deal = data["contact"], data["account"], data["opportunity"]
    assert contact["first_name"] == "Lee" and contact["email"] == "lee@leadco.test"
    assert contact["title"] == "Chief Technology Officer"
    assert contact["phone_e164"] == "+14155552671" and contact["account_id"] == account["id"]
    assert contact["owner_id"] == str(team.employee_user.id)
    assert account["name"] == "Leadco"
    assert deal["name"] == "Leadco opportunity" and deal["amount"] == "12000.50"
    assert deal["stage"] == "prospect"
    assert (deal["lead_id"], deal["contact_id"], deal["account_id"]) == (
        lead["id"], contact["id"], account["id"])  # fmt: skip
    converted = data["lead"]
    assert converted["status"] == "converted" and converted["converted_at"]
    assert converted["converted_contact_id"] == contact["id"]
    assert converted["converted_account_id"] == account["id"]
    # the lead keeps its history, and the answer lists it
    assert [n["id"] for n in data["notes"]] == [note["id"]] and data["activities"] == []
    _, got = await _get(client, f"/api/notes/{note['id']}", team.employee)
    assert got["data"]["related_id"] == lead["id"]
    again = await client.post(f"/api/leads/{lead['id']}/convert", json={}, headers=team.employee)
    assert again.status == 409 and (await again.json())["code"] == "already_converted"
    # a converted lead stays converted (its status could be set back, misleading the list)
    url = f"/api/leads/{lead['id']}"
    back = await client.patch(url, json={"status": "new"}, headers=team.admin)
    assert back.status == 422 and "stays converted" in str((await back.json())["details"])
    assert (await client.patch(url, json={"title": "CFO"}, headers=team.admin)).status == 200


async def test_convert_without_company_or_with_an_existing_account(client: Any, team: Team) -> None:
    solo = await create(client, "leads", team.admin, company=None, first_name="Solo")
    status, body = await _post(client, f"/api/leads/{solo['id']}/convert", {}, team.admin)
    assert status == 201 and body["data"]["account"] is None
    assert body["data"]["opportunity"] is None and body["data"]["contact"]["account_id"] is None
    existing = await create(client, "accounts", team.admin, name="Existing")
    lead = await create(client, "leads", team.admin)
    status, body = await _post(
        client, f"/api/leads/{lead['id']}/convert",
        {"account_id": existing["id"], "opportunity": {"name": "Renewal", "stage": "qualified"}},
        team.admin,
    )  # fmt: skip
    assert status == 201, body
    assert body["data"]["account"]["id"] == existing["id"]
    assert body["data"]["opportunity"]["name"] == "Renewal"
    _, accounts = await _get(client, "/api/accounts", team.admin)
    assert [a["name"] for a in accounts["data"]] == ["Existing"]


async def test_failed_conversion_writes_nothing(client: Any, team: Team) -> None:
    theirs = await create(client, "accounts", team.outsider)
    lead = await create(client, "leads", team.employee)
    url = f"/api/leads/{lead['id']}/convert"
    cases = [
        ({"contact": {"email": "broken@"}}, 422, "contact.email"),
        ({"opportunity": {"stage": "dreaming"}}, 422, "opportunity.stage"),
        ({"account": {"colour": "red"}}, 422, "account.colour"),
        ({"account_id": theirs["id"]}, 404, None),
        ({"account_id": "not-a-uuid"}, 422, "account_id"),
    ]
    for body, expected, field in cases:
        status, answer = await _post(client, url, body, team.employee)
        assert status == expected, (body, answer)
        if field:
            assert field in {d["field"] for d in answer["details"]}, answer
    # a required custom field on contacts fails inside the transaction, after the account
    resp = await client.post(
        "/api/custom-fields",
        json={"entity": "contact", "field_name": "tier", "field_type": "number",
              "is_required": True},
        headers=team.admin,
    )  # fmt: skip
    assert resp.status == 201
    status, answer = await _post(client, url, {"opportunity": {}}, team.employee)
    assert status == 422 and answer["details"][0]["field"] == "contact.custom_fields.tier"
    for entity in ("accounts", "contacts", "opportunities"):
        _, listed = await _get(client, f"/api/{entity}", team.admin)
        assert listed["data"] == [], entity
    _, got = await _get(client, f"/api/leads/{lead['id']}", team.employee)
    assert got["data"]["version"] == 1 and got["data"]["converted_at"] is None
    # roles, scope and tenants
    assert (await _post(client, url, {}, team.support))[0] == 403
    assert (await _post(client, url, {}, team.peer))[0] == 404
    assert (await _post(client, url, {}, team.outsider))[0] == 404
    missing = f"/api/leads/{uuid.uuid4()}/convert"
    assert (await _post(client, missing, {}, team.admin))[0] == 404
    status, _ = await _post(client, url, {"contact": {"custom_fields": {"tier": 1}}}, team.employee)
    assert status == 201


async def test_conversion_checks_the_new_contact_for_duplicates(client: Any, team: Team) -> None:
    existing = await create(client, "contacts", team.admin, email="same@acme.test")
    lead = await create(client, "leads", team.admin, email="other@acme.test")
    # the lead itself was created with confirm: a contact with its address exists
    status, body = await _post(
        client, "/api/leads?confirm_duplicate=true",
        {"first_name": "Twin", "email": "same@acme.test", "company": "Twinco"}, team.admin,
    )  # fmt: skip
    assert status == 201
    twin = body["data"]
    status, body = await _post(client, f"/api/leads/{twin['id']}/convert", {}, team.admin)
    assert status == 409 and body["code"] == "possible_duplicates"
    assert [d["id"] for d in body["details"]] == [existing["id"]]
    _, accounts = await _get(client, "/api/accounts", team.admin)
    assert not any(a["name"] == "Twinco" for a in accounts["data"])  # nothing half-written
    status, body = await _post(
        client, f"/api/leads/{twin['id']}/convert", {"confirm_duplicate": True}, team.admin
    )
    assert status == 201, body
    # a lead without a twin converts without confirmation
    status, _ = await _post(client, f"/api/leads/{lead['id']}/convert", {}, team.admin)
    assert status == 201


async def test_conversion_refuses_other_tenants_people_and_links_it_makes_itself(
    client: Any, team: Team
) -> None:
    stranger = await make_user(client.app, role="employee", tenant_id=team.other.id)
    existing = await create(client, "accounts", team.admin, name="Existing")
    lead = await create(client, "leads", team.admin)
    url = f"/api/leads/{lead['id']}/convert"
    cases = [
        # owners and assignees from another tenant (these were stored)
        ({"opportunity": {"name": "x", "owner_id": str(stranger.id)}}, "opportunity.owner_id"),
        ({"contact": {"assigned_to": str(stranger.id)}}, "contact.assigned_to"),
        ({"account": {"owner_id": str(stranger.id)}}, "account.owner_id"),
        # links the conversion makes (they were overwritten), and an account named twice
        ({"contact": {"account_id": existing["id"]}}, "contact.account_id"),
        ({"opportunity": {"contact_id": existing["id"]}}, "opportunity.contact_id"),
        ({"account_id": existing["id"], "account": {"name": "New"}}, "account"),
    ]
    for body, field in cases:
        status, answer = await _post(client, url, body, team.admin)
        assert status == 422, (body, answer)
        assert field in {d["field"] for d in answer["details"]}, answer
    for entity in ("contacts", "opportunities"):
        _, listed = await _get(client, f"/api/{entity}", team.admin)
        assert listed["data"] == [], entity
    # a colleague of the tenant may own what the conversion makes
    status, answer = await _post(
        client, url, {"opportunity": {"name": "ok", "owner_id": str(team.peer_user.id)}},
        team.admin,
    )  # fmt: skip
    assert status == 201, answer
    assert answer["data"]["opportunity"]["owner_id"] == str(team.peer_user.id)
