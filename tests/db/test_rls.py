"""Row-level security on PostgreSQL: even with the application's tenant filter skipped, a
transaction scoped to tenant A neither sees nor writes tenant B's rows.  The server works as
the non-owner application role, also when DATABASE_URL names a superuser or the table owner.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.config import load_settings
from aisha_server.db import migrate
from aisha_server.db.models import Contact, Tenant, User
from aisha_server.db.uow import PostgresDatabase
from tests.conftest import TEST_JWT_SECRET, _pg_admin, _pg_url
from tests.factories import make_tenant, make_user

pytestmark = pytest.mark.parametrize("backend", ["postgres"])


async def _seed(app: Any) -> tuple[uuid.UUID, uuid.UUID]:
    a = await make_tenant(app, "Tenant A")
    b = await make_tenant(app, "Tenant B")

    def write(session: Session) -> None:
        session.add_all(
            [
                Contact(tenant_id=a.id, first_name="Alice", email="alice@a.test"),
                Contact(tenant_id=b.id, first_name="Bob", email="bob@b.test"),
                Contact(tenant_id=b.id, first_name="Bea", email="bea@b.test"),
            ]
        )

    await app[keys.DB].run(write, system=True)
    return a.id, b.id


async def test_unfiltered_query_sees_only_the_scoped_tenant(client: Any, db: Any) -> None:
    a, b = await _seed(client.app)
    # no WHERE tenant_id: the application filter is deliberately skipped
    names = await db.run(
        lambda s: sorted(s.scalars(select(Contact.first_name)).all()), tenant_id=a, write=False
    )
    assert names == ["Alice"]
    tenants = await db.run(lambda s: s.scalars(select(Tenant.id)).all(), tenant_id=a, write=False)
    assert tenants == [a]
    # the raw SQL of guide 4.3 behaves the same
    emails = await db.run(
        lambda s: s.scalars(text("SELECT email FROM contacts WHERE email LIKE '%.test'")).all(),
        tenant_id=b,
        write=False,
    )
    assert sorted(emails) == ["bea@b.test", "bob@b.test"]


async def test_cross_tenant_writes_are_refused(client: Any, db: Any) -> None:
    a, b = await _seed(client.app)

    def insert_into_b(session: Session) -> None:
        session.add(Contact(tenant_id=b, first_name="Mallory"))
        session.flush()

    with pytest.raises(DBAPIError, match="row-level security"):
        await db.run(insert_into_b, tenant_id=a)

    def update_everything(session: Session) -> int:
        result = session.execute(update(Contact).values(first_name="Hacked"))
        return int(result.rowcount)

    touched = await db.run(update_everything, tenant_id=a)
    assert touched == 1  # only tenant A's own row
    b_names = await db.run(
        lambda s: sorted(s.scalars(select(Contact.first_name)).all()), tenant_id=b, write=False
    )
    assert b_names == ["Bea", "Bob"]


async def test_superadmin_rows_are_hidden_from_tenant_scope(client: Any, db: Any) -> None:
    a, _ = await _seed(client.app)
    await make_user(client.app, role="superadmin")
    await make_user(client.app, role="admin", tenant_id=a)
    visible = await db.run(lambda s: s.scalars(select(User.role)).all(), tenant_id=a, write=False)
    assert visible == ["admin"]
    everyone = await db.run(
        lambda s: s.scalar(select(func.count()).select_from(User)), system=True, write=False
    )
    assert everyone == 2


async def test_server_works_as_the_application_role(client: Any, db: Any) -> None:
    who = await db.run(
        lambda s: s.execute(text("SELECT current_user, session_user")).one(),
        system=True,
        write=False,
    )
    assert who[0] == "aisha_app"  # DATABASE_URL in the tests names the superuser postgres
    assert who[1] == "postgres"


@pytest.mark.parametrize("write", [True, False])
async def test_a_failed_first_unit_does_not_undo_the_application_role(
    settings: Any, write: bool
) -> None:
    """The role is set when a connection is made.  It used to stay in the driver's open
    transaction until the first unit of work committed, so a first unit that failed rolled it
    back and the connection then worked as the login user (here the superuser: no RLS)."""
    db = PostgresDatabase(
        str(settings.DATABASE_URL), app_role=settings.AISHA_DB_APP_ROLE, pool_size=1
    )

    def fail(session: Session) -> None:
        session.execute(text("SELECT 1"))
        raise RuntimeError("the unit fails")

    try:
        with pytest.raises(RuntimeError):
            await db.run(fail, system=True, write=write)
        for unit_writes in (True, False):
            who = await db.run(
                lambda s: s.execute(text("SELECT current_user")).scalar_one(),
                system=True,
                write=unit_writes,
            )
            assert who == settings.AISHA_DB_APP_ROLE
            rows = await db.run(
                lambda s: s.scalars(select(Tenant.id)).all(), tenant_id=uuid.uuid4(), write=False
            )
            assert rows == []  # RLS applies: an unknown tenant sees nothing
    finally:
        await db.close()


@pytest.fixture
def owner_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database whose tables belong to a non-superuser owner that the server logs in as."""
    request.getfixturevalue("pg_template")
    name = f"aisha_o_{uuid.uuid4().hex[:10]}"
    asyncio.run(
        _pg_admin(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aisha_owner_test')"
            " THEN CREATE ROLE aisha_owner_test LOGIN; END IF; END $$",
            "GRANT aisha_app TO aisha_owner_test",
            f'CREATE DATABASE "{name}" OWNER aisha_owner_test',
        )
    )
    url = _pg_url(name).replace("postgres@", "aisha_owner_test@", 1)
    migrate.upgrade(load_settings(overrides={"JWT_SECRET": TEST_JWT_SECRET, "DATABASE_URL": url}))
    yield url
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def test_rls_holds_when_connecting_as_the_table_owner(
    backend: str, owner_database: str
) -> None:
    db = PostgresDatabase(owner_database, app_role="aisha_app")
    try:
        ids = [uuid.uuid4(), uuid.uuid4()]

        def seed(session: Session) -> None:
            for i, tid in enumerate(ids):
                session.add(Tenant(id=tid, name=f"T{i}", slug=f"t{i}-{tid.hex[:6]}"))
            session.flush()
            for tid in ids:
                session.add(Contact(tenant_id=tid, first_name=f"c-{tid.hex[:4]}"))

        await db.run(seed, system=True)
        seen = await db.run(
            lambda s: s.scalars(select(Contact.tenant_id)).all(), tenant_id=ids[0], write=False
        )
        assert seen == [ids[0]]
        owner = await db.run(
            lambda s: s.scalar(
                text("SELECT tableowner FROM pg_tables WHERE tablename = 'contacts'")
            ),
            system=True,
            write=False,
        )
        assert owner == "aisha_owner_test"
    finally:
        await db.close()
