"""The unit of work: one transaction per request or job, one event-loop hand-off per unit.

Repositories and the transactional part of services are plain synchronous SQLAlchemy code
that takes a `Session`.  `Database.run(fn, ...)` executes such a function in one transaction:

* SQLite: the whole function runs on a database thread (one hand-off per unit of work, not per
  statement - DESIGN "Performance notes").  Writers share one thread and `BEGIN IMMEDIATE`, so
  they never deadlock on lock upgrades; readers use a small pool of threads (WAL lets them run
  beside the writer).  A *quick* read (`quick=True`: a short indexed read such as a page of a
  record list) pays no hand-off at all: it runs on the event loop's own connection under a time
  budget, and one that overruns the budget (or meets a lock) is interrupted by SQLite's progress
  handler, rolled back and run again on a reader thread (`_quick`).
* PostgreSQL: the function runs through `AsyncSession.run_sync` on asyncpg (greenlet bridge, no
  threads).  Each transaction first sets `app.tenant_id` (and, for explicit system scope,
  `app.bypass_rls`) with `set_config(..., true)`, and every connection works as the non-owner
  application role, so row-level security applies even when DATABASE_URL names a superuser.
  Read units send `BEGIN READ ONLY` and the settings in one message (`_read`): three round
  trips per read, as many as a bare SQLAlchemy read takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select, create_engine, event, text
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import await_only

from aisha_server.db import changelog  # registers the change-log flush hook
from aisha_server.db.base import Versioned, utcnow

T = TypeVar("T")


class Scope(Enum):
    """Which rows a unit of work may touch at the database layer (RLS on PostgreSQL)."""

    TENANT = "tenant"  # exactly one tenant's rows
    SYSTEM = "system"  # every tenant's rows: logins, superadmin listings, workers


@dataclass(frozen=True, slots=True)
class TxContext:
    scope: Scope
    tenant_id: uuid.UUID | None


def asyncpg_url(url: str) -> URL:
    """Accept the guide's `postgresql://user:pass@host:5432/db` form as written."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed


class Database:
    """Owns the engines; built once in `create_app`/CLI and disposed in `close()`."""

    dialect: str
    # called on the event loop after a transaction that wrote change-log rows commits, with
    # tenant -> last sequence written (the sync notifier; db/changelog.py)
    on_commit: Callable[[dict[uuid.UUID, int]], None] | None = None

    def _committed(self, written: dict[uuid.UUID, int]) -> None:
        if written and self.on_commit is not None:
            self.on_commit(written)

    async def run(
        self,
        fn: Callable[[Session], T],
        *,
        tenant_id: uuid.UUID | None = None,
        system: bool = False,
        write: bool = True,
        actor: changelog.ChangeContext | None = None,
        quick: bool = False,
    ) -> T:
        """Runs `fn(session)` in one transaction.  `actor` stamps the change-log rows the
        transaction writes (who, from which client and mutation).  `quick` (reads only) marks a
        short indexed read whose `fn` has no effect but its result, so it may be interrupted and
        run again: SQLite runs it on the event loop under a time budget (no hand-off)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def ping(self) -> float:
        """Round-trip one trivial query; returns seconds taken."""
        raise NotImplementedError

    def pool_status(self) -> dict[str, Any]:
        raise NotImplementedError

    async def analyze(self, table: str | None = None) -> None:
        """Refresh the query planner's statistics, of one table or all (PostgreSQL: of one
        table; autovacuum keeps the rest)."""

    @staticmethod
    def _context(tenant_id: uuid.UUID | None, system: bool) -> TxContext:
        if system:
            return TxContext(Scope.SYSTEM, tenant_id)
        if tenant_id is None:
            raise ValueError("a tenant-scoped unit of work needs a tenant_id (or system=True)")
        return TxContext(Scope.TENANT, tenant_id)


def _identifier(name: str) -> str:
    """A table name for a statement (ours, never user input): refused unless plain."""
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"not a plain table name: {name!r}")
    return name


def select_rows(
    session: Session, statement: Select[Any], parameters: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    """The rows of `statement` run with `parameters`, as the driver returns them: for SELECTs
    whose columns need no result processing (services/records.list_columns) and statements
    built once and kept (services/records.planned_select).

    The statement is compiled once and run straight on the driver's connection, in the unit's
    transaction: SQLAlchemy's execute (parameter and result handling around the driver call)
    cost about as much as the query itself for a page of 50 on SQLite.  PostgreSQL: asyncpg's
    `fetch` through the greenlet bridge, as the unit's own statements run."""
    connection = session.connection()
    entry = _COMPILED.get(id(statement))
    dialect = connection.dialect
    if entry is None or entry.statement is not statement or entry.dialect != dialect.name:
        entry = _DriverStatement.of(statement, dialect)
        if len(_COMPILED) >= 4096:
            _COMPILED.clear()
        _COMPILED[id(statement)] = entry
    if entry.sql is None:  # expanding IN and the like: SQLAlchemy renders them per execution
        return connection.execute(statement, parameters).all()
    values = entry.compiled.construct_params(parameters)
    arguments = [values[n] if f is None else f(values[n]) for n, f in entry.order]
    driver: Any = connection.connection.driver_connection
    if dialect.name == "postgresql":
        records: list[Sequence[Any]] = await_only(driver.fetch(entry.sql, *arguments))
        return records
    rows: list[Sequence[Any]] = driver.execute(entry.sql, arguments).fetchall()
    return rows


