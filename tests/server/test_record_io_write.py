"""The import's one write path (raw executemany on SQLite, COPY + INSERT ... SELECT on
PostgreSQL) against the ORM, its atomicity, and CSV formula escaping, on both backends."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.db.models import Contact
from aisha_server.services.record_io import insert_records
from aisha_server.services.records import SPECS
from tests.server.test_record_io import Team, export, listed, rows_of, team, upload

__all__ = ["team"]

VOLATILE = {"id", "created_at", "updated_at"}


async def test_imported_rows_equal_rows_created_through_the_api(
    client: Any, team: Team, backend: str
) -> None:
    fields = await client.post(
        "/api/custom-fields",
        json={"entity": "contact", "field_name": "segment", "field_type": "select",
              "options": ["smb", "mid"]},
        headers=team.admin,
    )  # fmt: skip
    assert fields.status == 201, await fields.json()
    body = {"first_name": "Ada", "last_name": "Lovelace", "email": "Ada@Example.com",
            "phone": "(212) 555-0100", "mobile": "+44 7700 900123", "title": "Countess",
            "company": "Engines", "tags": ["vip", "new"], "lead_source": "web",
            "custom_fields": {"segment": "mid"}}  # fmt: skip
    resp = await client.post("/api/contacts", json=body, headers=team.admin)
    assert resp.status == 201, await resp.json()
    made = (await resp.json())["data"]
    # the same record by import, another e-mail (its phones are the record's: confirmed)
    csv_text = (
        "first_name,last_name,email,phone,mobile,title,company,tags,lead_source,cf.segment\n"
        "Ada,Lovelace,Ada2@Example.com,(212) 555-0100,+44 7700 900123,Countess,Engines,"
        "vip;new,web,mid\n"
    )
    status, report = await upload(client, "contacts", csv_text, team.admin, confirm_duplicates=True)
    assert status == 201, report
    new_id = report["data"]["rows"][0]["id"]
    got = await client.get(f"/api/contacts/{new_id}", headers=team.admin)
    imported = (await got.json())["data"]
    assert imported["email"] == "ada2@example.com"
    made["email"] = imported["email"]
    assert {k: v for k, v in imported.items() if k not in VOLATILE} == {
        k: v for k, v in made.items() if k not in VOLATILE
    }
    assert imported["phone_e164"] == "+12125550100" and imported["version"] == 1

    # bit for bit in storage: every column has the same stored type and form
    def stored(session: Session) -> list[dict[str, Any]]:
        cols = [c.name for c in Contact.__table__.c if c.name not in VOLATILE]
        if backend == "sqlite":
            exprs = ", ".join(f'typeof("{c}"), quote("{c}")' for c in cols)
        else:
            exprs = ", ".join(f'pg_typeof("{c}")::text, "{c}"::text' for c in cols)
        rows = session.execute(
            text(f"SELECT {exprs} FROM contacts WHERE id IN (:a, :b) ORDER BY email"),
            {"a": _stored_id(backend, made["id"]), "b": _stored_id(backend, new_id)},
        ).all()
        return [dict(zip(cols, zip(r[0::2], r[1::2], strict=True), strict=True)) for r in rows]

    api_row, import_row = await client.app[keys.DB].run(stored, tenant_id=team.tenant.id)
    api_row.pop("email")
    import_row.pop("email")
    assert api_row == import_row


def _stored_id(backend: str, value: str) -> Any:
    return uuid.UUID(value).hex if backend == "sqlite" else uuid.UUID(value)


async def test_a_failing_row_inside_a_large_write_leaves_nothing(
    client: Any, team: Team, backend: str
) -> None:
    """A row the database refuses (an owner that does not exist: a foreign key) in the middle
    of 6,000 rows: the whole executemany / COPY + INSERT fails and nothing is written."""
    spec = SPECS["contacts"]
    rows: list[dict[str, Any]] = [
        {"first_name": f"F{i}", "email": f"p{i}@example.com", "tags": ["a"]} for i in range(6_000)
    ]
    rows[3_000]["owner_id"] = uuid.uuid4()
    db = client.app[keys.DB]

    def write(session: Session) -> list[uuid.UUID]:
        return insert_records(session, spec, team.tenant.id, rows)

    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await db.run(write, tenant_id=team.tenant.id)

    def count(session: Session) -> int:
        return int(session.scalar(select(func.count()).select_from(Contact)) or 0)

    assert await db.run(count, tenant_id=team.tenant.id) == 0
    # the same rows without the bad one go in, twice in one transaction (staging table reused)
    rows[3_000].pop("owner_id")

    def twice(session: Session) -> list[uuid.UUID]:
        return insert_records(session, spec, team.tenant.id, rows[:10]) + insert_records(
            session, spec, team.tenant.id, rows[10:]
        )

    ids = await db.run(twice, tenant_id=team.tenant.id)
    assert len(set(ids)) == 6_000 and ids[:10] == sorted(ids[:10])
    assert await db.run(count, tenant_id=team.tenant.id) == 6_000


async def test_large_import_with_a_bad_row_in_the_middle(client: Any, team: Team) -> None:
    lines = ["first_name,email,phone"]
    lines += [f"N{i},n{i}@example.com,(212) 555-{i % 10_000:04d}" for i in range(5_000)]
    lines[2_500] = "Bad,not-an-email,"
    status, body = await upload(client, "contacts", "\n".join(lines) + "\n", team.admin)
    assert status == 422 and body["code"] == "import_rejected"
    assert [d["row"] for d in body["details"]] == [2_500]
    assert await listed(client, "contacts", team.admin) == []
    # a malformed file (an unterminated quote far down) writes nothing either
    lines[2_500] = 'Bad,"oops@example.com,'
    status, body = await upload(client, "contacts", "\n".join(lines) + "\n", team.admin)
    assert status == 400 and body["code"] == "bad_csv"
    assert await listed(client, "contacts", team.admin) == []
    # skip mode writes the 4,999 good rows
    lines[2_500] = "Bad,not-an-email,"
    status, body = await upload(
        client, "contacts", "\n".join(lines) + "\n", team.admin, on_error="skip"
    )
    assert status == 201 and body["data"]["totals"]["created"] == 4_999

    def count(session: Session) -> int:
        return int(session.scalar(select(func.count()).select_from(Contact)) or 0)

    assert await client.app[keys.DB].run(count, tenant_id=team.tenant.id) == 4_999


async def test_export_escapes_formulas_and_reimport_restores_them(client: Any, team: Team) -> None:
    values = ['=HYPERLINK("http://x")', "@SUM(1)", "+cmd|' /C calc'!A0", "-2+3", "'=quoted"]
    body = "first_name,last_name,phone,title\n" + "".join(
        f'"{v.replace(chr(34), chr(34) * 2)}",L{i},+1 212 555 01{i:02d},-12.50\n'
        for i, v in enumerate(values)
    )
    status, report = await upload(client, "contacts", body, team.admin, formula_escape=False)
    assert status == 201, report
    resp = await export(client, "contacts", team.admin)
    exported = rows_of(await resp.text())
    by_last = {r["last_name"]: r for r in exported}
    assert [by_last[f"L{i}"]["first_name"] for i in range(len(values))] == [
        "'=HYPERLINK(\"http://x\")", "'@SUM(1)", "'+cmd|' /C calc'!A0", "'-2+3", "''=quoted"
    ]  # fmt: skip
    # phone numbers and plain negative numbers are data, not formulas: untouched
    assert {r["phone"] for r in exported} == {f"+1 212 555 01{i:02d}" for i in range(5)}
    assert {r["title"] for r in exported} == {"-12.50"}
    raw = await export(client, "contacts", team.admin, "?formula_escape=false")
    assert {r["first_name"] for r in rows_of(await raw.text())} == set(values)
    bad = await export(client, "contacts", team.admin, "?formula_escape=maybe")
    assert bad.status in (400, 422)

    # the escaped export re-imports to the same values
    text_out = await (await export(client, "contacts", team.admin)).text()
    status, report = await upload(
        client, "contacts", text_out, team.admin, mode="update", match="id"
    )
    assert status == 201, report
    assert report["data"]["totals"]["updated"] == 0  # nothing differs
    assert {r["first_name"] for r in await listed(client, "contacts", team.admin)} == set(values)
