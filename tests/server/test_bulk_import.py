"""POST /api/users/bulk-import (guide 3.1 Method 3): all rows or none, per-row report."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from aisha_server import keys
from aisha_server.db.models import Tenant, User, UserInvitation
from tests.factories import SeededUser, make_tenant, make_user
from tests.factories import auth_headers as auth
from tests.server.user_helpers import rows, user_by_email

HEADER = "email,first_name,last_name,role,tenant_id\n"
DENIED = "Access denied: Invalid tenant"


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Per test: a dict of overrides, or "mail" for the SMTP sink's settings."""
    param = getattr(request, "param", None)
    if param == "mail":
        return dict(request.getfixturevalue("smtp_settings"))
    return dict(param or {})


@dataclass
class World:
    app: Any
    a: Tenant
    b: Tenant
    admin_a: SeededUser
    employee_a: SeededUser
    root: SeededUser


@pytest.fixture
async def world(client: Any) -> World:
    app = client.app
    a = await make_tenant(app, "Alpha", slug="alpha")
    b = await make_tenant(app, "Beta", slug="beta")
    return World(
        app,
        a,
        b,
        await make_user(app, role="admin", tenant_id=a.id, email="admin@alpha.example.com"),
        await make_user(app, role="employee", tenant_id=a.id, email="taken@alpha.example.com"),
        await make_user(app, role="superadmin", email="root@example.com"),
    )


def form(csv_text: str | bytes, field: str = "file") -> aiohttp.FormData:
    data = aiohttp.FormData()
    payload = csv_text.encode() if isinstance(csv_text, str) else csv_text
    data.add_field(field, payload, filename="users.csv", content_type="text/csv")
    return data


async def user_count(app: Any) -> int:
    return int(
        await app[keys.DB].run(
            lambda s: s.scalar(select(func.count()).select_from(User)), system=True, write=False
        )
    )


async def test_admin_imports_multipart(client: Any, world: World) -> None:
    csv_text = (
        HEADER
        + "user1@example.com,Jane,Smith,employee,\n"
        + f"User2@Example.com,Bob,Jones,manager,{world.a.id}\n"
        + '"user3@example.com","Ann, Jr.",Lee,support,alpha\n'
    )
    resp = await client.post(
        "/api/users/bulk-import", data=form(csv_text), headers=await auth(world.app, world.admin_a)
    )
    body = await resp.json()
    assert resp.status == 201, body
    assert body["data"]["created"] == 3
    report = body["data"]["rows"]
    assert [r["row"] for r in report] == [1, 2, 3]
    assert [r["status"] for r in report] == ["created"] * 3
    assert report[1]["email"] == "user2@example.com"
    for entry in report:
        user = await user_by_email(world.app, entry["email"])
        assert user is not None and str(user.id) == entry["id"]
        assert user.tenant_id == world.a.id and user.status == "invited"
        assert user.password_hash is None
    third = await user_by_email(world.app, "user3@example.com")
    assert third is not None and third.first_name == "Ann, Jr." and third.role == "support"
    invitations = await rows(world.app, select(UserInvitation))
    assert len(invitations) == 3
    assert {i.invited_by for i in invitations} == {world.admin_a.id}