@dataclass(frozen=True, slots=True)
class _DriverStatement:
    """A statement compiled for the driver (sqlite3's `?` or asyncpg's `$n`): its SQL (None
    when it needs SQLAlchemy at each execution) and its positional parameters with their bind
    processors."""

    statement: Select[Any]
    dialect: str
    compiled: SQLCompiler
    sql: str | None
    order: list[tuple[str, Callable[[Any], Any] | None]]

    @classmethod
    def of(cls, statement: Select[Any], dialect: Dialect) -> _DriverStatement:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        positions = compiled.positiontup
        processors = compiled._bind_processors
        order: list[tuple[str, Callable[[Any], Any] | None]] = []
        for name in positions or ():
            processor = processors.get(name)
            if processor is not None and not callable(processor):
                positions = None  # a tuple-valued parameter
                break
            order.append((name, processor))
        plain = positions is not None and not (
            compiled.literal_execute_params or compiled.post_compile_params
        )
        return cls(statement, dialect.name, compiled, compiled.string if plain else None, order)


# id(statement) -> its driver form (the statement is kept in the entry, so the id stays its own)
_COMPILED: dict[int, _DriverStatement] = {}


def _bump_versions(session: Session, _context: Any, _instances: Any) -> None:
    """Every change to a versioned row bumps `version` and `updated_at`, whatever path made it."""
    now = utcnow()
    for obj in session.dirty:
        if isinstance(obj, Versioned) and session.is_modified(obj, include_collections=False):
            obj.version = (obj.version or 0) + 1
            obj.updated_at = now


event.listen(Session, "before_flush", _bump_versions)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # autocommit at the driver so SQLAlchemy's "begin" event decides the BEGIN flavour
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # The page cache stays at SQLite's default (2 MiB) on every connection: with a larger one
    # each of the readers keeps up to that much of whatever it read (an export of 1M rows filled
    # 64 MiB per reader).  Bulk imports enlarge the writer's cache themselves
    # (services/record_io.insert_records).
    cursor.close()


def make_sqlite_engine(path: Path, *, immediate: bool, pool_size: int) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{path}",
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"check_same_thread": False},
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    begin_sql = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql(begin_sql)

    return engine


