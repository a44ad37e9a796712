"""The unit of work: one transaction per call, rolled back on error, versions bumped, tenant
scope required; SQLite runs in WAL with foreign keys on."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.db.models import Contact, Tenant
from tests.factories import contacts_analysed, make_tenant


async def test_tenant_scope_needs_a_tenant(client: Any, db: Any) -> None:
    with pytest.raises(ValueError, match="tenant_id"):
        await db.run(lambda s: None)


async def test_error_rolls_back_the_whole_unit(client: Any, db: Any) -> None:
    tenant = await make_tenant(client.app)

    def write_then_fail(session: Session) -> None:
        session.add(Contact(tenant_id=tenant.id, first_name="Kept?", last_name="No"))
        session.flush()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await db.run(write_then_fail, tenant_id=tenant.id)
    count = await db.run(
        lambda s: len(s.scalars(select(Contact).where(Contact.tenant_id == tenant.id)).all()),
        tenant_id=tenant.id,
        write=False,
    )
    assert count == 0


async def test_every_change_bumps_version_and_updated_at(client: Any, db: Any) -> None:
    tenant = await make_tenant(client.app)

    def create(session: Session) -> tuple[uuid.UUID, int, Any]:
        contact = Contact(tenant_id=tenant.id, first_name="Ada")
        session.add(contact)
        session.flush()
        return contact.id, contact.version, contact.updated_at

    contact_id, version, updated = await db.run(create, tenant_id=tenant.id)
    assert version == 1

    def edit(session: Session) -> tuple[int, Any]:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        contact.last_name = "Lovelace"
        session.flush()
        return contact.version, contact.updated_at

    version2, updated2 = await db.run(edit, tenant_id=tenant.id)
    assert version2 == 2
    assert updated2 >= updated
    assert updated2.tzinfo is not None


async def test_foreign_keys_are_enforced(client: Any, db: Any) -> None:
    missing_tenant = uuid.uuid4()

    def orphan(session: Session) -> None:
        session.add(Contact(tenant_id=missing_tenant, first_name="Nobody"))
        session.flush()

    with pytest.raises(IntegrityError):
        await db.run(orphan, system=True)


async def test_sqlite_runs_in_wal_mode(client: Any, db: Any, backend: str) -> None:
    if backend != "sqlite":
        mode = await db.run(lambda s: s.scalar(text("SHOW transaction_isolation")), system=True)
        assert mode == "read committed"
        return
    mode = await db.run(lambda s: s.scalar(text("PRAGMA journal_mode")), system=True, write=False)
    assert mode == "wal"


async def test_reads_see_committed_writes(client: Any, db: Any) -> None:
    tenant = await make_tenant(client.app, "Visible Co")
    name = await db.run(lambda s: s.get(Tenant, tenant.id).name, system=True, write=False)
    assert name == "Visible Co"


@pytest.mark.parametrize("backend", ["postgres"])
async def test_read_units_cannot_write(client: Any, db: Any, backend: str) -> None:
    tenant = await make_tenant(client.app)

    def sneak(session: Session) -> None:
        session.execute(
            text("INSERT INTO contacts (id, tenant_id, first_name) VALUES (:id, :t, 'Sneak')"),
            {"id": uuid.uuid4(), "t": tenant.id},
        )

    with pytest.raises(DBAPIError, match="read-only transaction"):
        await db.run(sneak, tenant_id=tenant.id, write=False)
    await db.run(sneak, tenant_id=tenant.id)  # a write unit may


@pytest.mark.parametrize("backend", ["postgres"])
async def test_read_units_end_their_transaction_whatever_happens(
    settings: Any, backend: str
) -> None:
    """PostgreSQL read units open their own transaction (BEGIN READ ONLY with the settings in
    one round trip) on a connection the driver leaves in autocommit: one that fails, or is
    cancelled mid-query, must not leave the connection inside a transaction or with another
    unit's tenant; the next units on the same (only) connection start clean."""
    import asyncio

    from aisha_server.db.uow import PostgresDatabase

    db = PostgresDatabase(
        str(settings.DATABASE_URL), app_role=settings.AISHA_DB_APP_ROLE, pool_size=1
    )
    tenant = uuid.uuid4()

    def state(session: Session) -> tuple[Any, ...]:
        return tuple(
            session.execute(
                text(
                    "SELECT current_setting('app.tenant_id', true),"
                    " current_setting('app.bypass_rls', true),"
                    " current_setting('transaction_read_only'), now() = statement_timestamp()"
                )
            ).one()
        )

    def fail(session: Session) -> None:
        session.execute(text("SELECT 1"))
        raise RuntimeError("the unit fails")

    def slow(session: Session) -> None:
        session.execute(text("SELECT pg_sleep(5)"))

    try:
        with pytest.raises(RuntimeError):
            await db.run(fail, tenant_id=tenant, write=False)
        task = asyncio.create_task(db.run(slow, tenant_id=tenant, write=False))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the same connection (pool of one), or a fresh one if the cancelled one was dropped
        other = uuid.uuid4()
        seen = await db.run(state, tenant_id=other, write=False)
        assert seen[:3] == (str(other), "off", "on")
        assert seen[3] is False  # inside a transaction begun before this statement
        system = await db.run(state, system=True, write=False)
        assert system[:3] == ("", "on", "on")
        # settings are transaction-local: a write unit sees only its own
        written = await db.run(state, tenant_id=tenant)
        assert written[:3] == (str(tenant), "off", "off")
        # outside any unit the connection carries no tenant
        async with db.engine.connect() as conn:
            leftover = (
                await conn.exec_driver_sql("SELECT current_setting('app.tenant_id', true)")
            ).scalar()
        assert leftover in (None, "")
    finally:
        await db.close()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_analyze_gives_the_planner_statistics(client: Any, db: Any, backend: str) -> None:
    tenant = await make_tenant(client.app)

    def fill(session: Session) -> None:
        session.add_all(Contact(tenant_id=tenant.id, first_name=f"N{i}") for i in range(50))

    await db.run(fill, tenant_id=tenant.id)
    await db.analyze()
    stats = await db.run(
        lambda s: s.execute(text("SELECT idx FROM sqlite_stat1 WHERE tbl = 'contacts'")).all(),
        system=True,
        write=False,
    )
    assert {"ix_contacts_search_last_name", "ix_contacts_tenant_updated"} <= {r[0] for r in stats}


