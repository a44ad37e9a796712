"""CSV import/export and bulk update/delete of CRM records, on both backends."""

from __future__ import annotations

import csv
import io
import itertools
import json
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from aisha_server import keys
from aisha_server.config import Settings
from aisha_server.db.models import Tenant
from aisha_server.db.models.sync import SyncChange
from aisha_server.services.record_io import ExportParams
from tests.factories import (
    SeededUser,
    contacts_analysed,
    make_tenant,
    make_user,
    user_with_headers,
)


@dataclass
class Team:
    tenant: Tenant
    other: Tenant
    admin: dict[str, str]
    manager: dict[str, str]
    employee: dict[str, str]
    support: dict[str, str]
    outsider: dict[str, str]
    employee_user: SeededUser


@pytest.fixture
async def team(client: Any) -> Team:
    app = client.app
    tenant = await make_tenant(app, "Import Inc")
    other = await make_tenant(app, "Elsewhere")
    _, admin = await user_with_headers(app, "admin", tenant.id)
    _, manager = await user_with_headers(app, "manager", tenant.id, department="Sales")
    employee_user, employee = await user_with_headers(
        app, "employee", tenant.id, department="Sales"
    )
    _, support = await user_with_headers(app, "support", tenant.id)
    _, outsider = await user_with_headers(app, "admin", other.id)
    return Team(tenant, other, admin, manager, employee, support, outsider, employee_user)


async def upload(
    client: Any,
    entity: str,
    content: bytes | str,
    headers: dict[str, str],
    *,
    raw: bool = False,
    **options: Any,
) -> tuple[int, dict[str, Any]]:
    data = content.encode() if isinstance(content, str) else content
    params = {k: (json.dumps(v) if isinstance(v, dict) else str(v).lower() if isinstance(v, bool)
                  else str(v)) for k, v in options.items()}  # fmt: skip
    if raw:
        resp = await client.post(
            f"/api/{entity}/import",
            data=io.BytesIO(data),
            params=params,
            headers={**headers, "Content-Type": "text/csv"},
        )
    else:
        form = aiohttp.FormData()
        form.add_field("file", io.BytesIO(data), filename="in.csv", content_type="text/csv")
        for key, value in params.items():
            form.add_field(key, value)
        resp = await client.post(f"/api/{entity}/import", data=form, headers=headers)
    return resp.status, await resp.json()


