"""Migrations are the only way a schema is made: from empty, down to base and up again, with
no drift from the models, on SQLite and PostgreSQL; the guide's SQL runs on the result."""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

import aisha_server.db.models  # noqa: F401
from aisha_server.config import Settings, load_settings
from aisha_server.db import migrate
from aisha_server.db.base import Base
from aisha_server.db.uow import asyncpg_url
from tests.conftest import TEST_JWT_SECRET, _pg_admin, _pg_url
from tests.migrations.guide_sql import GUIDE_READS, GUIDE_WRITES

# Every table the guide names (DESIGN "Storage"), with the guide's column names where it
# shows them.
GUIDE_TABLES = {
    "tenants", "users", "employees", "accounts", "contacts", "leads", "opportunities",
    "activities", "notes", "ai_campaigns", "tenant_integrations", "webhook", "workflow",
    "workflow_execution", "care_states", "care_audit_log", "entity_labels", "custom_fields",
    "module_settings", "permissions", "role_permissions", "api_keys", "system_settings",
    "system_logs",
}  # fmt: skip
GUIDE_COLUMNS = {
    "care_states": {"id", "tenant_id", "entity_type", "entity_id", "current_state",
                    "previous_state", "transitioned_at", "transition_reason", "metadata",
                    "created_at", "updated_at"},
    "care_audit_log": {"id", "tenant_id", "event_type", "entity_type", "entity_id",
                       "action_origin", "reason", "metadata", "created_at"},
    "module_settings": {"tenant_id", "module_name", "is_enabled", "settings"},
    "custom_fields": {"tenant_id", "entity", "field_name", "field_type", "options"},
    "entity_labels": {"tenant_id", "entity_key", "custom_label", "custom_label_singular"},
    "permissions": {"id", "name", "description", "resource", "action"},
    "role_permissions": {"role", "permission_id"},
    "api_keys": {"key", "tenant_id", "name", "permissions", "expires_at"},
    "system_settings": {"setting_key"},
    "workflow_execution": {"id", "workflow_id", "status", "trigger_payload", "execution_log",
                           "started_at", "completed_at"},
    "workflow": {"id", "name", "status"},
    "activities": {"id", "type", "subject", "status", "due_date", "completed_at",
                   "related_type", "related_id", "metadata", "created_at"},
    "notes": {"content", "metadata", "related_id", "created_at"},
    "ai_campaigns": {"id", "name", "status", "metadata", "created_at"},
    "tenant_integrations": {"id", "tenant_id", "integration_type", "is_active", "credentials"},
    "contacts": {"id", "tenant_id", "email", "owner_id", "assigned_to", "department"},
    "tenants": {"id", "name", "slug", "status", "settings", "metadata"},
}  # fmt: skip


def _exclude_alembic(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    return not (type_ == "table" and name == "alembic_version")


def _drift(connection: Connection) -> list[Any]:
    include = _exclude_alembic
    if connection.dialect.name == "sqlite":
        # SQLAlchemy cannot reflect SQLite expression indexes (the search indexes of 0003);
        # test_search_indexes_exist checks them there
        def include(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
            if type_ == "index" and name is not None and "_search_" in name:
                return False
            return _exclude_alembic(obj, name, type_, reflected, other)

    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": include}
    )
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "Skipped unsupported reflection of expression-based index"
        )
        warnings.filterwarnings(
            "ignore", "autogenerate skipping metadata-specified expression-based index"
        )
        return list(compare_metadata(context, Base.metadata))


def _columns(connection: Connection) -> dict[str, set[str]]:
    inspector = inspect(connection)
    return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}


