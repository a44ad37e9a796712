"""List queries are planned: the statement of a shape (filters, search words, sort, paging -
no values) is built once and run with the plan's values.  These tests hold the planned
statement to the statement built with its values in (`list_statement`, what exports and the
benchmark floor run) over every kind of term, on both backends, and check what a shape may
and may not hold."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import Role
from aisha_server.db.uow import select_rows
from aisha_server.errors import BadRequest, Invalid
from aisha_server.services.pagination import encode_cursor
from aisha_server.services.records import (
    SPECS,
    ListParams,
    ScopeRule,
    list_statement,
    plan_list,
    planned_select,
    scope_rule,
)
from tests.factories import make_tenant, user_with_headers

CONTACTS = [
    # first, last, email, phone, company, status, lead_source, custom fields
    ("Ada", "Lovelace", "ada@analytical.example", "+44 20 7946 0001", "Analytical", "active",
     "Web", {"tier": "gold", "seats": 10, "vip": True, "interests": ["crm", "ai"]}),
    ("Adam", "Smith", "adam@wealth.example", "(212) 555-0101", "Wealth & Co", "active",
     "Event", {"tier": "silver", "seats": 2.5, "vip": False, "interests": ["voice"]}),
    ("Grace", "Hopper", "grace@navy.example", "212-555-0199", "Navy_Labs", "inactive",
     "Web", {"tier": "gold", "interests": ["ai"]}),
    ("Émile", "Zola", "emile@press.example", None, "100% Press", "active", None, {}),
    ("Alan", "Turing", "alan@bletchley.example", "+44 1908 640404", "Bletchley", "lead",
     "Referral", {"seats": 10}),
]  # fmt: skip


async def _world(client: Any) -> dict[str, Any]:
    app = client.app
    tenant = await make_tenant(app, "Plans Ltd")
    other = await make_tenant(app, "Other Plans")
    employee, employee_headers = await user_with_headers(
        app, "employee", tenant.id, department="Sales"
    )
    _, admin = await user_with_headers(app, "admin", tenant.id)
    _, other_admin = await user_with_headers(app, "admin", other.id)
    for body in (
        {"entity": "contact", "field_name": "tier", "field_type": "select",
         "options": ["gold", "silver"]},
        {"entity": "contact", "field_name": "seats", "field_type": "number"},
        {"entity": "contact", "field_name": "vip", "field_type": "boolean"},
        {"entity": "contact", "field_name": "interests", "field_type": "multiselect",
         "options": ["crm", "ai", "voice"]},
    ):  # fmt: skip
        resp = await client.post("/api/custom-fields", json=body, headers=admin)
        assert resp.status == 201, await resp.json()
    for index, (first, last, email, phone, company, status, source, custom) in enumerate(
        CONTACTS * 3
    ):
        body = {"first_name": first, "last_name": last, "email": f"{index}.{email}",
                "phone": phone, "company": company, "status": status, "lead_source": source,
                "custom_fields": custom, "department": "Sales" if index % 2 else "Support"}  # fmt: skip
        if index % 3 == 0:
            body["owner_id"] = str(employee.id)
        resp = await client.post("/api/contacts?confirm_duplicate=true", json=body, headers=admin)
        assert resp.status == 201, await resp.json()
        for headers in (other_admin,):  # the other tenant holds look-alikes
            await client.post(
                "/api/contacts?confirm_duplicate=true",
                json={**body, "owner_id": None, "email": f"other.{index}.{email}"},
                headers=headers,
            )
    deleted = await (await client.get("/api/contacts?q=grace&limit=1", headers=admin)).json()
    await client.delete(f"/api/contacts/{deleted['data'][0]['id']}", headers=admin)
    return {"tenant": tenant, "employee": employee, "headers": employee_headers}


PARAMS = [
    ListParams(),
    ListParams(limit=4),
    ListParams(limit=4, offset=3),
    ListParams(sort="last_name"),
    ListParams(sort="-email", limit=3),
    ListParams(sort="created_at"),
    ListParams(deleted=True),
    ListParams(equals={"status": "active"}),
    ListParams(equals={"status": "active", "lead_source": "Web"}),
    ListParams(q="ada"),
    ListParams(q="ad lo"),
    ListParams(q="Ém"),
    ListParams(q="212 555"),
    ListParams(q="+44 20"),
    ListParams(q="0.ada@"),
    ListParams(q="100%"),
    ListParams(q="navy_"),
    ListParams(q="labs", match="contains"),
    ListParams(q="% press", match="contains"),
    ListParams(q="\U0010ffff"),
    ListParams(custom={"tier": "gold"}),
    ListParams(custom={"seats": "10"}),
    ListParams(custom={"vip": "false"}),
    ListParams(custom={"interests": "ai"}),
    ListParams(custom={"tier": "gold", "interests": "crm"}, equals={"status": "active"}),
    ListParams(created_from=datetime.now(UTC) - timedelta(hours=1)),
    ListParams(updated_to=datetime.now(UTC) + timedelta(hours=1), q="a"),
    ListParams(created_to=datetime(2000, 1, 1, tzinfo=UTC)),
]


@pytest.mark.parametrize("role", ["admin", "manager", "employee"])
async def test_the_planned_statement_selects_what_the_literal_one_does(
    client: Any, role: str
) -> None:
    world = await _world(client)
    app = client.app
    db = app[keys.DB]
    spec = SPECS["contacts"]
    tenant_id = world["tenant"].id
    actor = Principal(
        user_id=world["employee"].id, tenant_id=tenant_id, role=Role(role), department="Sales"
    )
    rule = scope_rule(actor)
    definitions = {
        d.field_name: d
        for d in await app[keys.CUSTOM_FIELD_SERVICE].definitions_for(tenant_id, "contact")
    }
    dialect = db.dialect
    found_any = 0

    def compare(session: Session) -> int:
        nonempty = 0
        for params in PARAMS:
            pages = 0
            current = params
            while True:
                plan = plan_list(spec, tenant_id, rule, current, definitions, dialect)
                planned = list(select_rows(session, planned_select(spec, plan.shape),
                                           plan.parameters()))  # fmt: skip
                literal = list(
                    session.connection().execute(
                        list_statement(spec, tenant_id, rule, current, definitions, dialect)
                    )
                )
                assert [tuple(r) for r in planned] == [tuple(r) for r in literal], params
                nonempty += bool(planned)
                limit = current.limit
                sort_name = current.sort.lstrip("-")
                keyset = not spec.model.__table__.c[sort_name].nullable
                if len(planned) <= limit or current.offset or not keyset:
                    break
                last = planned[limit - 1]
                names = list(planned_select(spec, plan.shape).selected_columns.keys())
                current = ListParams(**{
                    **current.__dict__,
                    "cursor": encode_cursor([last[names.index(sort_name)],
                                             last[names.index("id")], current.sort]),
                })  # fmt: skip
                pages += 1
                assert pages < 10
        return nonempty

    found_any = await db.run(compare, tenant_id=tenant_id, write=False)
    # the comparison is not vacuous: most parameter sets select rows
    assert found_any >= len(PARAMS) // 2


def test_a_shape_holds_no_values() -> None:
    spec = SPECS["contacts"]
    one, two = uuid.uuid4(), uuid.uuid4()
    user_a, user_b = uuid.uuid4(), uuid.uuid4()

    for dialect in ("sqlite", "postgresql"):
        first = plan_list(
            spec, one, ScopeRule("own", user_a),
            ListParams(q="ada", equals={"status": "active"}, limit=10), {}, dialect,
        )  # fmt: skip
        second = plan_list(
            spec, two, ScopeRule("own", user_b),
            ListParams(q="grace", equals={"status": "lead"}, limit=50), {}, dialect,
        )  # fmt: skip
        assert first.shape == second.shape
        assert planned_select(spec, first.shape) is planned_select(spec, second.shape)
        assert str(one) not in repr(first.shape) and "ada" not in repr(first.shape)
        assert first.values != second.values
        # a different form is a different shape: another filter, a cursor, another scope
        cursor = encode_cursor(["2026-11-26T00:00:00+00:00", str(uuid.uuid4()), "-updated_at"])
        for params, scope in (
            (ListParams(q="ada", equals={"lead_source": "x"}, limit=10), ScopeRule("own", user_a)),
            (ListParams(q="ada", equals={"status": "a"}, cursor=cursor), ScopeRule("own", user_a)),
            (ListParams(q="ada", equals={"status": "a"}, limit=10), ScopeRule()),
            (ListParams(q="ada lo", equals={"status": "a"}, limit=10), ScopeRule("own", user_a)),
            (ListParams(q="212555", equals={"status": "a"}), ScopeRule("own", user_a)),
        ):
            assert plan_list(spec, one, scope, params, {}, dialect).shape != first.shape


def test_plans_refuse_what_a_list_cannot_do() -> None:
    spec = SPECS["contacts"]
    tenant = uuid.uuid4()
    for params, error in (
        (ListParams(sort="phone"), Invalid),
        (ListParams(equals={"colour": "red"}), Invalid),
        (ListParams(match="fuzzy", q="x"), Invalid),
        (ListParams(q="a\x00b"), Invalid),
        (ListParams(custom={"nope": "1"}), Invalid),
        (ListParams(cursor="not a cursor"), BadRequest),
        (ListParams(sort="created_at", cursor="WyJ4IiwgInkiXQ"), BadRequest),
        *(
            (ListParams(sort=sort, cursor=encode_cursor(values)), BadRequest)
            for sort, values in (
                # a time without its offset (a 500 once: the column refused it at execution)
                ("created_at", ["2026-12-07", str(uuid.uuid4()), "created_at"]),
                ("-updated_at", ["2026-12-07T10:00:00", str(uuid.uuid4()), "-updated_at"]),
                # not a cursor of this sort
                ("last_name", ["2026-12-07T10:00:00+00:00", str(uuid.uuid4()), "created_at"]),
                ("-updated_at", ["2026-12-07T10:00:00+00:00", str(uuid.uuid4()), "updated_at"]),
                # the old two-value form, a value of the wrong type, a bad id
                ("-updated_at", ["2026-12-07T10:00:00+00:00", str(uuid.uuid4())]),
                ("last_name", [12, str(uuid.uuid4()), "last_name"]),
                ("last_name", ["Lovelace", "not-an-id", "last_name"]),
            )
        ),
        (
            ListParams(
                offset=10,
                cursor=encode_cursor(["x", str(uuid.uuid4()), "last_name"]),
                sort="last_name",
            ),
            BadRequest,
        ),
    ):
        with pytest.raises(error):
            plan_list(spec, tenant, ScopeRule(), params, {}, "sqlite")
    # a nullable sort pages by offset only
    with pytest.raises(BadRequest, match="never empty"):
        plan_list(
            SPECS["opportunities"], tenant, ScopeRule(),
            ListParams(sort="close_date", cursor="WyJ4IiwgInkiXQ"), {}, "sqlite",
        )  # fmt: skip


async def test_an_employee_without_a_user_owns_nothing(client: Any) -> None:
    """The own-records rule compares with the user; with no user it matches no row (never
    the unowned ones, which `owner_id = NULL` would not match either but `IS NULL` would)."""
    world = await _world(client)
    db = client.app[keys.DB]
    spec = SPECS["contacts"]
    tenant_id = world["tenant"].id

    def both(session: Session) -> tuple[int, int]:
        rule = ScopeRule("own", None)
        plan = plan_list(spec, tenant_id, rule, ListParams(limit=500), {}, db.dialect)
        planned = select_rows(session, planned_select(spec, plan.shape), plan.parameters())
        literal = session.connection().execute(
            list_statement(spec, tenant_id, rule, ListParams(limit=500), {}, db.dialect)
        )
        return len(planned), len(list(literal))

    assert await db.run(both, tenant_id=tenant_id, write=False) == (0, 0)


@pytest.mark.parametrize("sort", ["-updated_at", "last_name", "-email", "created_at"])
async def test_pages_come_in_their_sort_order(client: Any, sort: str) -> None:
    """SQLite reads a page's rows through its rowids without sorting them again (the rowids'
    subquery is the outer loop of a CROSS JOIN): rows stored in another order than the sort's
    still come in the sort's order, page by page."""
    world = await _world(client)
    tenant_id = world["tenant"].id
    _, admin = await user_with_headers(client.app, "admin", tenant_id)
    listed = await (await client.get("/api/contacts?limit=100", headers=admin)).json()
    # updated in reverse, so the newest updates are the oldest rows
    for record in reversed(listed["data"][::2]):
        resp = await client.patch(
            f"/api/contacts/{record['id']}", json={"title": "moved"}, headers=admin
        )
        assert resp.status == 200, await resp.json()
    everything = (await (await client.get("/api/contacts?limit=100", headers=admin)).json())["data"]
    name = sort.lstrip("-")
    expected = sorted(everything, key=lambda r: (r[name], r["id"]), reverse=sort.startswith("-"))
    assert len(expected) >= 10

    seen: list[str] = []
    cursor: str | None = None
    while True:  # by cursor, or by offset where the sort column is nullable (no keyset)
        where = f"&cursor={cursor}" if cursor else f"&offset={len(seen)}"
        url = f"/api/contacts?limit=4&sort={sort}{where}"
        body = await (await client.get(url, headers=admin)).json()
        assert body["status"] == "success", body
        seen += [r["id"] for r in body["data"]]
        cursor = body["pagination"]["next_cursor"]
        if cursor is None and len(body["data"]) < 4:
            break
        assert len(seen) <= len(expected)
    assert seen == [r["id"] for r in expected]
    stored = [r["id"] for r in everything]
    assert seen != stored or sort == "-updated_at"  # the sort is not the default order