async def listed(client: Any, entity: str, headers: dict[str, str], query: str = "") -> list[Any]:
    resp = await client.get(f"/api/{entity}?limit=500{query}", headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    return list(body["data"])


async def export(client: Any, entity: str, headers: dict[str, str], query: str = "") -> Any:
    return await client.get(f"/api/{entity}/export{query}", headers=headers)


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


CONTACTS = "first_name,last_name,email,phone,tags\nAda,Lovelace,ada@example.com,+1 555,vip;new\n" \
    "Alan,Turing,alan@example.com,,\n"  # fmt: skip


async def test_create_import_multipart_and_raw(client: Any, team: Team) -> None:
    status, body = await upload(client, "contacts", CONTACTS, team.admin)
    assert status == 201, body
    data = body["data"]
    assert data["totals"] == {"rows": 2, "created": 2, "updated": 0, "skipped": 0, "errors": 0}
    assert [r["row"] for r in data["rows"]] == [1, 2]
    assert all(r["status"] == "created" and r["id"] for r in data["rows"])
    got = {r["email"]: r for r in await listed(client, "contacts", team.admin)}
    assert set(got) == {"ada@example.com", "alan@example.com"}
    ada = got["ada@example.com"]
    assert ada["tags"] == ["vip", "new"] and ada["phone"] == "+1 555" and ada["version"] == 1
    assert ada["id"] == data["rows"][0]["id"]
    assert got["alan@example.com"]["phone"] is None

    status, body = await upload(client, "accounts", "name,industry\nAcme,Software\n",
                                team.admin, raw=True)  # fmt: skip
    assert status == 201, body
    assert [a["name"] for a in await listed(client, "accounts", team.admin)] == ["Acme"]


async def test_bom_crlf_quotes_newlines_and_blank_lines(client: Any, team: Team) -> None:
    text = (
        "first_name,last_name,description\r\n"
        '"Smith, Jr.",O\'Neil,"line one\r\nline ""two"""\r\n'
        "\r\n"
        ",,\r\n"
        "Bo,Bar,plain\r\n"
    )
    status, body = await upload(client, "contacts", "\ufeff".encode() + text.encode(), team.admin)
    assert status == 201, body
    assert body["data"]["totals"]["created"] == 2
    assert [r["row"] for r in body["data"]["rows"]] == [1, 2]
    got = {r["first_name"]: r for r in await listed(client, "contacts", team.admin)}
    assert got["Smith, Jr."]["description"] == 'line one\r\nline "two"'
    assert got["Smith, Jr."]["last_name"] == "O'Neil"
    assert got["Bo"]["description"] == "plain"


async def test_bad_files(client: Any, team: Team) -> None:
    cases: list[tuple[bytes, int, str]] = [
        (b"", 400, "empty_file"),
        (b"\n\n", 400, "empty_file"),
        ("name\nCaf\u00e9\n".encode("latin-1"), 400, "not_utf8"),
        (b'name,industry\n"Acme,Software\n', 400, "bad_csv"),  # unterminated quote
        (b"colour,size\nred,big\n", 422, "bad_header"),
        # only separators: there is no header (these were a 500)
        (b",,,\n", 400, "empty_file"),
        (b" , \n,,\n", 400, "empty_file"),
        ("\ufeff,\n".encode(), 400, "empty_file"),
    ]
    for content, status, code in cases:
        got, body = await upload(client, "accounts", content, team.admin)
        assert (got, body.get("code")) == (status, code), (content, body)
    status, body = await upload(client, "accounts", "Company\nAcme\n", team.admin,
                                mapping={"Company": "nmae"})  # fmt: skip
    assert status == 422 and body["code"] == "bad_mapping"
    assert "nmae" in body["details"][0]["message"]
    status, body = await upload(client, "accounts", "Company\nAcme\n", team.admin,
                                mapping="{not json")  # fmt: skip
    assert status == 400
    status, body = await upload(client, "accounts", "Company\nAcme\n", team.admin, mode="merge")
    assert status == 422
    assert await listed(client, "accounts", team.admin) == []


async def test_semicolons_tabs_ignored_columns_and_nul_characters(client: Any, team: Team) -> None:
    # a spreadsheet's "CSV" with semicolons (or tabs) between fields
    for separator in (";", "\t"):
        text = separator.join(["name", "industry", "colour"]) + "\n"
        text += separator.join([f"Semi{ord(separator)}", "Software, Tools", "red"]) + "\n"
        status, body = await upload(client, "accounts", text, team.admin)
        assert status == 201, body
        # a column that maps to no field is named in the report, not dropped silently
        assert body["data"]["ignored_columns"] == ["colour"]
    names = {a["name"]: a for a in await listed(client, "accounts", team.admin)}
    assert names["Semi59"]["industry"] == "Software, Tools" and "Semi9" in names

    # NUL characters: refused per row, as the JSON API refuses them (this was stored)
    text = "title,content\nT\x00,has\x00nul\nFine,ok\n"
    status, body = await upload(client, "notes", text, team.admin)
    assert status == 422 and body["code"] == "import_rejected", body
    [bad] = body["details"]
    assert bad["row"] == 1
    assert {e["field"] for e in bad["errors"]} >= {"title", "content"}
    assert all("NUL" in e["message"] for e in bad["errors"] if e["field"] in ("title", "content"))
    assert await listed(client, "notes", team.admin) == []
    status, body = await upload(client, "notes", text, team.admin, on_error="skip")
    assert status == 201, body
    assert [n["title"] for n in await listed(client, "notes", team.admin)] == ["Fine"]

    # a mapped column the header names twice is ambiguous (one of them was used silently)
    status, body = await upload(client, "contacts", "E,E\na@x.example,b@x.example\n",
                                team.admin, mapping={"E": "email"})  # fmt: skip
    assert status == 422 and body["code"] == "bad_mapping", body
    assert "more than once" in body["details"][0]["message"]


async def test_mapping_and_custom_fields(client: Any, team: Team) -> None:
    resp = await client.post(
        "/api/custom-fields",
        json={"entity": "contact", "field_name": "referral", "field_type": "select",
              "options": ["Website", "Event"]},
        headers=team.admin,
    )  # fmt: skip
    assert resp.status == 201, await resp.json()
    text = "Given,Family,Ref\nAda,L,Website\nBob,M,Nowhere\n"
    mapping = {"Given": "first_name", "Family": "last_name", "Ref": "cf.referral"}
    status, body = await upload(client, "contacts", text, team.admin, mapping=mapping)
    assert status == 422 and body["code"] == "import_rejected"
    assert [(r["row"], r["errors"][0]["field"]) for r in body["details"]] == [
        (2, "custom_fields.referral")
    ]
    assert await listed(client, "contacts", team.admin) == []  # rollback: nothing written

    status, body = await upload(client, "contacts", text, team.admin, mapping=mapping,
                                on_error="skip")  # fmt: skip
    assert status == 201, body
    assert [r["status"] for r in body["data"]["rows"]] == ["created", "error"]
    assert body["data"]["totals"]["errors"] == 1
    (ada,) = await listed(client, "contacts", team.admin)
    assert ada["custom_fields"] == {"referral": "Website"} and ada["last_name"] == "L"

    # default mapping picks cf.<name> columns by name
    status, body = await upload(client, "contacts", "first_name,cf.referral\nCy,Event\n",
                                team.admin)  # fmt: skip
    assert status == 201, body
    exported = await export(client, "contacts", team.admin, "?q=cy")
    rows = rows_of(await exported.text())
    assert [(r["first_name"], r["cf.referral"]) for r in rows] == [("Cy", "Event")]


async def test_number_and_boolean_custom_fields_read_from_text(client: Any, team: Team) -> None:
    """A CSV holds text: "42" imports as the number 42 and "TRUE" as true, as filters read
    them; text that is no number or boolean is that row's error."""
    for name, kind in (("size", "number"), ("vip", "boolean")):
        resp = await client.post(
            "/api/custom-fields",
            json={"entity": "contact", "field_name": name, "field_type": kind},
            headers=team.admin,
        )
        assert resp.status == 201, await resp.json()
    text = "first_name,cf.size,cf.vip\nAda,42,TRUE\nBob,-1.5,false\nCy,many,true\nDi,3,maybe\n"
    status, body = await upload(client, "contacts", text, team.admin, on_error="skip")
    assert status == 201, body
    assert [(r["row"], r["status"], [e["field"] for e in r["errors"]])
            for r in body["data"]["rows"]] == [
        (1, "created", []), (2, "created", []), (3, "error", ["custom_fields.size"]),
        (4, "error", ["custom_fields.vip"]),
    ]  # fmt: skip
    stored = {
        c["first_name"]: c["custom_fields"] for c in await listed(client, "contacts", team.admin)
    }
    assert stored == {"Ada": {"size": 42, "vip": True}, "Bob": {"size": -1.5, "vip": False}}
    assert type(stored["Ada"]["size"]) is int


async def test_dry_run_writes_nothing(client: Any, team: Team) -> None:
    status, body = await upload(client, "contacts", CONTACTS, team.admin, dry_run=True)
    assert status == 200, body
    assert body["data"]["dry_run"] is True and body["data"]["totals"]["created"] == 2
    assert await listed(client, "contacts", team.admin) == []


async def test_rollback_versus_skip_and_row_validation(client: Any, team: Team) -> None:
    text = (
        "name,employee_count,annual_revenue\n"
        "Good,10,100.50\n"
        "Bad count,many,\n"
        ",3,\n"  # name required
        "Bad money,1,1.234\n"
    )
    status, body = await upload(client, "accounts", text, team.admin)
    assert status == 422, body
    fields = {r["row"]: {e["field"] for e in r["errors"]} for r in body["details"]}
    assert fields == {2: {"employee_count"}, 3: {"name"}, 4: {"annual_revenue"}}
    assert await listed(client, "accounts", team.admin) == []
    status, body = await upload(client, "accounts", text, team.admin, on_error="skip")
    assert status == 201
    assert body["data"]["totals"] == {"rows": 4, "created": 1, "updated": 0, "skipped": 0,
                                      "errors": 3}  # fmt: skip
    (good,) = await listed(client, "accounts", team.admin)
    assert good["name"] == "Good" and good["employee_count"] == 10


async def test_links_must_exist_in_the_tenant(client: Any, team: Team) -> None:
    ours = await client.post("/api/accounts", json={"name": "Ours"}, headers=team.admin)
    ours_id = (await ours.json())["data"]["id"]
    theirs = await client.post("/api/accounts", json={"name": "Theirs"}, headers=team.outsider)
    theirs_id = (await theirs.json())["data"]["id"]
    text = f"first_name,account_id\nA,{ours_id}\nB,{theirs_id}\nC,{uuid.uuid4()}\n"
    status, body = await upload(client, "contacts", text, team.admin, on_error="skip")
    assert status == 201
    assert [r["status"] for r in body["data"]["rows"]] == ["created", "error", "error"]
    assert body["data"]["rows"][1]["errors"][0]["field"] == "account_id"


async def test_update_and_upsert_modes(client: Any, team: Team) -> None:
    status, body = await upload(client, "contacts", CONTACTS, team.admin)
    assert status == 201
    ada_id = body["data"]["rows"][0]["id"]
    text = "email,title\nada@example.com,Countess\nnobody@example.com,Ghost\n"
    status, body = await upload(client, "contacts", text, team.admin, mode="update", match="email")
    assert status == 422  # an unmatched row fails an update import
    assert body["details"][0]["row"] == 2
    status, body = await upload(client, "contacts", text, team.admin, mode="upsert",
                                match="email")  # fmt: skip
    assert status == 201, body
    assert [r["status"] for r in body["data"]["rows"]] == ["updated", "created"]
    assert body["data"]["rows"][0]["id"] == ada_id
    got = {r["email"]: r for r in await listed(client, "contacts", team.admin)}
    assert got["ada@example.com"]["title"] == "Countess"
    assert got["ada@example.com"]["version"] == 2
    assert got["ada@example.com"]["first_name"] == "Ada"  # untouched
    assert got["nobody@example.com"]["title"] == "Ghost"

    # by id; the same values again are "skipped"
    text = f"id,title\n{ada_id},Countess\n"
    status, body = await upload(client, "contacts", text, team.admin, mode="update")
    assert status == 201 and body["data"]["rows"][0]["status"] == "skipped"
    text = f"id,title\n{ada_id},Analyst\n"
    status, body = await upload(client, "contacts", text, team.admin, mode="update", match="id")
    assert status == 201 and body["data"]["rows"][0]["status"] == "updated"
    assert got["ada@example.com"]["id"] == ada_id
    # phone is no column of notes; email is not either
    status, body = await upload(client, "notes", "content\nx\n", team.admin, mode="update",
                                match="email")  # fmt: skip
    assert status == 422 and body["code"] == "bad_match"


async def test_another_tenants_ids_are_not_found(client: Any, team: Team) -> None:
    theirs = await client.post("/api/accounts", json={"name": "Theirs"}, headers=team.outsider)
    theirs_id = (await theirs.json())["data"]["id"]
    text = f"id,name\n{theirs_id},Hijacked\n"
    for mode in ("update", "upsert"):
        status, body = await upload(client, "accounts", text, team.admin, mode=mode)
        assert status == 422, body
        assert body["details"][0]["errors"][0]["message"] == "account not found"
    (row,) = await listed(client, "accounts", team.outsider)
    assert row["name"] == "Theirs" and row["version"] == 1
    assert await listed(client, "accounts", team.admin) == []


async def test_roles_and_scope(client: Any, team: Team) -> None:
    status, body = await upload(client, "contacts", CONTACTS, team.support)
    assert status == 403, body
    # an employee imports records it owns; updating another's record is refused
    status, body = await upload(client, "contacts", CONTACTS, team.admin)
    ada_id = body["data"]["rows"][0]["id"]
    status, body = await upload(client, "contacts", "first_name\nMine\n", team.employee)
    assert status == 201, body
    mine = await listed(client, "contacts", team.employee)
    assert [r["first_name"] for r in mine] == ["Mine"]
    assert mine[0]["owner_id"] == str(team.employee_user.id)
    status, body = await upload(client, "contacts", f"id,title\n{ada_id},X\n", team.employee,
                                mode="update")  # fmt: skip
    assert status == 422 and body["details"][0]["errors"][0]["message"] == "contact not found"
    status, body = await upload(client, "contacts", f"first_name,owner_id\nZ,{uuid.uuid4()}\n",
                                team.employee)  # fmt: skip
    assert status == 422 and body["details"][0]["errors"][0]["field"] == "owner_id"
    # exporting needs Export Data: managers yes, employees no
    assert (await export(client, "contacts", team.employee)).status == 403
    assert (await export(client, "contacts", team.manager)).status == 200


async def test_upload_limit(client: Any, team: Team, settings: Settings) -> None:
    big = "name\n" + "x\n" * (settings.AISHA_MAX_UPLOAD_BYTES // 2 + 10)
    status, body = await upload(client, "accounts", big, team.admin, raw=True)
    assert status == 413, body
    status, body = await upload(client, "accounts", big, team.admin)
    assert status == 413, body


async def test_export_matches_the_list(client: Any, team: Team) -> None:
    lines = ["first_name,last_name,email,status"]
    lines += [f"P{i},Q{i},p{i}@example.com,{'active' if i % 2 else 'new'}" for i in range(25)]
    status, _ = await upload(client, "contacts", "\n".join(lines) + "\n", team.admin)
    assert status == 201
    # an employee's own record, and an odd value that needs quoting
    await upload(client, "contacts", 'first_name,description\nEmp,"a, ""b""\nc"\n', team.employee)
    for query in ("", "?status=active", "?q=p1", "?q=1&match=contains", "?q=q2 p2",
                  f"?owner_id={team.employee_user.id}"):  # fmt: skip
        resp = await export(client, "contacts", team.admin, query)
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in resp.headers["Content-Disposition"]
        rows = rows_of(await resp.text())
        shown = await listed(client, "contacts", team.admin, "&" + query[1:] if query else "")
        assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in shown), query
        by_id = {r["id"]: r for r in shown}
        for row in rows:
            assert row["email"] == (by_id[row["id"]]["email"] or "")
            assert row["description"] == (by_id[row["id"]]["description"] or "")
    resp = await export(client, "contacts", team.admin)
    header = (await resp.text()).splitlines()[0].split(",")
    assert header[:3] == ["id", "first_name", "last_name"] and "custom_fields" not in header
    # the manager sees the Sales department's records only
    rows = rows_of(await (await export(client, "contacts", team.manager)).text())
    assert [r["first_name"] for r in rows] == ["Emp"]
    assert (await export(client, "contacts", team.admin, "?colour=red")).status == 422


async def _service_export(
    client: Any, team: Team, entity: str, params: ExportParams, batch: int
) -> tuple[int, list[dict[str, str]]]:
    """(chunks written, rows) of an export through the service, `batch` records a read."""
    token = team.admin["Authorization"].split()[1]
    who = await client.app[keys.AUTH_GATE].principal_for_token(token)
    service = client.app[keys.RECORD_IO_SERVICE]
    plan = await service.export_plan(who, team.tenant.id, entity, params)
    chunks = [c async for c in service.export_batches(plan, batch=batch)]
    return len(chunks), rows_of(b"".join(chunks).decode())


async def test_export_batches_cover_everything(client: Any, team: Team) -> None:
    lines = ["name"] + [f"N{i}" for i in range(7)]
    await upload(client, "accounts", "\n".join(lines) + "\n", team.admin)
    count, rows = await _service_export(client, team, "accounts", ExportParams(), batch=3)
    assert count == 4  # the header, then batches of 3, 3 and 1
    assert sorted(r["name"] for r in rows) == [f"N{i}" for i in range(7)]
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)  # by id without a sort