@pytest.fixture
def empty_database(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Settings]:
    """An EMPTY database (not the migrated template)."""
    if backend == "sqlite":
        yield load_settings(data_dir=tmp_path, overrides={"JWT_SECRET": TEST_JWT_SECRET})
        return
    request.getfixturevalue("pg_template")  # skips/fails consistently when PostgreSQL is absent
    name = f"aisha_m_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    yield load_settings(overrides={"JWT_SECRET": TEST_JWT_SECRET, "DATABASE_URL": _pg_url(name)})
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _inspect(settings: Settings, fn: Any) -> Any:
    if not settings.is_postgres:
        engine = create_engine(f"sqlite:///{settings.sqlite_path}", poolclass=pool.NullPool)
        try:
            with engine.connect() as conn:
                return fn(conn)
        finally:
            engine.dispose()

    async def run() -> Any:
        engine = create_async_engine(
            asyncpg_url(str(settings.DATABASE_URL)), poolclass=pool.NullPool
        )
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(fn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_upgrade_downgrade_upgrade_without_drift(empty_database: Settings) -> None:
    migrate.upgrade(empty_database)
    migrate.downgrade(empty_database, "base")
    remaining = _inspect(empty_database, lambda c: set(inspect(c).get_table_names()))
    assert remaining <= {"alembic_version"}
    migrate.upgrade(empty_database)
    assert _inspect(empty_database, _drift) == []


def test_every_guide_table_and_column_exists(empty_database: Settings) -> None:
    migrate.upgrade(empty_database)
    columns = _inspect(empty_database, _columns)
    assert set(columns) >= GUIDE_TABLES
    for table, wanted in GUIDE_COLUMNS.items():
        assert wanted <= columns[table], f"{table} lacks {wanted - columns[table]}"


@pytest.mark.parametrize("backend", ["postgres"])  # the guide's SQL is PostgreSQL SQL
def test_guide_sql_runs_unchanged_on_postgresql(empty_database: Settings) -> None:
    migrate.upgrade(empty_database)

    async def run() -> None:
        conn = await asyncpg.connect(str(empty_database.DATABASE_URL))
        try:
            tenant = await conn.fetchval(
                "INSERT INTO tenants (name, slug) VALUES ('Acme', 'acme') RETURNING id"
            )
            values = {"tenant": str(tenant), "uuid": str(uuid.uuid4())}
            for sql in GUIDE_WRITES:
                await conn.execute(sql.format(**values))
            for sql in GUIDE_READS:
                await conn.fetch(sql.format(**values))
            # the isolation checks of guide 4.3 find nothing to complain about
            leaks = await conn.fetch(GUIDE_READS[1])
            assert leaks == []
            without_rls = await conn.fetch(GUIDE_READS[2])
            assert [r["tablename"] for r in without_rls] == []
            grant = await conn.fetchval(
                "SELECT p.resource FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id"
                " WHERE rp.role = 'financial_manager'"
            )
            assert grant == "accounts"
        finally:
            await conn.close()

    asyncio.run(run())


def _index_names(connection: Connection) -> set[str]:
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")
    else:
        rows = connection.exec_driver_sql("SELECT indexname FROM pg_indexes")
    return {r[0] for r in rows}


def test_search_indexes_exist_and_serve_prefix_search(empty_database: Settings) -> None:
    """Every searched column has its index after 0003, and once statistics exist (the server
    refreshes them; services/search.py) a prefix `q` on contacts is answered from those
    indexes, not by scanning the tenant's rows: SQLite's MULTI-INDEX OR, PostgreSQL's
    BitmapOr."""
    from aisha_server.db.models.crm import SEARCH_INDEXES
    from aisha_server.services.records import SPECS, ListParams, ScopeRule, list_statement

    migrate.upgrade(empty_database)
    names = _inspect(empty_database, _index_names)
    wanted = {f"ix_{t}_search_{c}" for t, cols in SEARCH_INDEXES.items() for c in cols}
    assert wanted <= names

    tenant = uuid.uuid4()

    def fill(connection: Connection) -> None:
        """Both planners choose by statistics: give them a tenant of 20,000 contacts."""
        postgres = connection.dialect.name == "postgresql"
        connection.execute(
            text("INSERT INTO tenants (id, name, slug, status, settings, metadata, version,"
                 " created_at, updated_at) VALUES (:t, 'Plan', 'plan', 'active', '{}', '{}', 1,"
                 " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
            {"t": tenant if postgres else tenant.hex},
        )  # fmt: skip
        rows = (
            "SELECT gen_random_uuid(), :t, 'n' || g, md5(g::text), 'e' || g || '@example.com',"
            " 'c' || g, now(), now() - g * interval '1 minute' FROM generate_series(1, 20000) g"
            if postgres
            else "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 20000)"
            " SELECT lower(hex(randomblob(16))), :t, 'n' || g, hex(randomblob(6)),"
            " 'e' || g || '@example.com', 'c' || g, '2026-01-01 00:00:00.000000',"
            " '2026-01-01 00:00:00.000000', 1, '{}', '{}', '[]' FROM s"
        )
        columns = "id, tenant_id, first_name, last_name, email, company, created_at, updated_at"
        if not postgres:
            columns += ", version, custom_fields, metadata, tags"
        connection.execute(
            text(f"INSERT INTO contacts ({columns}) {rows}"),
            {"t": tenant if postgres else tenant.hex},
        )
        connection.exec_driver_sql("ANALYZE")
        connection.commit()

    _inspect(empty_database, fill)
    statement = list_statement(
        SPECS["contacts"],
        tenant,
        ScopeRule(),
        ListParams(q="smi"),
        {},
        "postgresql" if empty_database.is_postgres else "sqlite",
    )

    def plan(connection: Connection) -> str:
        compiled = statement.compile(connection, compile_kwargs={"literal_binds": True})
        prefix = "EXPLAIN QUERY PLAN " if connection.dialect.name == "sqlite" else "EXPLAIN "
        return "\n".join(str(r[-1]) for r in connection.exec_driver_sql(prefix + str(compiled)))

    shown = _inspect(empty_database, plan)
    for column in ("first_name", "last_name", "company"):
        assert f"ix_contacts_search_{column}" in shown, shown
    assert "ix_contacts_tenant_id_email" in shown, shown
    if not empty_database.is_postgres:  # read from the indexes, not by walking the tenant
        assert "MULTI-INDEX OR" in shown, shown