class SQLiteDatabase(Database):
    dialect = "sqlite"

    # how much CPU time a quick read may take on the event loop before it is moved to a reader
    # thread: above the dearest page a list serves from its indexes (a one-letter search of a
    # 10,000-record tenant, ~5 ms), far below what a scan or a count of a large table takes
    QUICK_BUDGET = 0.010
    # SQLite calls the budget check every this many virtual-machine steps (tens of us)
    QUICK_STEPS = 1000
    # sqlite3 result codes that send a quick read to a thread: interrupted (the budget), busy
    # and locked (a quick read never waits on the loop; busy_timeout is 0 there)
    _REQUEUE = frozenset({sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})

    def __init__(self, path: Path, *, readers: int = 4, quick_mmap_bytes: int = 0) -> None:
        self.path = path
        self.quick_mmap_bytes = quick_mmap_bytes
        self.writer_engine = make_sqlite_engine(path, immediate=True, pool_size=1)
        self.reader_engine = make_sqlite_engine(path, immediate=False, pool_size=readers)
        # the event loop's own connection (quick reads): one, used only from the loop thread
        self.quick_engine = make_sqlite_engine(path, immediate=False, pool_size=1)
        self._deadline = self._cpu_deadline = math.inf
        event.listen(self.quick_engine, "connect", self._budgeted)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="aisha-db-writer")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="aisha-db-reader")
        self._write_sessions = sessionmaker(self.writer_engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.reader_engine, expire_on_commit=False)
        self._quick_connection: Connection | None = None  # kept checked out (loop thread)
        self.quick_stats = {"inline": 0, "requeued": 0}

    def _quick_bind(self) -> Connection:
        """The loop's connection, checked out once and kept: a quick unit's session binds to
        it, sparing each read the pool's checkout, reset and checkin."""
        connection = self._quick_connection
        if connection is None or connection.closed or connection.invalidated:
            connection = self._quick_connection = self.quick_engine.connect()
        return connection

    def _budgeted(self, dbapi_connection: Any, _record: Any) -> None:
        """The quick connection never waits for a lock and stops past the unit's deadline.

        It also reads the database file through a memory map (`quick_mmap_bytes`, 0 = off):
        a page of a list touches ~50 rows spread over the file, and each page SQLite's small
        cache misses costs a read() system call and a copy; mapped, a first page of 50 took
        ~10% less CPU on 1M contacts (docs/BENCHMARKS.md).  Only this connection maps: the
        readers' exports and snapshots walk whole tables, which a map would leave counted in
        the process's resident memory (as file pages the kernel can drop, but counted)."""
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.execute(f"PRAGMA mmap_size={int(self.quick_mmap_bytes)}")
        cursor.close()
        clock, cpu = time.perf_counter, time.thread_time

        def overrun() -> bool:
            # wall time first (cheap); past it, the loop thread's own CPU time decides, so a
            # read is not moved for time the machine gave to other work
            return clock() > self._deadline and cpu() > self._cpu_deadline

        dbapi_connection.set_progress_handler(overrun, self.QUICK_STEPS)

    @staticmethod
    def _in_transaction(
        factory: sessionmaker[Session],
        fn: Callable[[Session], T],
        actor: changelog.ChangeContext | None = None,
    ) -> tuple[T, dict[uuid.UUID, int]]:
        with factory() as session:
            if actor is not None:
                changelog.attribute(session, actor)
            with session.begin():
                result = fn(session)
            return result, dict(changelog.heads(session))

    async def run(
        self,
        fn: Callable[[Session], T],
        *,
        tenant_id: uuid.UUID | None = None,
        system: bool = False,
        write: bool = True,
        actor: changelog.ChangeContext | None = None,
        quick: bool = False,
    ) -> T:
        self._context(tenant_id, system)
        loop = asyncio.get_running_loop()
        if write:
            call = functools.partial(self._in_transaction, self._write_sessions, fn, actor)
            result, written = await loop.run_in_executor(self._writer, call)
            self._committed(written)
            return result
        if quick:
            done, value = self._quick(fn)
            if done:
                return value  # type: ignore[return-value]
        call = functools.partial(self._in_transaction, self._read_sessions, fn)
        result, _ = await loop.run_in_executor(self._readers, call)
        return result

    def _quick(self, fn: Callable[[Session], T]) -> tuple[bool, T | None]:
        """Runs a read unit on the event loop's connection within QUICK_BUDGET: (True, result),
        or (False, None) when SQLite interrupted it (over budget) or met a lock - the caller
        then runs it on a reader thread.  The unit's own errors propagate."""
        self._deadline = time.perf_counter() + self.QUICK_BUDGET
        self._cpu_deadline = time.thread_time() + self.QUICK_BUDGET
        try:
            with (
                Session(bind=self._quick_bind(), expire_on_commit=False) as session,
                session.begin(),
            ):
                result = fn(session)
        except (OperationalError, sqlite3.OperationalError) as exc:
            # SQLAlchemy's wrapper, or the driver's own error (select_rows)
            code = getattr(getattr(exc, "orig", exc), "sqlite_errorcode", None)
            if code not in self._REQUEUE:
                raise
            self.quick_stats["requeued"] += 1
            return False, None
        finally:
            self._deadline = math.inf
        self.quick_stats["inline"] += 1
        return True, result

    async def ping(self) -> float:
        loop = asyncio.get_running_loop()

        def probe(session: Session) -> float:
            start = loop.time()
            session.execute(text("SELECT 1"))
            return loop.time() - start

        return await self.run(probe, system=True, write=False)

    async def analyze(self, table: str | None = None) -> None:
        """ANALYZE with bounded sampling (a few hundred ms on a million rows).  Without
        statistics SQLite plans a search by walking the whole tenant in sort order instead of
        reading the matches from the search indexes (20 ms vs 0.2 ms at 10k rows)."""
        statement = "ANALYZE" if table is None else f'ANALYZE "{_identifier(table)}"'

        def work() -> None:
            with self.writer_engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA analysis_limit=1000")
                conn.exec_driver_sql(statement)
                conn.commit()

        await asyncio.get_running_loop().run_in_executor(self._writer, work)

    def pool_status(self) -> dict[str, Any]:
        return {
            "backend": "sqlite",
            "path": str(self.path),
            "writer": self.writer_engine.pool.status(),
            "readers": self.reader_engine.pool.status(),
            "quick": dict(self.quick_stats),
        }

    async def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.writer_engine.dispose()
        self.reader_engine.dispose()
        if self._quick_connection is not None:
            self._quick_connection.close()
        self.quick_engine.dispose()


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, *, app_role: str | None, pool_size: int = 10) -> None:
        self.url = asyncpg_url(url)
        self.app_role = app_role
        self.engine: AsyncEngine = create_async_engine(
            self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False
        )
        if app_role is not None:
            role = app_role

            @event.listens_for(self.engine.sync_engine, "connect")
            def _set_role(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute(f'SET ROLE "{role}"')
                cursor.close()
                # committed at once: left in the driver's open transaction, the role was undone
                # when the connection's first unit of work rolled back (or when a read unit
                # switched it to autocommit), and the connection then worked as the login
                # user - a superuser or the table owner, to whom RLS does not apply
                dbapi_connection.commit()

        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # read units: the driver is left in autocommit and the unit opens its own transaction
        # (`_read_body`), so BEGIN and the settings share one round trip
        self._read_sessions = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )

    async def run(
        self,
        fn: Callable[[Session], T],
        *,
        tenant_id: uuid.UUID | None = None,
        system: bool = False,
        write: bool = True,
        actor: changelog.ChangeContext | None = None,
        quick: bool = False,  # asyncpg hands nothing off to threads: nothing to spare
    ) -> T:
        ctx = self._context(tenant_id, system)
        if not write and actor is None:
            return await self._read(fn, ctx)

        def body(session: Session) -> T:
            if actor is not None:
                changelog.attribute(session, actor)
            # one round trip: the tenant, the RLS bypass and (reads) a read-only transaction
            # (PostgreSQL lets a transaction turn read-only at any point)
            session.execute(
                text(
                    "SELECT set_config('app.tenant_id', :tenant, true),"
                    " set_config('app.bypass_rls', :bypass, true),"
                    " set_config('transaction_read_only', :read_only, true)"
                ),
                {
                    "tenant": str(ctx.tenant_id) if ctx.tenant_id else "",
                    "bypass": "on" if ctx.scope is Scope.SYSTEM else "off",
                    "read_only": "off" if write else "on",
                },
            )
            return fn(session)

        session: AsyncSession
        async with self._sessions() as session:
            async with session.begin():
                result = await session.run_sync(body)
            self._committed(dict(changelog.heads(session.sync_session)))
            return result

    async def _read(self, fn: Callable[[Session], T], ctx: TxContext) -> T:
        """A read-only unit in three round trips, as a bare `engine.connect()` read takes:
        `BEGIN READ ONLY` with the tenant and RLS bypass settings (one simple-protocol message),
        the unit's own statements, `COMMIT`.  The settings stay transaction-local and the
        transaction read-only, as in `run`; a unit that fails or is cancelled is rolled back, and
        a connection whose transaction cannot be ended is invalidated (never reused)."""
        tenant = str(uuid.UUID(str(ctx.tenant_id))) if ctx.tenant_id is not None else ""
        bypass = "on" if ctx.scope is Scope.SYSTEM else "off"
        # literals, not parameters (the simple protocol has none): a normalised UUID and on/off
        begin = (
            "BEGIN READ ONLY; SELECT set_config('app.tenant_id', '" + tenant + "', true),"
            " set_config('app.bypass_rls', '" + bypass + "', true)"
        )

        def body(session: Session) -> T:
            connection = session.connection()
            driver: Any = connection.connection.driver_connection

            def send(sql: str) -> None:
                try:
                    await_only(driver.execute(sql))
                except BaseException:
                    connection.invalidate()
                    raise

            send(begin)
            try:
                result = fn(session)
            except BaseException:
                # the unit's own error is the one to report; a connection that cannot roll
                # back (closed by a cancelled query, broken) is dropped by `send`
                with contextlib.suppress(Exception):
                    if driver.is_closed():
                        connection.invalidate()
                    else:
                        send("ROLLBACK")
                raise
            send("COMMIT")
            return result

        session: AsyncSession
        async with self._read_sessions() as session:
            return await session.run_sync(body)

    async def ping(self) -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return loop.time() - start

    async def analyze(self, table: str | None = None) -> None:
        """ANALYZE one table now, rather than when autovacuum next looks (up to a minute, and
        only past its thresholds): right after a large import the planner would otherwise
        plan the next statements on the table as if it were empty (an upsert's match by e-mail
        read the tenant's every row per chunk: 0.5 s instead of 0.2 ms).  Run as the login
        user (the table's owner; the application role may not ANALYZE), on a connection
        dropped afterwards so nothing else ever works as that user."""
        if table is None:
            return
        name = _identifier(table)
        async with self.engine.connect() as conn:
            try:
                await conn.exec_driver_sql("RESET ROLE")
                await conn.exec_driver_sql(f'ANALYZE "{name}"')
                await conn.commit()
            finally:
                await conn.invalidate()

    def pool_status(self) -> dict[str, Any]:
        pool: Any = self.engine.pool
        return {
            "backend": "postgresql",
            "size": pool.size(),
            "checked_out": pool.checkedout(),
            "overflow": pool.overflow(),
            "status": pool.status(),
        }

    async def close(self) -> None:
        await self.engine.dispose()


def open_database(
    *,
    database_url: str | None,
    sqlite_path: Path,
    app_role: str | None,
    pool_size: int,
    readers: int,
    sqlite_mmap_bytes: int = 0,
) -> Database:
    if database_url and not database_url.startswith("sqlite"):
        return PostgresDatabase(database_url, app_role=app_role, pool_size=pool_size)
    return SQLiteDatabase(sqlite_path, readers=readers, quick_mmap_bytes=sqlite_mmap_bytes)
