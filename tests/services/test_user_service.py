"""UserService with a real database: rules that hold whichever endpoint calls them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from aisha_server import keys
from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import Role
from aisha_server.db.models import User
from aisha_server.errors import (
    BadRequest,
    Conflict,
    Invalid,
    PayloadTooLarge,
    PermissionDenied,
    Unauthorized,
)
from aisha_server.services.users import (
    MAX_IMPORT_ROWS,
    NewUser,
    UserFilter,
    UserService,
    normalize_email,
    parse_import_csv,
)
from tests.factories import make_tenant, make_user


@pytest.fixture
def service(started_app: Any) -> UserService:
    svc: UserService = started_app[keys.USER_SERVICE]
    return svc


def admin_of(tenant_id: uuid.UUID) -> Principal:
    return Principal(user_id=uuid.uuid4(), tenant_id=tenant_id, role=Role.ADMIN)


async def count_users(app: Any) -> int:
    return int(
        await app[keys.DB].run(
            lambda s: s.scalar(select(func.count()).select_from(User)), system=True, write=False
        )
    )


async def test_create_superadmin_for_the_cli(service: UserService, started_app: Any) -> None:
    record = await service.create_superadmin(
        email="  Admin@Example.COM ",
        password="SecurePass123!",
        first_name="System",
        last_name="Administrator",
    )
    assert record.email == "admin@example.com"
    assert record.role == "superadmin" and record.tenant_id is None
    assert record.status == "active" and record.has_password
    row = await started_app[keys.DB].run(lambda s: s.get(User, record.id), system=True, write=False)
    assert row.password_hash and row.password_hash.startswith("$argon2id$")
    ok, _ = await started_app[keys.PASSWORDS].verify(row.password_hash, "SecurePass123!")
    assert ok

    with pytest.raises(Conflict, match="A user with this email already exists"):
        await service.create_superadmin("ADMIN@example.com", "SecurePass123!", "A", "B")
    with pytest.raises(Invalid, match="password"):
        await service.create_superadmin("other@example.com", "password", "A", "B")
    with pytest.raises(Invalid, match="Invalid email"):
        await service.create_superadmin("no-at-sign", "SecurePass123!", "A", "B")
    assert await count_users(started_app) == 1


async def test_bootstrap_races_have_one_winner(service: UserService, started_app: Any) -> None:
    async def attempt(n: int) -> Any:
        new = NewUser(email=f"root{n}@example.com", role="superadmin", password="SecurePass123!")
        try:
            return await service.create_user(None, new)
        except Unauthorized as exc:
            return exc

    results = await asyncio.gather(*(attempt(n) for n in range(4)))
    winners = [r for r in results if not isinstance(r, Unauthorized)]
    assert len(winners) == 1
    assert await count_users(started_app) == 1


async def test_admin_rules_in_the_service(service: UserService, started_app: Any) -> None:
    a = await make_tenant(started_app)
    b = await make_tenant(started_app)
    admin = admin_of(a.id)
    new = NewUser(email="x@example.com", role="employee", tenant_id=b.id, password="SecurePass123!")
    with pytest.raises(PermissionDenied, match="Access denied: Invalid tenant"):
        await service.create_user(admin, new)
    with pytest.raises(PermissionDenied):
        await service.create_user(
            admin, NewUser(email="s@example.com", role="superadmin", password="SecurePass123!")
        )
    manager = Principal(user_id=uuid.uuid4(), tenant_id=a.id, role=Role.MANAGER)
    with pytest.raises(PermissionDenied):
        await service.list_users(manager, a.id, UserFilter())
    with pytest.raises(PermissionDenied):
        await service.list_users(admin, b.id, UserFilter())
    assert await count_users(started_app) == 0


async def test_list_is_tenant_scoped(service: UserService, started_app: Any) -> None:
    a = await make_tenant(started_app)
    b = await make_tenant(started_app)
    await make_user(started_app, role="employee", tenant_id=a.id, email="one@example.com")
    await make_user(started_app, role="employee", tenant_id=b.id, email="two@example.com")
    page = await service.list_users(admin_of(a.id), None, UserFilter())
    assert [u.email for u in page.items] == ["one@example.com"] and page.total == 1
    root = Principal(user_id=uuid.uuid4(), tenant_id=None, role=Role.SUPERADMIN)
    page = await service.list_users(root, None, UserFilter(limit=1))
    assert page.total == 2 and len(page.items) == 1


async def test_presence_needs_a_user(service: UserService) -> None:
    key = Principal(user_id=None, tenant_id=uuid.uuid4(), role=Role.ADMIN, api_key_id=uuid.uuid4())
    with pytest.raises(BadRequest):
        await service.heartbeat(key)
    with pytest.raises(BadRequest):
        await service.sync_from_auth(key)


def test_normalize_email() -> None:
    assert normalize_email(" John.Doe@EXAMPLE.com ") == "john.doe@example.com"
    for bad in ("", "plain", "a@b", "two@@example.com", "x@example..com"):
        with pytest.raises(Invalid):
            normalize_email(bad)


def test_parse_import_csv_shapes() -> None:
    rows = parse_import_csv(
        "\ufeffEmail, First_Name ,last_name,ROLE\r\n"
        '"a@example.com","Ann, Jr.",Lee,employee\r\n'
        "\r\n"
        ",,,\n"
        "b@example.com,Bob,,manager,extra\n".encode()
    )
    assert [r.row for r in rows] == [1, 4]
    assert rows[0].values == {
        "email": "a@example.com",
        "first_name": "Ann, Jr.",
        "last_name": "Lee",
        "role": "employee",
    }
    assert rows[1].extra is True
    with pytest.raises(BadRequest):
        parse_import_csv(b"\xff\xfe\x00")
    with pytest.raises(BadRequest):
        parse_import_csv(b"   ")
    with pytest.raises(Invalid, match="missing column"):
        parse_import_csv(b"mail,first_name,last_name,role\n")
    with pytest.raises(Invalid, match="no rows"):
        parse_import_csv(b"email,first_name,last_name,role,tenant_id\n")
    many = "email,first_name,last_name,role\n" + "x@example.com,a,b,employee\n" * (
        MAX_IMPORT_ROWS + 1
    )
    with pytest.raises(PayloadTooLarge):
        parse_import_csv(many.encode())