async def test_raw_csv_body_and_invoke_restmethod_style(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.post(
        "/api/users/bulk-import",
        data=(HEADER + "raw@example.com,Raw,Csv,employee,\n").encode(),
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert resp.status == 201, await resp.text()
    # Invoke-RestMethod -InFile ... -ContentType "multipart/form-data" sends the bare file
    resp = await client.post(
        "/api/users/bulk-import",
        data=("\ufeff" + HEADER + "bom@example.com,Bom,File,employee,\r\n").encode(),
        headers={**headers, "Content-Type": "multipart/form-data"},
    )
    assert resp.status == 201, await resp.text()
    assert await user_by_email(world.app, "bom@example.com") is not None


async def test_any_bad_row_rejects_the_whole_file(client: Any, world: World) -> None:
    csv_text = (
        HEADER
        + "good@example.com,Good,Row,employee,\n"  # 1 ok
        + "not-an-email,Bad,Email,employee,\n"  # 2
        + "good@example.com,Dup,Row,employee,\n"  # 3 duplicate of row 1
        + "TAKEN@alpha.example.com,Existing,User,employee,\n"  # 4 exists
        + "r5@example.com,Bad,Role,wizard,\n"  # 5
        + "r6@example.com,Super,User,superadmin,\n"  # 6
        + f"r7@example.com,Other,Tenant,employee,{world.b.id}\n"  # 7 foreign tenant
        + "r8@example.com,Unknown,Tenant,employee,nowhere\n"  # 8
        + ",No,Email,employee,\n"  # 9
        + "r10@example.com,Too,Many,employee,,extra\n"  # 10
    )
    before = await user_count(world.app)
    resp = await client.post(
        "/api/users/bulk-import", data=form(csv_text), headers=await auth(world.app, world.admin_a)
    )
    body = await resp.json()
    assert resp.status == 422, body
    assert body["status"] == "error"
    assert "nothing was imported" in body["message"]
    report = {r["row"]: r for r in body["details"]}
    assert len(report) == 10
    assert report[1]["status"] == "ok"
    for n in range(2, 11):
        assert report[n]["status"] == "error", report[n]
        assert report[n]["errors"], report[n]
    assert "duplicate" in report[3]["errors"][0]
    assert report[4]["errors"] == ["A user with this email already exists"]
    assert "wizard" in report[5]["errors"][0]
    assert report[7]["errors"] == [DENIED]
    assert report[8]["errors"] == [DENIED]
    assert report[9]["errors"] == ["email is required"]
    assert await user_count(world.app) == before
    assert await user_by_email(world.app, "good@example.com") is None
    assert await rows(world.app, select(UserInvitation)) == []


async def test_admin_cannot_import_into_other_tenant_via_header(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.post(
        "/api/users/bulk-import",
        data=form(HEADER + "x@example.com,X,Y,employee,\n"),
        headers={**headers, "X-Tenant-ID": str(world.b.id)},
    )
    assert resp.status == 403
    assert (await resp.json())["message"] == DENIED
    assert await user_by_email(world.app, "x@example.com") is None


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        (b"", 400, "empty"),
        (b"\n  \n", 400, "empty"),
        (b"email,first_name\nx@example.com,X\n", 422, "missing column"),
        (HEADER.encode(), 422, "no rows"),
        ((HEADER + "caf\xe9@example.com,C,D,employee,\n").encode("latin-1"), 400, "UTF-8"),
        (b"\x00\xff\xfe binary", 400, "UTF-8"),
    ],
)
async def test_file_level_problems(
    client: Any, world: World, payload: bytes, status: int, fragment: str
) -> None:
    resp = await client.post(
        "/api/users/bulk-import", data=form(payload), headers=await auth(world.app, world.admin_a)
    )
    body = await resp.json()
    assert resp.status == status, body
    assert fragment in body["message"]


async def test_request_shape_problems(client: Any, world: World) -> None:
    headers = await auth(world.app, world.admin_a)
    resp = await client.post(
        "/api/users/bulk-import",
        data=form(HEADER + "a@example.com,A,B,employee,\n", "other"),
        headers=headers,
    )
    assert resp.status == 400
    resp = await client.post("/api/users/bulk-import", json={"rows": []}, headers=headers)
    assert resp.status == 400
    assert (await client.post("/api/users/bulk-import", data=form(HEADER))).status == 401
    resp = await client.post(
        "/api/users/bulk-import",
        data=form(HEADER + "e@example.com,E,F,employee,\n"),
        headers=await auth(world.app, world.employee_a),
    )
    assert resp.status == 403
    assert await user_by_email(world.app, "e@example.com") is None


async def test_too_many_rows(client: Any, world: World) -> None:
    body = HEADER + "".join(f"u{i}@example.com,U,{i},employee,\n" for i in range(5001))
    resp = await client.post(
        "/api/users/bulk-import", data=form(body), headers=await auth(world.app, world.admin_a)
    )
    assert resp.status == 413
    assert "5000" in (await resp.json())["message"]
    assert await user_by_email(world.app, "u0@example.com") is None


@pytest.mark.parametrize("settings_overrides", [{"AISHA_MAX_UPLOAD_BYTES": 2048}], indirect=True)
async def test_upload_size_limit(client: Any, world: World) -> None:
    body = HEADER + "".join(f"u{i}@example.com,U,{i},employee,\n" for i in range(100))
    headers = await auth(world.app, world.admin_a)
    resp = await client.post("/api/users/bulk-import", data=form(body), headers=headers)
    assert resp.status == 413
    resp = await client.post(
        "/api/users/bulk-import",
        data=body.encode(),
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert resp.status == 413
    assert await user_by_email(world.app, "u0@example.com") is None


async def test_superadmin_imports_across_tenants(client: Any, world: World) -> None:
    headers = await auth(world.app, world.root)
    csv_text = (
        HEADER
        + "sa1@example.com,A,One,admin,alpha\n"
        + f"sa2@example.com,B,Two,employee,{world.b.id}\n"
    )
    resp = await client.post("/api/users/bulk-import", data=form(csv_text), headers=headers)
    assert resp.status == 201, await resp.text()
    one = await user_by_email(world.app, "sa1@example.com")
    two = await user_by_email(world.app, "sa2@example.com")
    assert one is not None and one.tenant_id == world.a.id and one.role == "admin"
    assert two is not None and two.tenant_id == world.b.id
    # a blank tenant needs X-Tenant-ID for a superadmin
    resp = await client.post(
        "/api/users/bulk-import",
        data=form(HEADER + "sa3@example.com,C,3,employee,\n"),
        headers=headers,
    )
    assert resp.status == 422
    resp = await client.post(
        "/api/users/bulk-import",
        data=form(HEADER + "sa3@example.com,C,3,employee,\n"),
        headers={**headers, "X-Tenant-ID": "beta"},
    )
    assert resp.status == 201
    three = await user_by_email(world.app, "sa3@example.com")
    assert three is not None and three.tenant_id == world.b.id


async def test_five_hundred_rows_in_one_go(client: Any, world: World) -> None:
    body = HEADER + "".join(f"bulk{i}@example.com,U,{i},employee,\n" for i in range(500))
    resp = await client.post(
        "/api/users/bulk-import", data=form(body), headers=await auth(world.app, world.admin_a)
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["data"]["created"] == 500
    assert len(await rows(world.app, select(UserInvitation.id))) == 500


@pytest.mark.parametrize("settings_overrides", ["mail"], indirect=True)
async def test_each_imported_user_is_mailed(client: Any, world: World, smtp_sink: Any) -> None:
    csv_text = HEADER + "m1@example.com,M,One,employee,\n" + "m2@example.com,M,Two,employee,\n"
    resp = await client.post(
        "/api/users/bulk-import", data=form(csv_text), headers=await auth(world.app, world.admin_a)
    )
    assert resp.status == 201
    await world.app[keys.MAILER].drain()
    mails = await smtp_sink.wait_for(2)
    assert sorted(m["To"] for m in mails) == ["m1@example.com", "m2@example.com"]
    assert all("accept-invitation?token=" in m.get_content() for m in mails)
    assert all(m["Subject"] == "You're invited to AiSHA" for m in mails)
    assert uuid.UUID((await resp.json())["data"]["rows"][0]["id"])
