"""Alembic environment: async on PostgreSQL (asyncpg), batch mode on SQLite.

The database URL comes from `config.attributes["database_url"]` (set by
`aisha_server.db.migrate`) or, when alembic is run by hand, from the server's settings.
On PostgreSQL a transaction-level advisory lock serialises concurrent migrators (several
server instances starting at once).
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, event, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

import aisha_server.db.models  # noqa: F401  (registers every table)
from aisha_server.db.base import Base
from aisha_server.db.uow import asyncpg_url

config = context.config
target_metadata = Base.metadata
MIGRATION_LOCK = 0x41495348  # "AISH"


def _database_url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return str(url)
    from aisha_server.config import load_settings

    settings = load_settings()
    if settings.is_postgres:
        return str(settings.DATABASE_URL)
    settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.sqlite_path}"


def _include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    return not (type_ == "table" and name == "alembic_version")


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=False,
        include_object=_include_object,
        user_module_prefix="aisha_server.db.base.",
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(asyncpg_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = _database_url()
    if url.startswith("sqlite"):
        engine = create_engine(url, poolclass=pool.NullPool)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            # driver autocommit + explicit BEGIN: DDL is transactional, and foreign keys
            # are off so batch mode can rebuild tables
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA foreign_keys=OFF")
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        try:
            with engine.connect() as conn:
                _run(conn)
                conn.commit()
        finally:
            engine.dispose()
    else:
        asyncio.run(_run_async(url))


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
