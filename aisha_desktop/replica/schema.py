"""The replica file's schema: which entities it holds, the columns the views sort, filter and
search on, and the versioned DDL (`PRAGMA user_version`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

SCHEMA_VERSION = 2

# Common to every record entity: what list views sort and filter on.
COMMON_COLUMNS = ("updated_at", "created_at", "status", "owner_id", "assigned_to", "department")

# Per record entity: its name columns, email, stage/type and links the views use.
ENTITY_COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": ("name", "email", "type", "industry"),
    "contacts": ("first_name", "last_name", "email", "company", "account_id"),
    "leads": ("first_name", "last_name", "email", "company", "source"),
    "opportunities": ("name", "stage", "close_date", "account_id", "contact_id"),
    "activities": ("subject", "type", "due_date", "completed_at", "related_type", "related_id"),
    "notes": ("title", "related_type", "related_id"),
}

# What the lower-cased `search` column is made of (a substring search over these).
SEARCH_FIELDS: dict[str, tuple[str, ...]] = {
    "accounts": ("name", "email", "phone", "website", "city"),
    "contacts": ("first_name", "last_name", "email", "phone", "mobile", "company", "title"),
    "leads": ("first_name", "last_name", "email", "phone", "company", "title"),
    "opportunities": ("name", "stage"),
    "activities": ("subject",),
    "notes": ("title", "content"),
}

# The columns with an index: sorts, and filters that pick few rows.  Filters on columns with
# few distinct values (status, type, stage...) scan a sort index instead; every index costs
# the initial sync time.
INDEXED_COMMON = ("updated_at", "created_at", "owner_id", "assigned_to")
INDEXED: dict[str, tuple[str, ...]] = {
    "accounts": ("name", "email"),
    "contacts": ("last_name", "email", "account_id"),
    "leads": ("last_name", "email"),
    "opportunities": ("name", "close_date", "account_id", "contact_id"),
    "activities": ("subject", "due_date", "related_id"),
    "notes": ("title", "related_id"),
}

RECORD_ENTITIES = tuple(ENTITY_COLUMNS)
# Replicated read-only: the server's push takes records only.
SETTINGS_ENTITIES = ("module_settings", "entity_labels", "custom_fields")


def columns(entity: str) -> tuple[str, ...]:
    """The indexed columns of a record entity's table."""
    return (*COMMON_COLUMNS, *ENTITY_COLUMNS[entity])


def table(entity: str) -> str:
    if entity not in ENTITY_COLUMNS:
        raise ValueError(f"not a replicated record entity: {entity!r}")
    return f"r_{entity}"


def _create_v1(db: sqlite3.Connection) -> None:
    statements = [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        # ordered local mutations; `sent` once a push carried it (never folded into after)
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            mutation_id TEXT NOT NULL UNIQUE,
            entity TEXT NOT NULL,
            record_id TEXT NOT NULL,
            op TEXT NOT NULL CHECK (op IN ('create', 'update', 'delete')),
            base_version INTEGER,
            fields TEXT NOT NULL,
            created_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            sent INTEGER NOT NULL DEFAULT 0,
            last_error TEXT
        )""",
        "CREATE INDEX ix_outbox_record ON outbox (entity, record_id, seq)",
        """CREATE TABLE settings_rows (
            entity TEXT NOT NULL,
            id TEXT NOT NULL,
            version INTEGER,
            data TEXT NOT NULL,
            gen INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (entity, id)
        )""",
        """CREATE TABLE conflicts (
            id TEXT PRIMARY KEY,
            entity TEXT NOT NULL,
            record_id TEXT NOT NULL,
            field TEXT NOT NULL,
            server_value TEXT,
            client_value TEXT,
            base_version INTEGER,
            server_version INTEGER,
            server_changed_by TEXT,
            server_changed_at TEXT,
            mutation_id TEXT,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX ix_conflicts_record ON conflicts (entity, record_id)",
        """CREATE TABLE rejections (
            mutation_id TEXT PRIMARY KEY,
            entity TEXT NOT NULL,
            record_id TEXT NOT NULL,
            op TEXT NOT NULL,
            fields TEXT NOT NULL,
            code TEXT NOT NULL,
            message TEXT NOT NULL,
            details TEXT,
            created_at TEXT NOT NULL
        )""",
    ]
    for entity in RECORD_ENTITIES:
        name = table(entity)
        indexed = ",\n".join(
            f"{c} TEXT NOT NULL DEFAULT '' COLLATE NOCASE" for c in columns(entity)
        )
        # version/base: the server row (NULL while only created here); data: what views
        # show (base overlaid with the outbox's pending edits; NULL when that is the base);
        # gen: the snapshot that last confirmed the row (a finished one sweeps older ones)
        statements.append(
            f"""CREATE TABLE {name} (
                id TEXT PRIMARY KEY,
                version INTEGER,
                base TEXT,
                data TEXT,
                pending INTEGER NOT NULL DEFAULT 0,
                hidden INTEGER NOT NULL DEFAULT 0,
                gen INTEGER NOT NULL DEFAULT 0,
                {indexed},
                search TEXT NOT NULL DEFAULT ''
            )"""
        )
        for column in (*INDEXED_COMMON, *INDEXED[entity]):
            statements.append(f"CREATE INDEX ix_{name}_{column} ON {name} ({column}, id)")
    for statement in statements:
        db.execute(statement)


def _hidden_index_v2(db: sqlite3.Connection) -> None:
    """Counting the shown rows (`hidden = 0`) read the whole wide table (~300 ms at 1M rows);
    a narrow index answers it."""
    for entity in RECORD_ENTITIES:
        name = table(entity)
        db.execute(f"CREATE INDEX IF NOT EXISTS ix_{name}_hidden ON {name} (hidden)")


# MIGRATIONS[n] brings a file from user_version n to n + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_create_v1, _hidden_index_v2]
assert len(MIGRATIONS) == SCHEMA_VERSION
