"""`Replica`: the desktop's local copy of what one user may see on one server's tenant, with
the durable outbox of edits not yet pushed.  Qt-free, synchronous, every call short and one
transaction; the sync engine runs them off the event loop.

Rows.  Each record row keeps the server's row (`base`, `version`) and the row views show
(`data`: base overlaid with the outbox's pending edits), plus indexed columns derived from
`data` for sorting, filtering and searching.  A row created here has no base until the
server applied it; a row deleted here is `hidden` until the server confirms.

Outbox.  Local edits write the shown row and the outbox entry in one transaction.  An edit
folds into the record's last entry while that entry was never sent and no create was queued
after it (a later create may be what the edit refers to): into a create it merges fields, into
an update it merges fields per field and keeps the entry's ORIGINAL base_version.  An entry a
push has carried is never changed again, since a retry must send the same mutation.

Pull.  `apply_page` applies a page's rows and its cursor in one transaction, and only if the
replica is still at the cursor the page was asked from.  A snapshot stamps the rows it sends
with a new generation; when it finishes, rows it did not send are swept.  So
`reset_for_resync` only forgets the cursor: views keep showing the old rows until the new
snapshot replaced them, and the outbox is untouched.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from aisha_desktop.client.models import Change, ChangesPage, PushResult, SyncConflict
from aisha_desktop.replica import care
from aisha_desktop.replica.schema import (
    CARE_ENTITIES,
    MIGRATIONS,
    RECORD_ENTITIES,
    SCHEMA_VERSION,
    SETTINGS_ENTITIES,
    columns,
    fts_table,
    query_words,
    rebuild_search_index,
    search_words,
    suspend_search_index,
    table,
)

CUSTOM_FIELDS = "custom_fields"
# Search plans (see `Replica._search`): rows checked walking the sort order before the
# full-text index is asked, and the matches below which that index drives the query.
_PROBE_ROWS = 4000
_FTS_DRIVES = 2000
_SHOWN = "id, version, coalesce(data, base) AS data, pending"
# meta key: present while the full-text index waits for a snapshot to complete
SEARCH_INDEX = "search_index"
NOT_SYNCED = frozenset({"id", "tenant_id", "version", "created_at", "updated_at", "deleted_at"})


class ReplicaError(Exception):
    """The replica file cannot be used (made by a newer version, or damaged)."""


class RecordMissing(LookupError):
    """The record is not in the replica (or is deleted there)."""


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> str:
    return orjson.dumps(value, default=_json_default).decode()


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _plain(value: Any) -> Any:
    """A value as it will look after a JSON round trip (to compare with stored ones)."""
    return orjson.loads(dumps(value))


def replica_path(data_dir: Path, server_url: str, tenant_id: str, user_id: str) -> Path:
    """The file of one (server, tenant, user): named from a hash, so no name needs escaping
    and nothing of the URL shows in a directory listing."""
    key = "\n".join((server_url.rstrip("/").lower(), str(tenant_id), str(user_id)))
    return Path(data_dir) / f"replica-{hashlib.sha256(key.encode()).hexdigest()[:32]}.sqlite3"


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    entity: str
    id: str
    version: int | None  # the server version the row is based on (None: created here)
    data: dict[str, Any]
    pending: bool  # local edits not yet confirmed by the server


@dataclass(frozen=True, slots=True)
class QueryPage:
    rows: list[ReplicaRow]
    # keyset of the last row: pass as `after` for the next page (None: no more rows)
    next_after: tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    seq: int
    mutation_id: str
    entity: str
    record_id: str
    op: str
    base_version: int | None
    fields: dict[str, Any]
    created_at: str
    attempts: int
    sent: bool
    last_error: str | None

    def mutation(self) -> dict[str, Any]:
        """The entry as the server's push takes it."""
        return {
            "mutation_id": self.mutation_id,
            "entity_type": self.entity,
            "id": self.record_id,
            "op": self.op,
            "base_version": self.base_version,
            "fields": self.fields,
        }


@dataclass(frozen=True, slots=True)
class StoredConflict:
    id: str
    entity: str
    record_id: str
    field: str
    server_value: Any
    client_value: Any
    base_version: int | None
    server_version: int | None
    server_changed_by: str | None
    server_changed_at: str | None
    mutation_id: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class Rejection:
    mutation_id: str
    entity: str
    record_id: str
    op: str
    fields: dict[str, Any]
    code: str
    message: str
    details: Any
    created_at: str