# last names with ties (the keyset's id tie-break) and gaps (empty values come last)
SORTABLE = "first_name,last_name,email\n" + "".join(
    f"F{i},{['Baker', 'adams', 'Carter', '', 'Baker'][i % 5]},{'' if i % 4 == 0 else f'e{i}@x.io'}\n"
    for i in range(23)
)


@pytest.mark.parametrize("sort", ["last_name", "-last_name", "email", "-email", "-updated_at",
                                  "created_at"])  # fmt: skip
async def test_export_follows_the_sort_across_batches(client: Any, team: Team, sort: str) -> None:
    status, body = await upload(client, "contacts", SORTABLE, team.admin)
    assert status == 201, body
    name = sort.lstrip("-")
    for batch in (2, 5, 1000):
        _, rows = await _service_export(
            client, team, "contacts", ExportParams(sort=sort), batch=batch
        )
        assert len(rows) == 23 and len({r["id"] for r in rows}) == 23
        filled = [r for r in rows if r[name]]
        empty = [r for r in rows if not r[name]]
        assert rows == filled + empty, "records with no value come last"
        # the database's order of the values (as on the list), ties by id in the same direction
        descending = sort.startswith("-")
        listed_order = await listed(client, "contacts", team.admin, f"&sort={sort}")
        values = [r[name] for r in listed_order if r[name]]
        assert [r[name] for r in filled] == values
        key = [(r[name], r["id"]) for r in filled]
        for (value, id_), (next_value, next_id) in itertools.pairwise(key):
            if value == next_value:
                assert (id_ > next_id) if descending else (id_ < next_id)
        assert [r["id"] for r in empty] == sorted(r["id"] for r in empty)