async def test_analyze_of_one_table_keeps_the_application_role(
    client: Any, db: Any, backend: str
) -> None:
    """PostgreSQL: ANALYZE runs as the table's owner on a connection that is then dropped, so
    every unit still works as the application role (row-level security applies)."""
    tenant = await make_tenant(client.app)

    def fill(session: Session) -> None:
        session.add_all(Contact(tenant_id=tenant.id, first_name=f"N{i}") for i in range(50))

    await db.run(fill, tenant_id=tenant.id)
    await db.analyze("contacts")
    assert await contacts_analysed(db, backend) > 0
    if backend != "sqlite":
        users = await asyncio.gather(
            *(db.run(lambda s: s.scalar(text("SELECT current_user")), system=True, write=False)
              for _ in range(12))
        )  # fmt: skip
        assert set(users) == {db.app_role}
    with pytest.raises(ValueError, match="plain table name"):
        await db.analyze('contacts"; DROP TABLE users; --')


# -- quick reads (SQLite: on the event loop under a time budget) ---------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_quick_read_runs_on_the_event_loop(client: Any, db: Any, backend: str) -> None:
    import threading

    tenant = await make_tenant(client.app)
    before = dict(db.quick_stats)

    def where(session: Session) -> tuple[str, int]:
        count = session.scalar(select(Contact.id).where(Contact.tenant_id == tenant.id))
        return threading.current_thread().name, 0 if count is None else 1

    assert await db.run(where, tenant_id=tenant.id, write=False, quick=True) == (
        threading.current_thread().name,
        0,
    )
    name, _ = await db.run(where, tenant_id=tenant.id, write=False)
    assert name.startswith("aisha-db-reader")
    assert db.quick_stats["inline"] == before["inline"] + 1
    assert db.quick_stats["requeued"] == before["requeued"]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_only_the_quick_connection_maps_the_file(client: Any, db: Any, backend: str) -> None:
    """List reads map the database file (AISHA_SQLITE_MMAP_MB); the readers, which walk
    whole tables for exports and snapshots, do not."""
    settings = client.app[keys.SETTINGS]
    assert db.quick_mmap_bytes == settings.AISHA_SQLITE_MMAP_MB * 1024 * 1024 > 0

    def mapped(session: Session) -> int:
        return int(session.scalar(text("PRAGMA mmap_size")) or 0)

    assert await db.run(mapped, system=True, write=False, quick=True) == db.quick_mmap_bytes
    assert await db.run(mapped, system=True, write=False) == 0
    assert await db.run(mapped, system=True) == 0


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_quick_read_over_its_budget_moves_to_a_reader_thread(
    client: Any, db: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's progress handler interrupts the overrunning statement; the unit is rolled back
    and run again on a reader thread, which has no budget, and its answer is the real one."""
    import threading
    import time

    tenant = await make_tenant(client.app)
    monkeypatch.setattr(type(db), "QUICK_BUDGET", 0.002)
    before = dict(db.quick_stats)
    # a recursive count that takes far longer than 2 ms of SQLite's work
    slow = text(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000)"
        " SELECT count(*) FROM n"
    )
    threads: list[str] = []

    def count(session: Session) -> int:
        threads.append(threading.current_thread().name)
        return int(session.execute(slow).scalar_one())

    loop_start = time.perf_counter()
    assert await db.run(count, tenant_id=tenant.id, write=False, quick=True) == 3_000_000
    assert len(threads) == 2  # tried on the loop, then done on a reader thread
    assert threads[0] == threading.current_thread().name
    assert threads[1].startswith("aisha-db-reader")
    assert db.quick_stats["requeued"] == before["requeued"] + 1
    assert time.perf_counter() - loop_start > 0.002
    # the loop's connection (kept checked out) was rolled back and serves the next read
    assert await db.run(lambda s: s.execute(text("SELECT 7")).scalar_one(),
                        tenant_id=tenant.id, write=False, quick=True) == 7  # fmt: skip
    assert db.quick_stats["inline"] == before["inline"] + 1


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_quick_reads_own_errors_are_not_retried(client: Any, db: Any, backend: str) -> None:
    tenant = await make_tenant(client.app)
    calls: list[int] = []

    def broken_sql(session: Session) -> None:
        calls.append(1)
        session.execute(text("SELECT no_such_column FROM contacts"))

    def broken_code(session: Session) -> None:
        calls.append(2)
        raise LookupError("the unit's own failure")

    with pytest.raises(DBAPIError, match="no_such_column"):
        await db.run(broken_sql, tenant_id=tenant.id, write=False, quick=True)
    with pytest.raises(LookupError):
        await db.run(broken_code, tenant_id=tenant.id, write=False, quick=True)
    assert calls == [1, 2]
    # the loop's connection is usable afterwards and sees committed writes
    await db.run(
        lambda s: s.add(Contact(tenant_id=tenant.id, first_name="After")), tenant_id=tenant.id
    )
    names = await db.run(
        lambda s: s.scalars(select(Contact.first_name).where(Contact.tenant_id == tenant.id)).all(),
        tenant_id=tenant.id,
        write=False,
        quick=True,
    )
    assert names == ["After"]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_quick_read_never_waits_for_a_lock(client: Any, db: Any, backend: str) -> None:
    """The loop's connection has no busy timeout: a unit that meets a lock (here a statement
    that needs the write lock another connection holds) is moved to a reader thread at once,
    which waits for the lock as readers do, while the event loop goes on serving."""
    import asyncio
    import sqlite3

    tenant = await make_tenant(client.app)
    before = dict(db.quick_stats)
    blocker = sqlite3.connect(db.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock

    async def release() -> None:
        await asyncio.sleep(0.3)
        blocker.execute("COMMIT")
        blocker.close()

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    releasing = asyncio.create_task(release())
    ticking = asyncio.create_task(ticker())
    loop = asyncio.get_running_loop()
    start = loop.time()
    touched = await db.run(
        lambda s: s.execute(text("UPDATE contacts SET version = version WHERE 0")).rowcount,
        tenant_id=tenant.id,
        write=False,
        quick=True,
    )
    waited = loop.time() - start
    await releasing
    ticking.cancel()
    assert touched == 0
    assert db.quick_stats["requeued"] == before["requeued"] + 1
    assert waited >= 0.25  # it waited for the lock ...
    assert ticks >= 10  # ... on a thread: the loop kept running
