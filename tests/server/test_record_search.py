"""`q` on record lists: word-prefix search (the default, index-served) and contains search,
phones by their E.164 form, data scope and tenants respected."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import make_tenant, user_with_headers

PEOPLE = [
    {"first_name": "Ann", "last_name": "Smith", "email": "ann.smith@acme.test",
     "phone": "(212) 555-0100", "company": "Acme Corp"},
    {"first_name": "Ann", "last_name": "Jones", "email": "jones@beta.test",
     "phone": "+44 20 7946 0958", "company": "Beta Ltd"},
    {"first_name": "Bob", "last_name": "Smithers", "email": "bob@gamma.test",
     "mobile": "212-555-0199", "company": "Gamma Smiths"},
    {"first_name": "Élodie", "last_name": "Martin", "email": "elodie@delta.test",
     "company": "Delta 50% Off"},
    {"first_name": "Carl", "last_name": "O'Neil", "email": "carl_x@epsilon.test",
     "company": "Epsilon"},
]  # fmt: skip


@pytest.fixture
async def people(client: Any) -> dict[str, Any]:
    app = client.app
    tenant = await make_tenant(app, "Search Co")
    other = await make_tenant(app, "Other Co")
    _, admin = await user_with_headers(app, "admin", tenant.id)
    _, outsider = await user_with_headers(app, "admin", other.id)
    for person in PEOPLE:
        resp = await client.post("/api/contacts", json=person, headers=admin)
        assert resp.status == 201, await resp.json()
    # another tenant's Smith must never show up
    resp = await client.post(
        "/api/contacts", json={"first_name": "Ann", "last_name": "Smith"}, headers=outsider
    )
    assert resp.status == 201
    return {"admin": admin, "outsider": outsider}


async def names(client: Any, headers: dict[str, str], query: str) -> list[str]:
    resp = await client.get(f"/api/contacts?{query}", headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    return sorted(f"{c['first_name']} {c['last_name']}" for c in body["data"])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=smi", ["Ann Smith", "Bob Smithers"]),  # last names (and not "Gamma Smiths"' Bob twice)
        ("q=SMITH", ["Ann Smith", "Bob Smithers"]),  # case-insensitive
        ("q=ann smi", ["Ann Smith"]),  # every word must match a column
        ("q=ann%20%20smi", ["Ann Smith"]),  # extra spaces are not words
        ("q=gamma", ["Bob Smithers"]),  # company start
        ("q=smiths", []),  # neither "Smithers" nor "Gamma Smiths" starts with it
        ("q=ann.smith@", ["Ann Smith"]),  # e-mail start
        ("q=acme", ["Ann Smith"]),
        ("q=corp", []),  # not the start of anything
        ("q=212555", ["Ann Smith", "Bob Smithers"]),  # national digits, tenant region US
        ("q=(212) 555-01", ["Ann Smith", "Bob Smithers"]),
        ("q=%2B1212555", ["Ann Smith", "Bob Smithers"]),  # +1212555
        ("q=%2B44", ["Ann Jones"]),  # international prefix
        ("q=0044 20", ["Ann Jones"]),  # 00 form
        ("q=2125550100", ["Ann Smith"]),
        ("q=%C3%89lo", ["Élodie Martin"]),  # "Élo"
        ("q=50%25", []),  # % is a character, not a wildcard
        ("q=delta 50%25", []),  # a value must start with each word
        ("q=delta 50%25&match=contains", ["Élodie Martin"]),
        ("q=c_rl", []),  # _ is a character, not a wildcard
        ("q=carl_", ["Carl O'Neil"]),  # "carl_x@epsilon.test" starts with it
        ("q=o'n", ["Carl O'Neil"]),
        ("q=mit&match=contains", ["Ann Smith", "Bob Smithers"]),
        ("q=corp&match=contains", ["Ann Smith"]),
        ("q=ith sm&match=contains", ["Ann Smith", "Bob Smithers"]),
        ("q=50%25&match=contains", ["Élodie Martin"]),
        ("q=_x@&match=contains", ["Carl O'Neil"]),
    ],
)
async def test_search(client: Any, people: dict[str, Any], query: str, expected: list[str]) -> None:
    assert await names(client, people["admin"], query) == expected


async def test_search_stays_in_the_tenant(client: Any, people: dict[str, Any]) -> None:
    assert await names(client, people["outsider"], "q=smi") == ["Ann Smith"]
    assert await names(client, people["outsider"], "q=gamma") == []


async def test_unknown_search_mode_is_refused(client: Any, people: dict[str, Any]) -> None:
    resp = await client.get("/api/contacts?q=x&match=fuzzy", headers=people["admin"])
    body = await resp.json()
    assert resp.status == 422
    assert any(d["field"] == "match" for d in body["details"]), body


async def test_search_pages_follow_the_cursor(client: Any, people: dict[str, Any]) -> None:
    seen: list[str] = []
    url = "/api/contacts?q=a&limit=1"
    while True:
        body = await (await client.get(url, headers=people["admin"])).json()
        seen += [c["id"] for c in body["data"]]
        cursor = body["pagination"]["next_cursor"]
        if cursor is None:
            break
        url = f"/api/contacts?q=a&limit=1&cursor={cursor}"
    assert len(seen) == len(set(seen)) == 2  # Ann Smith (also Acme, ann.smith@) and Ann Jones


# -- the plan under row-level security (PostgreSQL) ------------------------------------------


async def _fill_tenants(app: Any, settings: Any, count: int) -> list[Any]:
    """Two tenants of `count` contacts each (names, companies, e-mails, phones), written as
    the application role, then ANALYZE as the database owner (the planner chooses by
    statistics; the server's role may not analyse)."""
    import asyncpg
    from sqlalchemy import text

    from aisha_server import keys

    tenants = [await make_tenant(app, "Plan A"), await make_tenant(app, "Plan B")]
    user, _ = await user_with_headers(app, "employee", tenants[0].id)

    def write(session: Any) -> None:
        for tenant in tenants:
            session.execute(
                text(
                    "INSERT INTO contacts (tenant_id, owner_id, first_name, last_name, email,"
                    " company, phone, phone_e164, created_at, updated_at)"
                    " SELECT CAST(:t AS uuid), CASE WHEN g % 50 = 0 THEN CAST(:u AS uuid) END,"
                    " 'N' || g, md5(g::text),"
                    " 'e' || g || '@example.com', 'C' || g, '212555' || g, '+1212555' || g,"
                    " now(), now() - g * interval '1 minute'"
                    " FROM generate_series(1, :n) g"
                ),
                {"t": tenant.id, "u": user.id, "n": count},
            )

    await app[keys.DB].run(write, system=True)
    conn = await asyncpg.connect(str(settings.DATABASE_URL))
    try:
        await conn.execute("ANALYZE contacts")
    finally:
        await conn.close()
    return [tenants[0].id, user]


@pytest.mark.parametrize("backend", ["postgres"])
@pytest.mark.parametrize(
    ("q", "role", "indexes"),
    [
        # few matches (the planner reads many in sort order instead, rightly)
        ("n1234", "admin", ["first_name", "last_name", "company", "tenant_id_email"]),
        ("abc", "admin", ["first_name", "last_name", "company", "tenant_id_email"]),
        ("N1250", "employee", ["first_name", "last_name", "company", "tenant_id_email"]),
        ("2125551234", "admin", ["tenant_id_phone_e164", "tenant_id_mobile_e164"]),
    ],
)
async def test_prefix_search_reads_its_indexes_under_row_level_security(
    client: Any, settings: Any, q: str, role: str, indexes: list[str]
) -> None:
    """The statement a list runs, EXPLAINed in a tenant transaction of the server's own unit
    of work (the non-owner application role, FORCE ROW LEVEL SECURITY): the search conditions
    go to the search indexes (a BitmapOr of index ranges) instead of being checked row by row
    after the tenant policy, which `lower(column) LIKE 'w%'` was (lower() and LIKE are not
    LEAKPROOF) - every search read the tenant's 20,000 rows."""
    from sqlalchemy import text

    from aisha_server import keys
    from aisha_server.auth.principal import Principal
    from aisha_server.auth.roles import Role
    from aisha_server.services.records import SPECS, ListParams, list_statement, scope_rule

    app = client.app
    tenant_id, user = await _fill_tenants(app, settings, 20_000)
    spec = SPECS["contacts"]
    actor = Principal(user_id=user.id, tenant_id=tenant_id, role=Role(role))
    scope = scope_rule(actor)
    assert bool(scope.kind) == (role == "employee")  # an employee sees own/assigned records only
    statement = list_statement(spec, tenant_id, scope, ListParams(q=q), {}, "postgresql")
    db = app[keys.DB]

    def explain(session: Any) -> tuple[str, str, list[str]]:
        compiled = statement.compile(session.connection(), compile_kwargs={"literal_binds": True})
        plan = "\n".join(r[0] for r in session.execute(text(f"EXPLAIN {compiled}")))
        who = session.execute(text("SELECT current_user")).scalar_one()
        rows = session.execute(text(f"SELECT last_name FROM ({compiled}) s")).scalars().all()
        return plan, who, list(rows)

    plan, who, found = await db.run(explain, tenant_id=tenant_id, write=False)
    assert who == settings.AISHA_DB_APP_ROLE, who  # RLS applies to this role
    for index in indexes:
        name = index if index.startswith("tenant_id_") else f"search_{index}"
        assert f"ix_contacts_{name}" in plan, plan
    assert "BitmapOr" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert found, "the search finds the rows it should"


def test_successor_bounds_exactly_the_strings_with_the_prefix() -> None:
    from aisha_server.services.search import successor

    assert successor("smi") == "smj"
    assert successor("a\U0010ffff") == "b"  # "a" + anything sorts below "b"
    assert successor("\U0010ffff") is None  # no upper bound: every string >= the prefix
    assert successor("\ud7ff") == "\ue000"  # surrogates are skipped
    for word in ("smi", "ab\U0010ffff", "\ud7ff"):
        upper = successor(word)
        assert upper is not None
        for text in (word, word + "a", word + "\U0010ffff", word + "\U0010ffff" * 3):
            encoded = text.encode("utf-8", "surrogatepass")
            assert word.encode("utf-8", "surrogatepass") <= encoded < upper.encode("utf-8")


async def test_a_nul_character_in_q_is_refused(client: Any, people: dict[str, Any]) -> None:
    resp = await client.get("/api/contacts?q=sm%00i", headers=people["admin"])
    body = await resp.json()
    assert resp.status == 422, body
    assert body["details"] == [{"field": "q", "message": "must not contain NUL characters"}]