async def test_export_sort_and_columns_over_http(client: Any, team: Team) -> None:
    resp = await client.post(
        "/api/custom-fields",
        json={"entity": "contact", "field_name": "tier", "field_type": "select",
              "options": ["gold", "silver"]},
        headers=team.admin,
    )  # fmt: skip
    assert resp.status == 201, await resp.json()
    text = "first_name,last_name,email,cf.tier\nAda,Zed,ada@x.io,gold\nBob,Ames,,silver\n" \
        "Cy,Moss,cy@x.io,gold\n"  # fmt: skip
    status, body = await upload(client, "contacts", text, team.admin)
    assert status == 201, body
    resp = await export(client, "contacts", team.admin,
                        "?sort=last_name&columns=cf.tier,last_name, email")  # fmt: skip
    assert resp.status == 200
    assert (await resp.text()).splitlines() == [
        "cf.tier,last_name,email", "silver,Ames,", "gold,Moss,cy@x.io", "gold,Zed,ada@x.io"
    ]  # fmt: skip
    # custom-field filters and date ranges, as on the list
    resp = await export(client, "contacts", team.admin, "?cf.tier=gold&sort=-last_name"
                        "&columns=first_name&created_from=2000-01-01T00:00:00Z")  # fmt: skip
    assert (await resp.text()).splitlines() == ["first_name", "Ada", "Cy"]
    resp = await export(client, "contacts", team.admin, "?created_to=2000-01-01T00:00:00Z")
    assert len((await resp.text()).splitlines()) == 1  # the header only

    for query, field in (
        ("?columns=first_name,shoe_size", "columns"),
        ("?columns=first_name,first_name", "columns"),
        ("?columns=,", "columns"),
        ("?columns=email,", "columns"),  # a comma too many is not silently dropped
        ("?columns=email,,first_name", "columns"),
        ("?columns=email&columns=first_name", "columns"),  # given twice
        ("?limit=1&limit=2", "limit"),
        ("?columns=cf.nope", "columns"),
        ("?sort=phone", "sort"),
        ("?cf.nope=1", "cf.nope"),
        ("?colour=red", "colour"),
        ("?created_from=yesterday", "created_from"),
    ):
        resp = await export(client, "contacts", team.admin, query)
        body = await resp.json()
        assert resp.status == 422, (query, body)
        assert body["status"] == "error" and body["message"]
        assert any(d.get("field") == field for d in body.get("details") or []), (query, body)


