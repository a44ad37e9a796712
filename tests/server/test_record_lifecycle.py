"""Record lifecycle beyond CRUD: emails and phones normalised, duplicates flagged on create
(and confirmed), merging duplicates, converting leads; on both backends."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.db.models import Tenant
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
    # other entities and deleted records do not count
    await create(client, "leads", team.admin, email="dup@acme.test")
    await create(client, "accounts", team.admin, email="acct@acme.test")
    gone = await create(client, "accounts", team.admin, name="Gone", email="gone@acme.test")
    await client.delete(f"/api/accounts/{gone['id']}", headers=team.admin)
    await create(client, "accounts", team.admin, name="Again", email="gone@acme.test")
    status, body = await _post(
        client, "/api/accounts", {"name": "Twin", "email": "acct@acme.test"}, team.admin
    )
    assert status == 409


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
