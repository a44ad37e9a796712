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