async def test_an_upsert_logs_each_changed_record_once(client: Any, team: Team) -> None:
    """Updates an import makes are flushed together: each changed record still gets its
    version bump and one change-log entry with its old and new values; unchanged rows none."""
    people = "first_name,email,title\n" + "".join(f"P{i},p{i}@x.io,Clerk\n" for i in range(6))
    status, body = await upload(client, "contacts", people, team.admin)
    assert status == 201, body
    ids = [r["id"] for r in body["data"]["rows"]]
    again = "email,title\n" + "".join(
        f"P{i}@X.io,{'Boss' if i % 2 else 'Clerk'}\n" for i in range(6)
    )
    status, body = await upload(client, "contacts", again, team.admin, mode="upsert",
                                match="email")  # fmt: skip
    assert status == 201, body
    assert [r["status"] for r in body["data"]["rows"]] == ["skipped", "updated"] * 3

    def read(session: Any) -> list[SyncChange]:
        query = select(SyncChange).where(SyncChange.tenant_id == team.tenant.id)
        return list(session.scalars(query.order_by(SyncChange.seq)))

    log = await client.app[keys.DB].run(read, tenant_id=team.tenant.id, write=False)
    assert [c.seq for c in log] == list(range(1, len(log) + 1))
    later = [c for c in log if c.version == 2]
    assert sorted(str(c.record_id) for c in later) == sorted(ids[1::2])
    assert all(c.changes == {"title": ["Clerk", "Boss"]} and c.op == "upsert" for c in later)
    got = {r["id"]: r for r in await listed(client, "contacts", team.admin)}
    assert [got[i]["version"] for i in ids] == [1, 2] * 3
    assert [got[i]["title"] for i in ids] == ["Clerk", "Boss"] * 3