def merge_fields(into: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` over `into`; custom fields merge per key (as the server merges them)."""
    out = dict(into)
    for name, value in fields.items():
        if name == CUSTOM_FIELDS and isinstance(value, Mapping):
            current = out.get(CUSTOM_FIELDS)
            out[CUSTOM_FIELDS] = {**(current if isinstance(current, Mapping) else {}), **value}
        else:
            out[name] = value
    return out


def overlay(
    record_id: str,
    base: Mapping[str, Any] | None,
    entries: Iterable[OutboxEntry],
    defaults: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any] | None, bool]:
    """The row views show and whether it is hidden: `base` with the pending edits applied
    (`defaults`: what the server will fill in on a create, shown until it did)."""
    shown = dict(base) if base is not None else None
    hidden = False
    for entry in entries:
        if entry.op == "create":
            start = shown or {"created_at": entry.created_at, **(defaults or {})}
            shown = merge_fields(start, entry.fields)
            shown["id"] = record_id
        elif entry.op == "update" and shown is not None:
            shown = merge_fields(shown, entry.fields)
        elif entry.op == "delete":
            hidden = True
        if shown is not None and str(shown.get("updated_at") or "") < entry.created_at:
            shown["updated_at"] = entry.created_at
    return shown, hidden


def _column_value(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else dumps(value).strip('"')


def _entry(row: sqlite3.Row) -> OutboxEntry:
    return OutboxEntry(
        seq=row["seq"],
        mutation_id=row["mutation_id"],
        entity=row["entity"],
        record_id=row["record_id"],
        op=row["op"],
        base_version=row["base_version"],
        fields=orjson.loads(row["fields"]),
        created_at=row["created_at"],
        attempts=row["attempts"],
        sent=bool(row["sent"]),
        last_error=row["last_error"],
    )


MAX_READERS = 4  # reader connections a replica opens at most (GUI thread and workers)


class Replica:
    """One replica file.  Thread-safe: one writer connection behind a lock, and a few reader
    connections lent one per read (WAL lets them read while a page is written): a page the
    GUI thread reads does not wait behind a slow read a worker has under way."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._readers_free = threading.Condition()
        self._idle: list[sqlite3.Connection] = []  # readers not lent out
        self._lent = 0
        self._durable = True
        self._db = self._connect()
        try:
            self._migrate()
            self._idle.append(self._connect())
        except BaseException:
            self._db.close()
            raise
        self._closed = False
        # the C.A.R.E. audit log's own reader: a long text search (a full scan) must not hold
        # up the other views' reads, and a newer search interrupts it (opened on first use)
        self._audit_reader: sqlite3.Connection | None = None
        self._audit_lock = threading.Lock()
        self._upserts: dict[tuple[str, bool], str] = {}
        with self._read() as db:
            owner = self._meta(db, "user_id")
        # the server makes the creating user a new record's owner: so do the shown rows
        self._create_defaults = {"owner_id": owner} if owner else {}

    @classmethod
    def open(cls, data_dir: Path | str, server_url: str, tenant_id: str, user_id: str) -> Replica:
        replica = cls(replica_path(Path(data_dir), server_url, tenant_id, user_id))
        with replica._write() as db:
            for key, value in (("server_url", server_url), ("tenant_id", str(tenant_id)),
                               ("user_id", str(user_id))):  # fmt: skip
                db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
        replica._create_defaults = {"owner_id": str(user_id)}
        return replica

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout = 10000")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            db.close()
            raise ReplicaError(f"{self.path}: cannot use write-ahead logging ({mode})")
        # the outbox holds edits that exist nowhere else: a commit survives a power cut
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA cache_size = -65536")  # 64 MiB: a snapshot touches every index
        # reads map the file (the OS page cache) instead of copying pages into SQLite's
        # cache: a fresh connection reads a warm file as fast as an old one
        db.execute("PRAGMA mmap_size = 2147483648")
        # fewer checkpoints while a snapshot streams in (each one syncs the database file)
        db.execute("PRAGMA wal_autocheckpoint = 10000")
        db.execute("PRAGMA journal_size_limit = 67108864")
        db.execute("PRAGMA temp_store = MEMORY")
        return db

    def _migrate(self) -> None:
        with self._write() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise ReplicaError(
                    f"{self.path} was written by a newer AiSHA (schema {version}, "
                    f"this one knows {SCHEMA_VERSION})"
                )
            for step in MIGRATIONS[version:]:
                step(db)
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('client_id', ?)",
                (f"desk-{uuid.uuid4()}",),
            )

    def close(self) -> None:
        with self._lock, self._readers_free:
            if self._closed:
                return
            self._closed = True
            # reads under way finish first (their connections are closed as they come back)
            self._readers_free.wait_for(lambda: self._lent == 0)
            with self._audit_lock:
                if self._audit_reader is not None:
                    self._audit_reader.close()
            for reader in self._idle:
                reader.close()
            self._idle.clear()
            self._db.close()

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction.  `durable` ones (local edits, push results: facts that
        exist nowhere else) are synced to disk at commit; pulled pages need not be: a page
        lost to a power cut goes with its cursor, and is pulled again."""
        with self._lock:
            db = self._db
            if durable != self._durable:
                db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
                self._durable = durable
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        db = self._borrow()
        try:
            db.execute("BEGIN")  # one consistent view per call
            try:
                yield db
            finally:
                db.execute("COMMIT")
        finally:
            with self._readers_free:
                self._lent -= 1
                self._idle.append(db)
                self._readers_free.notify()

    def _borrow(self) -> sqlite3.Connection:
        with self._readers_free:
            while True:
                if self._closed:
                    raise ReplicaError(f"{self.path} is closed")
                if self._idle:
                    self._lent += 1
                    return self._idle.pop()
                if self._lent < MAX_READERS:
                    self._lent += 1
                    break
                self._readers_free.wait()
        try:
            return self._connect()  # outside the lock: opening takes a moment
        except BaseException:
            with self._readers_free:
                self._lent -= 1
                self._readers_free.notify()
            raise

    # -- meta --------------------------------------------------------------------------
    def _meta(self, db: sqlite3.Connection, key: str) -> str | None:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, db: sqlite3.Connection, key: str, value: str | None) -> None:
        if value is None:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    @property
    def client_id(self) -> str:
        """This replica's push identity, made once: retries after a restart must carry the
        same (client_id, mutation_id) for the server to recognise them."""
        with self._read() as db:
            value = self._meta(db, "client_id")
        assert value is not None
        return value

    @property
    def cursor(self) -> str | None:
        with self._read() as db:
            return self._meta(db, "cursor")

    @property
    def schema_version(self) -> int:
        with self._read() as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])

    # -- reading -------------------------------------------------------------------------
    def get(self, entity: str, record_id: str) -> ReplicaRow | None:
        with self._read() as db:
            row = db.execute(
                f"SELECT id, version, coalesce(data, base) AS data, pending FROM {table(entity)} "
                "WHERE id = ? AND hidden = 0",
                (str(record_id),),
            ).fetchone()
        return None if row is None else self._view(entity, row)

    def base(self, entity: str, record_id: str) -> dict[str, Any] | None:
        """The server's row as last pulled or pushed (None: not on the server yet)."""
        with self._read() as db:
            row = db.execute(
                f"SELECT base FROM {table(entity)} WHERE id = ?", (str(record_id),)
            ).fetchone()
        return None if row is None else _loads(row[0])

    @staticmethod
    def _view(entity: str, row: sqlite3.Row) -> ReplicaRow:
        return ReplicaRow(entity, row["id"], row["version"], orjson.loads(row["data"]),
                          bool(row["pending"]))  # fmt: skip

    def query(
        self,
        entity: str,
        *,
        sort: str = "-updated_at",
        filters: Mapping[str, Any] | None = None,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
        after: tuple[str, str] | None = None,
    ) -> QueryPage:
        """A page of shown rows.  `sort` is an indexed column, `-` for descending (ties by
        id); `filters` are equalities on indexed columns (None: empty; a list: any of);
        `search` matches rows where every typed word starts one of the record's words; page by `offset` or, cheaper, by the
        previous page's `next_after`."""
        name = table(entity)
        allowed = columns(entity)
        descending = sort.startswith("-")
        column = sort.lstrip("-")
        if column not in allowed:
            raise ValueError(f"cannot sort {entity} by {column!r}: one of {list(allowed)}")
        if limit < 1 or offset < 0:
            raise ValueError("limit must be positive and offset not negative")
        # `+hidden`: never the narrow hidden index (made for counting), which would read
        # every row and sort them instead of walking the sort index
        where, params = ["+hidden = 0"], list[Any]()
        for key, value in (filters or {}).items():
            if key not in allowed:
                raise ValueError(f"cannot filter {entity} by {key!r}: one of {list(allowed)}")
            if isinstance(value, list | tuple | set | frozenset):
                values = [_column_value(v) for v in value]
                if not values:
                    where.append("0")
                    continue
                where.append(f"{key} IN ({', '.join('?' * len(values))})")
                params += values
            else:
                where.append(f"{key} = ?")
                params.append(_column_value(value))
        if after is not None:
            where.append(f"({column}, id) {'<' if descending else '>'} (?, ?)")
            params += [after[0], after[1]]
        direction = "DESC" if descending else "ASC"
        order = f"ORDER BY {column} {direction}, id {direction}"
        words = query_words(search or "")
        with self._read() as db:
            if not words:
                sql = (
                    f"SELECT {_SHOWN}, {column} AS sort_key FROM {name} "
                    f"WHERE {' AND '.join(where)} {order} LIMIT ? OFFSET ?"
                )
                rows = db.execute(sql, (*params, limit + 1, offset)).fetchall()
            else:
                rows = self._search(
                    db, entity, words, (where, params), column, direction, limit, offset
                )
        more = len(rows) > limit
        rows = rows[:limit]
        next_after = (rows[-1]["sort_key"], rows[-1]["id"]) if more and rows else None
        return QueryPage([self._view(entity, r) for r in rows], next_after)

    def _search(
        self,
        db: sqlite3.Connection,
        entity: str,
        words: list[str],
        conditions: tuple[list[str], list[Any]],
        column: str,
        direction: str,
        limit: int,
        offset: int,
    ) -> list[sqlite3.Row]:
        """The rows (limit + 1) where every word starts a word of the record, by `column`.

        Common words first: walking the sort index, the first `_PROBE_ROWS` rows checked
        (their `search` column) usually hold a page of matches.  Failing that, the words are
        rarer: with fewer than `_FTS_DRIVES` matches they are read through the full-text
        index and sorted; with more, the sort index is walked again checking each entry's
        rowid against the full-text matches, which needs no table row until one matches."""
        name, fts = table(entity), fts_table(entity)
        where, params = " AND ".join(conditions[0]), conditions[1]
        order = f"ORDER BY {column} {direction}, id {direction}"
        if offset == 0:
            checks = " AND ".join("instr(search, ?) > 0" for _ in words)
            probe = (
                f"SELECT * FROM (SELECT {_SHOWN}, {column} AS sort_key, search FROM {name} "
                f"WHERE {where} {order} LIMIT {_PROBE_ROWS}) "
                f"WHERE {checks} ORDER BY sort_key {direction}, id {direction} LIMIT ?"
            )
            found = db.execute(probe, (*params, *(" " + w for w in words), limit + 1))
            rows = found.fetchall()
            if len(rows) > limit:
                return rows
        if self._meta(db, SEARCH_INDEX) is not None:  # a first snapshot streams in
            checks = " AND ".join("instr(search, ?) > 0" for _ in words)
            sql = (
                f"SELECT {_SHOWN}, {column} AS sort_key FROM {name} WHERE {where} AND {checks} "
                f"{order} LIMIT ? OFFSET ?"
            )
            spaced = [" " + w for w in words]
            return db.execute(sql, (*params, *spaced, limit + 1, offset)).fetchall()
        match = " AND ".join(f'"{w}" *' for w in words)
        if self._matches(db, entity, match) < _FTS_DRIVES:
            sql = (
                f"SELECT {_SHOWN}, {column} AS sort_key FROM (SELECT rowid AS match_rowid "
                f"FROM {fts} WHERE {fts} MATCH ?) CROSS JOIN {name} "
                f"ON {name}.rowid = match_rowid WHERE {where} {order} LIMIT ? OFFSET ?"
            )
            return db.execute(sql, (match, *params, limit + 1, offset)).fetchall()
        sql = (
            f"SELECT {_SHOWN}, {column} AS sort_key FROM {name} WHERE {where} AND "
            f"{name}.rowid IN (SELECT rowid FROM {fts} WHERE {fts} MATCH ?) "
            f"{order} LIMIT ? OFFSET ?"
        )
        return db.execute(sql, (*params, match, limit + 1, offset)).fetchall()

    @staticmethod
    def _matches(db: sqlite3.Connection, entity: str, match: str) -> int:
        """How many rows the full-text query `match` finds, counted up to `_FTS_DRIVES`."""
        fts = fts_table(entity)
        row = db.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {fts} WHERE {fts} MATCH ? LIMIT ?)",
            (match, _FTS_DRIVES),
        ).fetchone()
        return int(row[0])

    def count(self, entity: str) -> int:
        with self._read() as db:
            row = db.execute(f"SELECT count(*) FROM {table(entity)} WHERE hidden = 0").fetchone()
        return int(row[0])

    def settings(self, entity: str) -> list[dict[str, Any]]:
        """The replicated rows of a settings entity (custom_fields, entity_labels, ...)."""
        if entity not in SETTINGS_ENTITIES:
            raise ValueError(f"not a settings entity: {entity!r}")
        with self._read() as db:
            rows = db.execute(
                "SELECT data FROM settings_rows WHERE entity = ? ORDER BY id", (entity,)
            ).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def pending_count(self) -> int:
        with self._read() as db:
            return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def outbox(self) -> list[OutboxEntry]:
        with self._read() as db:
            return [_entry(r) for r in db.execute("SELECT * FROM outbox ORDER BY seq")]

    def conflicts(self) -> list[StoredConflict]:
        with self._read() as db:
            rows = db.execute("SELECT * FROM conflicts ORDER BY created_at, id").fetchall()
        return [
            StoredConflict(
                id=r["id"],
                entity=r["entity"],
                record_id=r["record_id"],
                field=r["field"],
                server_value=_loads(r["server_value"]),
                client_value=_loads(r["client_value"]),
                base_version=r["base_version"],
                server_version=r["server_version"],
                server_changed_by=r["server_changed_by"],
                server_changed_at=r["server_changed_at"],
                mutation_id=r["mutation_id"],
                created_at=r["created_at"],
            )
            for r in rows
        ]

    def conflict_count(self) -> int:
        with self._read() as db:
            return int(db.execute("SELECT count(*) FROM conflicts").fetchone()[0])

    def rejections(self) -> list[Rejection]:
        with self._read() as db:
            rows = db.execute("SELECT * FROM rejections ORDER BY created_at").fetchall()
        return [
            Rejection(
                mutation_id=r["mutation_id"],
                entity=r["entity"],
                record_id=r["record_id"],
                op=r["op"],
                fields=orjson.loads(r["fields"]),
                code=r["code"],
                message=r["message"],
                details=_loads(r["details"]),
                created_at=r["created_at"],
            )
            for r in rows
        ]

    def rejection_count(self) -> int:
        with self._read() as db:
            return int(db.execute("SELECT count(*) FROM rejections").fetchone()[0])

    def dismiss_rejection(self, mutation_id: str) -> bool:
        with self._write() as db:
            cur = db.execute("DELETE FROM rejections WHERE mutation_id = ?", (mutation_id,))
            return cur.rowcount > 0

    # -- rows ----------------------------------------------------------------------------
    def _entries(self, db: sqlite3.Connection, entity: str, record_id: str) -> list[OutboxEntry]:
        rows = db.execute(
            "SELECT * FROM outbox WHERE entity = ? AND record_id = ? ORDER BY seq",
            (entity, record_id),
        )
        return [_entry(r) for r in rows]

    def _upsert_sql(self, entity: str, guarded: bool) -> str:
        key = (entity, guarded)
        sql = self._upserts.get(key)
        if sql is None:
            name = table(entity)
            names = ("id", "version", "base", "data", "pending", "hidden", "gen",
                     *columns(entity), "search")  # fmt: skip
            updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
            # a log page never takes a row back to an older version than a push result left
            guard = (
                f" WHERE {name}.version IS NULL OR excluded.version IS NULL"
                f" OR excluded.version >= {name}.version"
                if guarded
                else ""
            )
            sql = (
                f"INSERT INTO {name} ({', '.join(names)}) "
                f"VALUES ({', '.join('?' * len(names))}) "
                f"ON CONFLICT (id) DO UPDATE SET {updates}{guard}"
            )
            self._upserts[key] = sql
        return sql

    @staticmethod
    def _values(
        entity: str,
        record_id: str,
        version: int | None,
        base: Mapping[str, Any] | None,
        shown: Mapping[str, Any],
        pending: bool,
        hidden: bool,
        gen: int,
    ) -> tuple[Any, ...]:
        base_text = None if base is None else dumps(base)
        # `data` only when it differs from the base: most rows are stored once
        shown_text = None if shown is base else dumps(shown)
        return (
            record_id,
            version,
            base_text,
            shown_text if shown_text != base_text else None,
            int(pending),
            int(hidden),
            gen,
            *(_column_value(shown.get(c)) for c in columns(entity)),
            search_words(entity, shown),
        )

    def _store(
        self,
        db: sqlite3.Connection,
        entity: str,
        record_id: str,
        base: Mapping[str, Any] | None,
        version: int | None,
        gen: int | None = None,
    ) -> dict[str, Any] | None:
        """Write a record row from its base and its outbox entries; None when nothing is
        left to show (the row is removed unless a pending delete keeps it hidden)."""
        entries = self._entries(db, entity, record_id)
        shown, hidden = overlay(record_id, base, entries, self._create_defaults)
        name = table(entity)
        if shown is None or (hidden and base is None):
            db.execute(f"DELETE FROM {name} WHERE id = ?", (record_id,))
            return None
        if gen is None:
            row = db.execute(f"SELECT gen FROM {name} WHERE id = ?", (record_id,)).fetchone()
            gen = int(row[0]) if row is not None else self._gen(db)
        values = self._values(entity, record_id, version, base, shown, bool(entries), hidden, gen)
        db.execute(self._upsert_sql(entity, guarded=False), values)
        return None if hidden else shown

    def _current(
        self, db: sqlite3.Connection, entity: str, record_id: str
    ) -> tuple[dict[str, Any] | None, int | None, dict[str, Any], bool] | None:
        row = db.execute(
            f"SELECT base, version, coalesce(data, base) AS data, hidden FROM {table(entity)} "
            "WHERE id = ?",
            (record_id,),
        ).fetchone()
        if row is None:
            return None
        return _loads(row["base"]), row["version"], orjson.loads(row["data"]), bool(row["hidden"])

    def _gen(self, db: sqlite3.Connection) -> int:
        return int(self._meta(db, "gen") or 0)

    # -- local edits ---------------------------------------------------------------------
    @staticmethod
    def _check_fields(entity: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        if entity not in RECORD_ENTITIES:
            raise ValueError(f"{entity!r} cannot be edited offline")
        if not isinstance(fields, Mapping):
            raise TypeError("fields must be a mapping")
        refused = sorted(set(fields) & NOT_SYNCED)
        if refused:
            raise ValueError(f"not editable: {', '.join(refused)}")
        return dict(_plain(dict(fields)))

    def _append(
        self,
        db: sqlite3.Connection,
        entity: str,
        record_id: str,
        op: str,
        base_version: int | None,
        fields: Mapping[str, Any],
    ) -> None:
        db.execute(
            "INSERT INTO outbox (mutation_id, entity, record_id, op, base_version, fields, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (str(uuid.uuid4()), entity, record_id, op, base_version, dumps(fields), _now()),
        )

    def local_create(
        self, entity: str, fields: Mapping[str, Any], record_id: str | None = None
    ) -> dict[str, Any]:
        """A new record (client-made id), shown at once and queued for the server."""
        values = self._check_fields(entity, fields)
        record_id = str(uuid.UUID(str(record_id))) if record_id else str(uuid.uuid4())
        with self._write() as db:
            if self._current(db, entity, record_id) is not None:
                raise ValueError(f"{entity} {record_id} exists already")
            self._append(db, entity, record_id, "create", None, values)
            shown = self._store(db, entity, record_id, None, None)
        assert shown is not None
        return shown

    def local_update(
        self, entity: str, record_id: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Change fields of a shown record; returns the row as shown now.  Fields that
        already hold the given values are left out (no outbox entry when none is left)."""
        values = self._check_fields(entity, fields)
        with self._write() as db:
            return self._update_in(db, entity, str(record_id), values)[0]

    def local_update_many(
        self, entity: str, record_ids: Sequence[str], fields: Mapping[str, Any]
    ) -> int:
        """The same change to several shown records, in one transaction (all or none: a
        record missing from the replica refuses the whole change); returns how many records
        it changed (those already holding the values are left alone)."""
        values = self._check_fields(entity, fields)
        changed = 0
        with self._write() as db:
            for record_id in dict.fromkeys(str(r) for r in record_ids):
                changed += self._update_in(db, entity, record_id, values)[1]
        return changed

    def _update_in(
        self, db: sqlite3.Connection, entity: str, record_id: str, values: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """The row as shown after the change, and whether anything changed."""
        current = self._current(db, entity, record_id)
        if current is None or current[3]:
            raise RecordMissing(f"{entity} {record_id} is not in the replica")
        base, version, shown, _ = current
        changes: dict[str, Any] = {}
        for name, value in values.items():
            if name == CUSTOM_FIELDS and isinstance(value, dict):
                held = shown.get(CUSTOM_FIELDS) or {}
                changed = {k: v for k, v in value.items() if held.get(k) != v}
                if changed:
                    changes[name] = changed
            elif shown.get(name) != value:
                changes[name] = value
        if not changes:
            return dict(shown), False
        entries = self._entries(db, entity, record_id)
        last = entries[-1] if entries else None
        if last is not None and self._foldable(db, last):
            db.execute(
                "UPDATE outbox SET fields = ? WHERE seq = ?",
                (dumps(merge_fields(last.fields, changes)), last.seq),
            )
        else:
            self._append(db, entity, record_id, "update", version, changes)
        stored = self._store(db, entity, record_id, base, version)
        assert stored is not None
        return stored, True

    @staticmethod
    def _foldable(db: sqlite3.Connection, entry: OutboxEntry) -> bool:
        if entry.sent or entry.op == "delete":
            return False
        later_create = db.execute(
            "SELECT 1 FROM outbox WHERE seq > ? AND op = 'create' LIMIT 1", (entry.seq,)
        ).fetchone()
        return later_create is None

    def local_delete(self, entity: str, record_id: str) -> None:
        """Delete a shown record: hidden at once, removed when the server confirms.  A
        record never pushed simply goes, with its queued entries."""
        self.local_delete_many(entity, [record_id])

    def local_delete_many(self, entity: str, record_ids: Sequence[str]) -> int:
        """Delete several shown records in one transaction (all or none: a record missing
        from the replica refuses them all); returns how many."""
        if entity not in RECORD_ENTITIES:
            raise ValueError(f"{entity!r} cannot be edited offline")
        ids = list(dict.fromkeys(str(r) for r in record_ids))
        with self._write() as db:
            for record_id in ids:
                self._delete_in(db, entity, record_id)
        return len(ids)

    def _delete_in(self, db: sqlite3.Connection, entity: str, record_id: str) -> None:
        current = self._current(db, entity, record_id)
        if current is None or current[3]:
            raise RecordMissing(f"{entity} {record_id} is not in the replica")
        base, version, _, _ = current
        entries = self._entries(db, entity, record_id)
        never_sent = any(e.op == "create" and not e.sent for e in entries)
        # unsent edits of a record about to be deleted need not travel; a record whose
        # create never left needs nothing at all
        db.execute(
            "DELETE FROM outbox WHERE entity = ? AND record_id = ? AND sent = 0",
            (entity, record_id),
        )
        if not never_sent:
            self._append(db, entity, record_id, "delete", version, {})
        self._store(db, entity, record_id, base, version)

    # -- pull ----------------------------------------------------------------------------
    def apply_page(self, page: ChangesPage, since: str | None) -> set[str]:
        """Apply one pulled page and its cursor in one transaction; returns the entities it
        touched.  Ignored (empty set) unless the replica is still at `since`, the cursor the
        page was asked from."""
        touched: set[str] = set()
        with self._write(durable=False) as db:
            if self._meta(db, "cursor") != since:
                return touched
            gen = self._gen(db)
            if page.snapshot and since is None:
                gen += 1  # a new snapshot: what it does not send again goes at its end
                # the full-text index is rebuilt once the snapshot is complete (in one go: six
                # times cheaper than through the triggers); searches scan meanwhile
                if self._meta(db, SEARCH_INDEX) is None:
                    for entity in RECORD_ENTITIES:
                        suspend_search_index(db, entity)
                    self._set_meta(db, SEARCH_INDEX, "rebuild")
                self._set_meta(db, "gen", str(gen))
            pending: dict[str, set[str]] = {}
            for entity, record_id in db.execute("SELECT DISTINCT entity, record_id FROM outbox"):
                pending.setdefault(entity, set()).add(record_id)
            fast: dict[str, list[tuple[Any, ...]]] = {}
            care_rows: list[Change] = []
            for change in page.changes:
                entity, record_id = change.entity_type, change.id
                if entity in CARE_ENTITIES:
                    touched.add(entity)
                    care_rows.append(change)
                    continue
                if entity in SETTINGS_ENTITIES:
                    touched.add(entity)
                    if change.op == "delete":
                        db.execute(
                            "DELETE FROM settings_rows WHERE entity = ? AND id = ?",
                            (entity, record_id),
                        )
                    else:
                        db.execute(
                            "INSERT INTO settings_rows (entity, id, version, data, gen) "
                            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (entity, id) DO UPDATE SET "
                            "version = excluded.version, data = excluded.data, "
                            "gen = excluded.gen",
                            (entity, record_id, change.version, dumps(change.data), gen),
                        )
                    continue
                if entity not in RECORD_ENTITIES:
                    continue  # an entity this version does not know
                touched.add(entity)
                if record_id in pending.get(entity, ()):
                    self._pull_pending(db, entity, record_id, change, page.snapshot, gen)
                elif change.op == "delete":
                    db.execute(
                        f"DELETE FROM {table(entity)} WHERE id = ? AND (? IS NULL "
                        "OR version IS NULL OR version <= ?)",
                        (record_id, change.version, change.version),
                    )
                else:
                    assert change.data is not None
                    fast.setdefault(entity, []).append(
                        self._values(
                            entity,
                            record_id,
                            change.version,
                            change.data,
                            change.data,
                            False,
                            False,
                            gen,
                        )
                    )
            for entity, rows in fast.items():
                db.executemany(self._upsert_sql(entity, guarded=not page.snapshot), rows)
            if care_rows:
                care.apply_changes(db, care_rows, gen)
            if page.snapshot and not page.has_more:
                self._sweep(db, gen)
                if self._meta(db, SEARCH_INDEX) is not None:
                    for entity in RECORD_ENTITIES:
                        rebuild_search_index(db, entity)
                    self._set_meta(db, SEARCH_INDEX, None)
            self._set_meta(db, "cursor", page.cursor)
        return touched

    def _pull_pending(
        self,
        db: sqlite3.Connection,
        entity: str,
        record_id: str,
        change: Change,
        snapshot: bool,
        gen: int,
    ) -> None:
        current = self._current(db, entity, record_id)
        held = current[1] if current is not None else None
        if (
            not snapshot
            and held is not None
            and change.version is not None
            and change.version < held
        ):
            return  # older than what a push result already gave us
        if change.op == "delete":
            self._store(db, entity, record_id, None, None, gen)
        else:
            self._store(db, entity, record_id, change.data, change.version, gen)

    def _sweep(self, db: sqlite3.Connection, gen: int) -> None:
        """The snapshot of generation `gen` is complete: server rows it did not send are
        gone (or out of scope); rows with pending edits keep only those edits."""
        db.execute("DELETE FROM settings_rows WHERE gen < ?", (gen,))
        care.sweep(db, gen)
        for entity in RECORD_ENTITIES:
            name = table(entity)
            db.execute(f"DELETE FROM {name} WHERE gen < ? AND pending = 0", (gen,))
            stale = db.execute(
                f"SELECT id FROM {name} WHERE gen < ? AND base IS NOT NULL", (gen,)
            ).fetchall()
            for (record_id,) in stale:
                self._store(db, entity, record_id, None, None, gen)

    def reset_for_resync(self) -> None:
        """Forget the cursor: the next pull starts a snapshot.  Rows stay visible until the
        snapshot replaced them; the outbox, conflicts and rejections are kept."""
        with self._write() as db:
            self._set_meta(db, "cursor", None)

    # -- push ----------------------------------------------------------------------------
    def next_batch(self, limit: int) -> list[OutboxEntry]:
        """The oldest entries to push, marked sent (never folded into again).  A batch holds
        one entry per record: the next edit of a record is based on the previous result."""
        with self._write() as db:
            rows = db.execute("SELECT * FROM outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()
            batch: list[OutboxEntry] = []
            seen: set[tuple[str, str]] = set()
            for row in rows:
                entry = _entry(row)
                key = (entry.entity, entry.record_id)
                if key in seen:
                    break
                seen.add(key)
                batch.append(replace(entry, sent=True, attempts=entry.attempts + 1))
            db.executemany(
                "UPDATE outbox SET sent = 1, attempts = attempts + 1 WHERE seq = ?",
                [(e.seq,) for e in batch],
            )
        return batch

    def mark_failed(self, batch: Sequence[OutboxEntry], error: str) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE outbox SET last_error = ? WHERE seq = ?", [(error, e.seq) for e in batch]
            )

    def apply_results(
        self, batch: Sequence[OutboxEntry], results: Sequence[PushResult]
    ) -> set[str]:
        """Settle pushed entries with the server's results in one transaction; returns the
        entities touched.  applied: the server row becomes the base; conflict: the same,
        and the conflicts are kept to be listed; rejected: the rejection is kept and the
        shown row falls back to the base (a rejected create takes its later edits along)."""
        by_id = {e.mutation_id: e for e in batch}
        touched: set[str] = set()
        with self._write() as db:
            for result in results:
                entry = by_id.get(result.mutation_id)
                if entry is None:
                    continue
                exists = db.execute("DELETE FROM outbox WHERE seq = ?", (entry.seq,)).rowcount
                if not exists:
                    continue  # settled already (a concurrent apply of the same results)
                if entry.entity not in RECORD_ENTITIES:  # no row here to settle
                    if result.status == "rejected":
                        self._reject(db, entry, result)
                    continue
                touched.add(entry.entity)
                current = self._current(db, entry.entity, entry.record_id)
                base, version = (current[0], current[1]) if current is not None else (None, None)
                if result.status == "rejected":
                    self._reject(db, entry, result)
                    if entry.op == "create":
                        for later in self._entries(db, entry.entity, entry.record_id):
                            db.execute("DELETE FROM outbox WHERE seq = ?", (later.seq,))
                            self._reject(db, later, result, code="create_rejected")
                    self._store(db, entry.entity, entry.record_id, base, version)
                    continue
                for conflict in result.conflicts:
                    self._keep_conflict(db, conflict)
                record = result.record
                if record is not None and (version is None or (result.version or 0) >= version):
                    if record.get("deleted_at") is not None:
                        base, version = None, None
                    else:
                        base, version = record, result.version
                if result.status == "applied" and result.version is not None:
                    # later edits were made on top of this one: base them on its result
                    # when nobody else wrote in between (else their base stays, and the
                    # server merges them against everything since)
                    if entry.op == "create":
                        db.execute(
                            "UPDATE outbox SET base_version = ? WHERE entity = ? "
                            "AND record_id = ? AND op = 'update' AND base_version IS NULL",
                            (result.version, entry.entity, entry.record_id),
                        )
                    elif entry.base_version is not None and (
                        result.version == entry.base_version + 1
                    ):
                        db.execute(
                            "UPDATE outbox SET base_version = ? WHERE entity = ? "
                            "AND record_id = ? AND base_version = ?",
                            (result.version, entry.entity, entry.record_id, entry.base_version),
                        )
                self._store(db, entry.entity, entry.record_id, base, version)
        return touched

    def _reject(
        self,
        db: sqlite3.Connection,
        entry: OutboxEntry,
        result: PushResult,
        code: str | None = None,
    ) -> None:
        error = result.error
        message = (
            "Its record's creation was rejected"
            if code == "create_rejected"
            else (error.message if error is not None else "Rejected by the server")
        )
        db.execute(
            "INSERT OR REPLACE INTO rejections (mutation_id, entity, record_id, op, fields, "
            "code, message, details, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.mutation_id, entry.entity, entry.record_id, entry.op, dumps(entry.fields),
                code or (error.code if error is not None else "rejected"), message,
                None if error is None or error.details is None or code else dumps(error.details),
                _now(),
            ),
        )  # fmt: skip

    @staticmethod
    def _keep_conflict(db: sqlite3.Connection, c: SyncConflict) -> None:
        db.execute(
            "INSERT OR REPLACE INTO conflicts (id, entity, record_id, field, server_value, "
            "client_value, base_version, server_version, server_changed_by, "
            "server_changed_at, mutation_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, ?)",
            (
                c.id, c.entity_type, c.record_id, c.field, dumps(c.server_value),
                dumps(c.client_value), c.base_version, c.server_version, c.server_changed_by,
                c.server_changed_at.isoformat() if c.server_changed_at else None,
                c.mutation_id, (c.created_at.isoformat() if c.created_at else _now()),
            ),
        )  # fmt: skip

    def replace_conflicts(self, conflicts: Iterable[SyncConflict]) -> None:
        """The server's list of open conflicts replaces the local one (those resolved
        elsewhere go)."""
        with self._write() as db:
            db.execute("DELETE FROM conflicts")
            for conflict in conflicts:
                if conflict.resolved_at is None:
                    self._keep_conflict(db, conflict)

    def settle_conflict(self, resolved: SyncConflict) -> None:
        """A conflict was resolved: drop it and take the record the server answered with."""
        with self._write() as db:
            db.execute("DELETE FROM conflicts WHERE id = ?", (resolved.id,))
            record = resolved.record
            entity, record_id = resolved.entity_type, resolved.record_id
            if record is None or entity not in RECORD_ENTITIES:
                return
            current = self._current(db, entity, record_id)
            version = record.get("version")
            held = current[1] if current is not None else None
            newer = isinstance(version, int) and (held is None or version >= held)
            if newer and record.get("deleted_at") is None:
                self._store(db, entity, record_id, record, version)

    # -- C.A.R.E. (read-only rows; aisha_desktop.replica.care) ---------------------------------
    def care_summary(self, last_day: date, days: int = 30) -> care.CareSummary:
        """The C.A.R.E. dashboard's chart data for `days` ending `last_day` (rollups only)."""
        with self._read() as db:
            return care.summary(db, last_day, days)

    def care_audit(
        self, filters: care.AuditFilters, limit: int, after: care.AuditKey | None = None
    ) -> list[care.AuditEntry]:
        """A keyset page of the replicated C.A.R.E. audit log, newest first, on the audit's
        own reader.  Raises `sqlite3.OperationalError` if `care_interrupt` stopped it."""
        with self._audit_lock:
            if self._closed:
                raise ReplicaError(f"{self.path} is closed")
            if self._audit_reader is None:
                self._audit_reader = self._connect()
            db = self._audit_reader
            db.execute("BEGIN")
            try:
                return care.audit_page(db, filters, limit, after)
            finally:
                db.execute("COMMIT")

    def care_interrupt(self) -> None:
        """Stops the audit query running now, if any (callable from any thread)."""
        reader = self._audit_reader
        if reader is not None:
            reader.interrupt()

    def care_prune(self, before: datetime) -> int:
        """Drops replicated audit entries older than `before` (the server's retention)."""
        with self._write(durable=False) as db:
            return care.prune_audit(db, before)
