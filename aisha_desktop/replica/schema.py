"""The replica file's schema: which entities it holds, the columns the views sort, filter and
search on, and the versioned DDL (`PRAGMA user_version`)."""

from __future__ import annotations

import functools
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

SCHEMA_VERSION = 4

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

# What a record's search words are made of: a search finds the rows where every typed word
# starts one of these words (as the server's `q` does).
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

# Phone numbers are also found by their digits, with or without the country code.
PHONE_FIELDS = frozenset({"phone", "mobile"})
_WORD = re.compile(r"[^\W_]+")
_SNAKE = re.compile(r"\w*_\w*")
_NOT_ALNUM = re.compile(r"[\W_]+")
_PHONE_LIKE = re.compile(r"[+(]?\d[\d\s().\-/]*")

RECORD_ENTITIES = tuple(ENTITY_COLUMNS)
# Replicated read-only: the server's push takes records only.
SETTINGS_ENTITIES = ("module_settings", "entity_labels", "custom_fields")
# C.A.R.E. states and audit entries: read-only, administrators and managers only (v4)
CARE_ENTITIES = ("care_states", "care_audit_log")


def columns(entity: str) -> tuple[str, ...]:
    """The indexed columns of a record entity's table."""
    return (*COMMON_COLUMNS, *ENTITY_COLUMNS[entity])


def table(entity: str) -> str:
    if entity not in ENTITY_COLUMNS:
        raise ValueError(f"not a replicated record entity: {entity!r}")
    return f"r_{entity}"


def _plain(text: str) -> str:
    """Lower case without accents ("José" -> "jose"): typed and stored words alike."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _indexed(word: str) -> str:
    """A word as the full-text index holds it: letters and digits as they are, any other
    character as `_<hex>_` (so "ann.smith@ex" stays one token, and "ex%1" is not "ex_1";
    a prefix of a word maps to a prefix of its form)."""
    if word.isalnum():  # [^\W_]+: most words
        return word
    return _NOT_ALNUM.sub(lambda m: "".join(f"_{ord(c):x}_" for c in m.group()), word)


def _words_of(value: str, phone: bool) -> Iterable[str]:
    if phone:
        digits = "".join(c for c in value if c.isdigit())
        if digits:
            yield digits
            if value.lstrip().startswith("+"):
                # "+15550001234": also "5550001234" (we do not know the country code's length)
                yield from (digits[n:] for n in (1, 2) if len(digits) - n >= 4)
        return
    for chunk in _plain(value).split():
        if chunk.isalnum():
            yield chunk
            continue
        yield from _WORD.findall(chunk)
        yield from _SNAKE.findall(chunk)  # "ex_1" as well as "ex" and "1"
        yield chunk  # "ann@ex.io", "o'brien": also found by what was typed as is


@functools.lru_cache(maxsize=65536)
def _value_words(value: str, phone: bool) -> tuple[str, ...]:
    """A value's words in indexed form (names, companies and titles repeat: remembered)."""
    return tuple(dict.fromkeys(_indexed(w) for w in _words_of(value, phone)))


def search_words(entity: str, data: Mapping[str, Any]) -> str:
    """The words a record is found by, as the `search` column holds them: each in its
    indexed form, after a space (" ann garcia ann_40_acme_2e_io ...").  The full-text index
    is kept from this column by triggers."""
    words: set[str] = set()
    for name in SEARCH_FIELDS[entity]:
        value = data.get(name)
        if value not in (None, ""):
            words.update(_value_words(str(value), name in PHONE_FIELDS))
    return "".join(" " + w for w in sorted(words))


def query_words(text: str) -> list[str]:
    """What each typed word must be the start of, in indexed form: words as they are
    indexed; a phone number ("(212) 555-01", "+44 20") by its digits; anything else
    ("ann@ex", "o'bri") as typed."""
    found: list[str] = []
    phone = False  # the previous chunk was part of a phone number: the digits continue it
    for chunk in _plain(text).split():
        if _PHONE_LIKE.fullmatch(chunk) and any(c.isdigit() for c in chunk):
            digits = "".join(c for c in chunk if c.isdigit())
            if phone:
                found[-1] += digits
            else:
                found.append(digits)
            phone = True
            continue
        phone = False
        found.append(_indexed(chunk))
    return list(dict.fromkeys(found))


def fts_table(entity: str) -> str:
    return f"f_{entity}"


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


def search_index_triggers(entity: str) -> list[str]:
    """The triggers that keep an entity's full-text index in step with its `search`
    column (dropped while a snapshot streams in, then the index is rebuilt in one go)."""
    name, fts = table(entity), fts_table(entity)
    add = f"INSERT INTO {fts} (rowid, search) VALUES (new.rowid, new.search)"
    drop = f"INSERT INTO {fts} ({fts}, rowid, search) VALUES ('delete', old.rowid, old.search)"
    return [
        f"CREATE TRIGGER IF NOT EXISTS {name}_fts_ai AFTER INSERT ON {name} BEGIN {add}; END",
        f"CREATE TRIGGER IF NOT EXISTS {name}_fts_ad AFTER DELETE ON {name} BEGIN {drop}; END",
        f"CREATE TRIGGER IF NOT EXISTS {name}_fts_au AFTER UPDATE OF search ON {name} "
        f"WHEN old.search IS NOT new.search BEGIN {drop}; {add}; END",
    ]


def suspend_search_index(db: sqlite3.Connection, entity: str) -> None:
    name = table(entity)
    for suffix in ("ai", "ad", "au"):
        db.execute(f"DROP TRIGGER IF EXISTS {name}_fts_{suffix}")