async def test_a_large_import_refreshes_the_tables_statistics(
    client: Any, team: Team, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aisha_server.services import record_io

    async def analysed() -> int:
        return await contacts_analysed(client.app[keys.DB], backend)

    monkeypatch.setattr(record_io, "ANALYZE_AFTER_ROWS", 3)
    await upload(client, "contacts", "first_name\nA\nB\n", team.admin)  # below: no ANALYZE
    assert await analysed() == 0
    await upload(client, "contacts", "first_name\nA\nB\nC\n", team.admin)
    assert await analysed() > 0


async def test_imported_links_point_at_records_the_importer_can_see(
    client: Any, team: Team
) -> None:
    resp = await client.post("/api/accounts", json={"name": "Hidden"}, headers=team.admin)
    hidden = (await resp.json())["data"]["id"]
    text = f"content,related_type,related_id\nspy,account,{hidden}\n"
    status, body = await upload(client, "notes", text, team.employee)
    assert status == 422, body
    assert body["details"][0]["errors"] == [{"field": "related_id", "message": "no such account"}]
    assert await listed(client, "notes", team.admin) == []

    # a contact of the employee's that an admin filed under the hidden account: exporting
    # and importing it back (the same link) is no new link
    _, body = await upload(client, "contacts", "first_name,email\nCy,cy@x.example\n",
                           team.employee)  # fmt: skip
    [contact_id] = [r["id"] for r in body["data"]["rows"]]
    resp = await client.patch(
        f"/api/contacts/{contact_id}", json={"account_id": hidden}, headers=team.admin
    )
    assert resp.status == 200
    text = f"id,first_name,account_id\n{contact_id},Cyril,{hidden}\n"
    status, body = await upload(client, "contacts", text, team.employee, mode="update")
    assert status == 201, body
    assert body["data"]["rows"][0]["status"] == "updated"


async def test_bulk_update_refuses_other_tenants_people(client: Any, team: Team) -> None:
    stranger = await make_user(client.app, role="employee", tenant_id=team.other.id)
    _, body = await upload(client, "accounts", "name\nAcme\n", team.admin)
    [account_id] = [r["id"] for r in body["data"]["rows"]]
    for changes in ({"owner_id": str(stranger.id)}, {"assigned_to": str(stranger.id)}):
        resp = await client.post(
            "/api/accounts/bulk-update",
            json={"ids": [account_id], "changes": changes},
            headers=team.admin,
        )
        answer = await resp.json()
        assert resp.status == 422, answer  # it answered 200 and stored them
        assert answer["details"][0]["message"] == "no such user in this tenant"
    (acme,) = await listed(client, "accounts", team.admin)
    assert acme["owner_id"] != str(stranger.id) and acme["assigned_to"] is None
    assert acme["version"] == 1


async def test_bulk_update_and_delete(client: Any, team: Team) -> None:
    _, body = await upload(client, "contacts", CONTACTS, team.admin)
    ada_id, alan_id = (r["id"] for r in body["data"]["rows"])
    await upload(client, "contacts", "first_name\nMine\n", team.employee)
    (mine,) = await listed(client, "contacts", team.employee)
    theirs = await client.post("/api/contacts", json={"first_name": "T"}, headers=team.outsider)
    theirs_id = (await theirs.json())["data"]["id"]
    missing = str(uuid.uuid4())

    resp = await client.post(
        "/api/contacts/bulk-update",
        json={"ids": [mine["id"], ada_id, theirs_id, missing], "changes": {"title": "Boss"}},
        headers=team.employee,
    )
    body = await resp.json()
    assert resp.status == 200, body
    statuses = [(r["id"], r["status"]) for r in body["data"]["results"]]
    assert statuses == [(mine["id"], "updated"), (ada_id, "not_found"),
                        (theirs_id, "not_found"), (missing, "not_found")]  # fmt: skip
    assert body["data"]["totals"]["updated"] == 1
    got = {r["id"]: r for r in await listed(client, "contacts", team.admin)}
    assert got[mine["id"]]["title"] == "Boss" and got[ada_id]["title"] is None

    bad = await client.post(
        "/api/contacts/bulk-update",
        json={"ids": [ada_id], "changes": {"score": 3}},
        headers=team.admin,
    )
    assert bad.status == 422
    resp = await client.post(
        "/api/contacts/bulk-update",
        json={"ids": [ada_id, alan_id], "changes": {"account_id": str(uuid.uuid4())}},
        headers=team.admin,
    )
    assert [r["status"] for r in (await resp.json())["data"]["results"]] == ["error", "error"]
    too_many = await client.post(
        "/api/contacts/bulk-delete",
        json={"ids": [str(uuid.uuid4()) for _ in range(1001)]},
        headers=team.admin,
    )
    assert too_many.status == 422

    # employees may not delete; admins delete what they see, others' ids are not found
    denied = await client.post("/api/contacts/bulk-delete", json={"ids": [mine["id"]]},
                               headers=team.employee)  # fmt: skip
    assert denied.status == 403
    resp = await client.post(
        "/api/contacts/bulk-delete", json={"ids": [ada_id, theirs_id]}, headers=team.admin
    )
    body = await resp.json()
    assert [r["status"] for r in body["data"]["results"]] == ["deleted", "not_found"]
    left = {r["id"] for r in await listed(client, "contacts", team.admin)}
    assert ada_id not in left and alan_id in left
    assert len(await listed(client, "contacts", team.outsider)) == 1


async def test_emails_and_phones_are_normalised_and_matched(client: Any, team: Team) -> None:
    text = "first_name,email,phone\nA,Ann@Example.COM,(212) 555-0100\nB,not-an-email,\n"
    status, body = await upload(client, "contacts", text, team.admin)
    assert status == 422 and body["details"][0]["row"] == 2
    assert body["details"][0]["errors"][0]["field"] == "email"
    status, body = await upload(client, "contacts", text, team.admin, on_error="skip")
    assert status == 201
    (ann,) = await listed(client, "contacts", team.admin)
    assert ann["email"] == "ann@example.com" and ann["phone"] == "(212) 555-0100"
    # the E.164 form of a phone finds the record typed differently
    status, body = await upload(client, "contacts", "phone,title\n+12125550100,Chief\n",
                                team.admin, mode="update", match="phone")  # fmt: skip
    assert status == 201, body
    assert body["data"]["rows"][0] == {"row": 1, "status": "updated", "id": ann["id"],
                                       "errors": []}  # fmt: skip
    (ann,) = await listed(client, "contacts", team.admin)
    assert ann["title"] == "Chief" and ann["phone"] == "+12125550100"
    # an address in any case finds the stored (lower-cased) one
    status, body = await upload(client, "contacts", "email,title\nANN@example.Com,Owner\n",
                                team.admin, mode="upsert", match="email")  # fmt: skip
    assert status == 201 and body["data"]["rows"][0]["status"] == "updated", body
    # a phone that is no number is matched as typed
    status, body = await upload(client, "contacts", "first_name,phone\nDesk,ext. 44\n",
                                team.admin)  # fmt: skip
    assert status == 201, body
    status, body = await upload(client, "contacts", "phone,title\next. 44,Reception\n",
                                team.admin, mode="update", match="phone")  # fmt: skip
    assert status == 201 and body["data"]["rows"][0]["status"] == "updated", body
    titles = {r["first_name"]: r["title"] for r in await listed(client, "contacts", team.admin)}
    assert titles == {"A": "Owner", "Desk": "Reception"}


async def test_owner_and_assignee_must_be_users_of_the_tenant(client: Any, team: Team) -> None:
    me = await (await client.get("/api/auth/me", headers=team.admin)).json()
    outsider = await (await client.get("/api/auth/me", headers=team.outsider)).json()
    admin_id, outsider_id = me["data"]["user"]["id"], outsider["data"]["user"]["id"]
    text = (
        "first_name,owner_id,assigned_to\n"
        f"A,{admin_id},\n"  # the importer: fine
        f"B,{uuid.uuid4()},\n"  # nobody
        f"C,,{outsider_id}\n"  # another tenant's user
    )
    status, body = await upload(client, "contacts", text, team.admin, on_error="skip")
    assert status == 201, body
    rows = body["data"]["rows"]
    assert [r["status"] for r in rows] == ["created", "error", "error"]
    assert rows[1]["errors"][0]["field"] == "owner_id"
    assert rows[2]["errors"][0]["field"] == "assigned_to"
    # all-or-nothing (the default): a clear 422 report, nothing written, no database error
    status, body = await upload(client, "contacts", f"first_name,owner_id\nD,{uuid.uuid4()}\n",
                                team.admin)  # fmt: skip
    assert status == 422 and body["code"] == "import_rejected", body
    assert [c["first_name"] for c in await listed(client, "contacts", team.admin)] == ["A"]


async def test_new_rows_like_existing_records_or_earlier_rows_need_confirming(
    client: Any, team: Team
) -> None:
    """An import's creates follow the records API's duplicate rule: a row whose e-mail or
    phone is a visible record's (contacts also against open leads) or an earlier new row's is
    its error, unless the import confirms duplicates."""
    for entity, body in (
        ("contacts", {"first_name": "Old", "email": "old@x.example", "phone": "(212) 555-0100"}),
        ("leads", {"first_name": "Lead", "email": "lead@x.example"}),
    ):
        resp = await client.post(f"/api/{entity}", json=body, headers=team.admin)
        assert resp.status == 201, await resp.json()
    # the manager's colleague in another department has one the employee cannot see
    resp = await client.post(
        "/api/contacts", json={"first_name": "Hid", "email": "hidden@x.example"},
        headers=team.admin,
    )  # fmt: skip
    assert resp.status == 201
    text = (
        "first_name,email,phone\n"
        "A,OLD@x.example,\n"  # 1: the contact's e-mail (any case)
        "B,new@x.example,\n"  # 2: new
        "C,new@x.example,\n"  # 3: row 2's e-mail
        "D,,212.555.0100\n"  # 4: the contact's phone, written otherwise
        "E,lead@x.example,\n"  # 5: an open lead's e-mail
        "F,f@x.example,+1 212 555 0199\n"  # 6: new
    )
    status, body = await upload(client, "contacts", text, team.admin)
    assert status == 422 and body["code"] == "import_rejected", body
    found = {r["row"]: r["errors"] for r in body["details"]}
    assert sorted(found) == [1, 3, 4, 5]
    assert "contact" in found[1][0]["message"] and found[1][0]["field"] == "email"
    assert "row 2 of this file" in found[3][0]["message"]
    assert found[4][0]["field"] == "phone" and "lead" in found[5][0]["message"]
    assert all("confirm_duplicates=true" in e[0]["message"] for e in found.values())
    assert len(await listed(client, "contacts", team.admin)) == 2  # nothing written

    status, body = await upload(client, "contacts", text, team.admin, dry_run=True,
                                on_error="skip")  # fmt: skip
    assert status == 200
    assert [r["status"] for r in body["data"]["rows"]] == [
        "error", "created", "error", "error", "error", "created"
    ]  # fmt: skip
    status, body = await upload(client, "contacts", text, team.admin, confirm_duplicates=True)
    assert status == 201, body
    assert body["data"]["totals"]["created"] == 6

    # a record outside the importer's scope is not revealed as a duplicate
    status, body = await upload(
        client, "contacts", "first_name,email\nMe,hidden@x.example\n", team.employee
    )
    assert status == 201, body


async def test_the_pool_and_the_process_find_the_same_duplicates(client: Any, team: Team) -> None:
    pool = client.app[keys.VALIDATION_POOL]
    if pool.workers < 2:
        pytest.skip("one CPU: the pool is disabled")
    resp = await client.post(
        "/api/contacts", json={"first_name": "Old", "email": "p17@x.example"}, headers=team.admin
    )
    assert resp.status == 201
    lines = ["first_name,email,phone"]
    created_emails, created_phones = {"p17@x.example"}, set()
    expected = []
    for i in range(2_400):  # above PARALLEL_MIN_ROWS: checked in worker processes
        # every 100th row repeats an earlier e-mail, every 250th an earlier phone (a row
        # refused as a duplicate is not created, so repeating it is no duplicate)
        email = f"p{i - 50 if i % 100 == 99 else i}@x.example"
        number = (i - 7 if i % 250 == 249 else i) % 10_000
        lines.append(f"P{i},{email},+1 212 464 {number:04d}")
        if email in created_emails or number in created_phones:
            expected.append(i + 1)
        else:
            created_emails.add(email)
            created_phones.add(number)
    text = "\n".join(lines) + "\n"
    status, pooled = await upload(client, "contacts", text, team.admin, dry_run=True,
                                  on_error="skip")  # fmt: skip
    assert status == 200 and pool.started
    workers = pool.workers
    pool.workers = 0
    try:
        status, local = await upload(client, "contacts", text, team.admin, dry_run=True,
                                     on_error="skip")  # fmt: skip
    finally:
        pool.workers = workers
    assert status == 200
    assert pooled["data"] == local["data"]
    errors = [r["row"] for r in pooled["data"]["rows"] if r["errors"]]
    assert 18 in expected and len(expected) > 20
    assert errors == expected, (errors, expected)
    # a first load (the tenant has no contact or lead): chunks are written as they are
    # checked, and only the file's own repeats are duplicates
    status, body = await upload(client, "contacts", text, team.outsider, on_error="skip")
    assert status == 201, body
    errors = [r["row"] for r in body["data"]["rows"] if r["errors"]]
    assert errors == [n for n in expected if n != 18]
    assert body["data"]["totals"]["created"] == 2_400 - len(errors)


async def test_imported_people_need_a_name_an_email_or_a_phone(client: Any, team: Team) -> None:
    """An import row that would create (or leave) a contact with nothing to tell it by is the
    row's error, as a create through the API is."""
    text = "first_name,email,title\nAda,,Countess\n,,Ghost\n"
    status, body = await upload(client, "contacts", text, team.admin)
    assert status == 422, body
    (problem,) = body["details"]
    assert problem["row"] == 2
    assert {e["field"] for e in problem["errors"]} >= {"first_name", "email", "phone"}
    assert await listed(client, "contacts", team.admin) == []
    status, body = await upload(client, "contacts", text, team.admin, on_error="skip")
    assert status == 201 and body["data"]["totals"]["created"] == 1
    ada_id = body["data"]["rows"][0]["id"]
    # an update's blank cell leaves its field as it is: the name stays
    text = f"id,first_name,title\n{ada_id},,Analyst\n"
    status, body = await upload(client, "contacts", text, team.admin, mode="update")
    assert status == 201, body
    (ada,) = await listed(client, "contacts", team.admin)
    assert (ada["first_name"], ada["title"]) == ("Ada", "Analyst")


async def test_bulk_update_normalises_and_follows_the_duplicate_rule(
    client: Any, team: Team
) -> None:
    """A bulk update stores e-mails normalised and phones in E.164 as PATCH does, and gives no
    record an e-mail or phone another record has (or one this request already gave), unless
    confirmed."""
    _, body = await upload(client, "contacts", CONTACTS, team.admin)
    ada_id, alan_id = (r["id"] for r in body["data"]["rows"])
    _, body = await upload(client, "contacts", "first_name\nC\nD\n", team.admin)
    c_id, d_id = (r["id"] for r in body["data"]["rows"])

    async def bulk(ids: list[str], changes: dict[str, Any], **extra: Any) -> list[Any]:
        resp = await client.post(
            "/api/contacts/bulk-update", json={"ids": ids, "changes": changes, **extra},
            headers=team.admin,
        )  # fmt: skip
        body = await resp.json()
        assert resp.status == 200, body
        return list(body["data"]["results"])

    results = await bulk([c_id], {"email": "C@Example.COM", "phone": "(212) 555-0101"})
    assert [r["status"] for r in results] == ["updated"]
    got = {r["id"]: r for r in await listed(client, "contacts", team.admin)}
    assert got[c_id]["email"] == "c@example.com" and got[c_id]["phone_e164"] == "+12125550101"
    bad = await client.post("/api/contacts/bulk-update",
                            json={"ids": [d_id], "changes": {"email": "nope"}},
                            headers=team.admin)  # fmt: skip
    assert bad.status == 422 and (await bad.json())["details"][0]["field"] == "email"

    # Ada's e-mail on D: D is refused, naming Ada; the same phone on C and D: D is refused
    results = await bulk([d_id], {"email": got[ada_id]["email"]})
    assert results[0]["status"] == "duplicate" and ada_id in results[0]["message"]
    results = await bulk([alan_id, d_id], {"mobile": "212 555 0199"})
    assert [r["status"] for r in results] == ["updated", "duplicate"]
    assert alan_id in results[1]["message"]
    after = {r["id"]: r for r in await listed(client, "contacts", team.admin)}
    assert after[d_id]["email"] is None and after[d_id]["mobile"] is None
    assert after[alan_id]["mobile_e164"] == "+12125550199"
    # a value a record already has is not looked at again; confirmed, duplicates are saved
    results = await bulk([alan_id], {"mobile": "212 555 0199", "title": "Dr"})
    assert [r["status"] for r in results] == ["updated"]
    results = await bulk([d_id], {"email": got[ada_id]["email"]}, confirm_duplicates=True)
    assert [r["status"] for r in results] == ["updated"]