def rebuild_search_index(db: sqlite3.Connection, entity: str) -> None:
    """Index every row again (~5 us a row, against ~30 us through the triggers) and put
    the triggers back."""
    name, fts = table(entity), fts_table(entity)
    db.execute(f"INSERT INTO {fts} ({fts}) VALUES ('delete-all')")
    db.execute(f"INSERT INTO {fts} (rowid, search) SELECT rowid, search FROM {name}")
    for statement in search_index_triggers(entity):
        db.execute(statement)


def _word_index_v3(db: sqlite3.Connection) -> None:
    """A search that matched few rows read the whole wide table (`search LIKE '%w%'`, 1.6 s
    at 1M rows).  The `search` column now holds each record's words in indexed form, and a
    contentless FTS5 table indexes them, kept in step by triggers (rowid = the row's rowid;
    the replica is never VACUUMed, which could renumber rowids).  FTS5 rather than a
    (word, id) B-tree: that cost ~90 us per row written, FTS5 ~30 us."""
    for entity in RECORD_ENTITIES:
        name, fts = table(entity), fts_table(entity)
        db.execute(
            f"CREATE VIRTUAL TABLE {fts} USING fts5(search, content='', detail=none, "
            "columnsize=0, tokenize=\"unicode61 remove_diacritics 0 tokenchars '_'\")"
        )
        rows = db.execute(f"SELECT id, coalesce(data, base) FROM {name}").fetchall()
        db.executemany(
            f"UPDATE {name} SET search = ? WHERE id = ?",
            ((search_words(entity, orjson.loads(data)), rid) for rid, data in rows),
        )
        rebuild_search_index(db, entity)


def _care_v4(db: sqlite3.Connection) -> None:
    """C.A.R.E. states and audit entries, replicated read-only to administrators and
    managers (`aisha_desktop.replica.care` reads and writes them).  Narrow tables, and
    rollups kept by triggers - entries per day and event type, escalations per day and
    trigger type, states by current state - so the dashboard reads a few hundred small rows
    however many entries the replica holds.  Audit entries never change once written:
    only inserts and deletes (the replica's own retention pruning) move the rollups."""
    statements = [
        """CREATE TABLE care_audit (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            event_type TEXT NOT NULL,
            entity_type TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            action_origin TEXT,
            reason TEXT,
            trigger_type TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            gen INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX ix_care_audit_created ON care_audit (created_at, id)",
        "CREATE INDEX ix_care_audit_event ON care_audit (event_type, created_at, id)",
        """CREATE TABLE care_audit_daily (
            day TEXT NOT NULL, event_type TEXT NOT NULL, n INTEGER NOT NULL,
            PRIMARY KEY (day, event_type)
        ) WITHOUT ROWID""",
        """CREATE TABLE care_audit_triggers (
            day TEXT NOT NULL, trigger_type TEXT NOT NULL, n INTEGER NOT NULL,
            PRIMARY KEY (day, trigger_type)
        ) WITHOUT ROWID""",
        """CREATE TRIGGER care_audit_ai AFTER INSERT ON care_audit BEGIN
            INSERT INTO care_audit_daily (day, event_type, n)
            VALUES (substr(new.created_at, 1, 10), new.event_type, 1)
            ON CONFLICT (day, event_type) DO UPDATE SET n = n + 1;
            INSERT INTO care_audit_triggers (day, trigger_type, n)
            SELECT substr(new.created_at, 1, 10), new.trigger_type, 1
            WHERE new.event_type = 'ESCALATION_DETECTED' AND new.trigger_type IS NOT NULL
            ON CONFLICT (day, trigger_type) DO UPDATE SET n = n + 1;
        END""",
        """CREATE TRIGGER care_audit_ad AFTER DELETE ON care_audit BEGIN
            UPDATE care_audit_daily SET n = n - 1
            WHERE day = substr(old.created_at, 1, 10) AND event_type = old.event_type;
            UPDATE care_audit_triggers SET n = n - 1
            WHERE old.event_type = 'ESCALATION_DETECTED'
              AND day = substr(old.created_at, 1, 10) AND trigger_type = old.trigger_type;
        END""",
        """CREATE TABLE care_state (
            id TEXT PRIMARY KEY,
            entity_type TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            current_state TEXT NOT NULL,
            previous_state TEXT,
            transitioned_at TEXT,
            transition_reason TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            gen INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE care_state_counts (
            state TEXT PRIMARY KEY, n INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TRIGGER care_state_ai AFTER INSERT ON care_state BEGIN
            INSERT INTO care_state_counts (state, n) VALUES (new.current_state, 1)
            ON CONFLICT (state) DO UPDATE SET n = n + 1;
        END""",
        """CREATE TRIGGER care_state_ad AFTER DELETE ON care_state BEGIN
            UPDATE care_state_counts SET n = n - 1 WHERE state = old.current_state;
        END""",
        """CREATE TRIGGER care_state_au AFTER UPDATE OF current_state ON care_state
        WHEN old.current_state IS NOT new.current_state BEGIN
            UPDATE care_state_counts SET n = n - 1 WHERE state = old.current_state;
            INSERT INTO care_state_counts (state, n) VALUES (new.current_state, 1)
            ON CONFLICT (state) DO UPDATE SET n = n + 1;
        END""",
    ]
    for statement in statements:
        db.execute(statement)


# MIGRATIONS[n] brings a file from user_version n to n + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _create_v1,
    _hidden_index_v2,
    _word_index_v3,
    _care_v4,
]
assert len(MIGRATIONS) == SCHEMA_VERSION
