"""CSV import and export of CRM records, and bulk update / bulk delete (issue 3 item 9).

Import: the whole file is parsed and every row validated with the rules of the records API
(the pydantic create/patch models of `api.records`, custom fields through `validate_values`,
links that must exist in the tenant, opportunity stages, ownership rules, data scope), then
written in ONE transaction: new rows with one bulk `INSERT` per file, changed rows through
`RecordService._mutate`.  `on_error="rollback"` writes nothing when any row is bad (422 with
the bad rows); `on_error="skip"` writes the good rows and reports the bad ones.  `dry_run`
validates and reports without writing.

Bulk update / delete run in one transaction; every id is judged on its own (not found,
forbidden, invalid) and the ones that pass are written together.

Export streams the caller's visible records in keyset batches (by id), one short read each.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import io
import logging
import multiprocessing
import os
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy import JSON, Column, ColumnElement, or_, select, tuple_
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only

from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import Capability
from aisha_server.db import changelog
from aisha_server.db.base import utcnow
from aisha_server.db.models import Lead, User
from aisha_server.db.models.crm import Record
from aisha_server.db.models.sync import SyncChange
from aisha_server.db.uow import Database
from aisha_server.errors import BadRequest, Invalid, PayloadTooLarge
from aisha_server.services import search
from aisha_server.services.csv_text import csv_delimiter, decode_csv
from aisha_server.services.custom_fields import (
    CustomFieldService,
    FieldDefinition,
    filter_value,
    validate_values,
)
from aisha_server.services.module_settings import ModuleSettingsService
from aisha_server.services.records import (
    DEFAULT_REGION,
    DUPLICATE_PEERS,
    RELATED_TYPES,
    SPEC_BY_MODEL,
    SPECS,
    EntitySpec,
    ListParams,
    RecordService,
    _changed_keys,
    _derive_phones,
    _empty,
    _normalise_emails,
    check_identity,
    cleared_to_defaults,
    identity_problems,
    list_conditions,
    normalise_email,
    parse_sort,
    record_view,
    scope_rule,
    tenant_region,
    to_e164,
)

log = logging.getLogger(__name__)

MAX_ROWS = 200_000
MAX_BULK_IDS = 1_000
EXPORT_BATCH = 2_000
CHUNK = 500  # ids per IN (...) lookup
PROGRESS_EVERY = 1_000  # rows checked between progress reports
ANALYZE_AFTER_ROWS = 10_000  # rows an import writes before it refreshes the table's statistics
# files with at least this many new rows are checked in worker processes (ValidationPool),
# PARALLEL_CHUNK rows per task; below it starting and feeding the workers costs more than it saves
PARALLEL_MIN_ROWS = 2_000
PARALLEL_CHUNK = 5_000
LIST_SEPARATOR = ";"  # tags and multiselect values inside one CSV cell
# where an import column's cells go: a field, a list field (tags), a custom field, a multiselect,
# a number or boolean custom field (its text read as filters read it)
_PLAIN, _LIST, _CUSTOM, _CUSTOM_LIST, _CUSTOM_TEXT = range(5)
TEXT_READ_TYPES = ("number", "boolean")
# writable fields a CSV column may not name (JSON documents; custom fields go by `cf.<name>`)
NOT_MAPPABLE = ("metadata", "custom_fields")

T = TypeVar("T")
Mode = Literal["create", "update", "upsert"]
Match = Literal["email", "phone", "id"]
OnError = Literal["rollback", "skip"]

# Built by the API module (pydantic models of the records API) and handed to the service, so
# the service does not import the web layer.
ModelFor = Callable[[EntitySpec, str], type[BaseModel]]


@dataclass(frozen=True)
class ImportOptions:
    mapping: Mapping[str, str] | None = None  # csv column -> field (or `cf.<name>`, `id`)
    mode: Mode = "create"
    match: Match | None = None
    dry_run: bool = False
    on_error: OnError = "rollback"
    # a leading quote that guards a formula-like cell (as exports write them) is removed
    formula_unescape: bool = True
    # create rows that look like a record already there (or an earlier row) anyway
    confirm_duplicates: bool = False


@dataclass
class RowResult:
    row: int
    status: str  # created | updated | error | skipped
    id: uuid.UUID | None = None
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "status": self.status, "id": self.id, "errors": self.errors}


@dataclass(frozen=True)
class ImportReport:
    rows: list[RowResult]
    dry_run: bool
    mode: str
    # header columns that map to no field (left out of the import)
    ignored_columns: tuple[str, ...] = ()

    @property
    def totals(self) -> dict[str, int]:
        counts = {"rows": len(self.rows), "created": 0, "updated": 0, "skipped": 0, "error": 0}
        for r in self.rows:
            counts[r.status] += 1
        counts["errors"] = counts.pop("error")
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "dry_run": self.dry_run,
            "ignored_columns": list(self.ignored_columns),
            "totals": self.totals,
            "rows": [r.as_dict() for r in self.rows],
        }


@dataclass(frozen=True)
class BulkResult:
    id: uuid.UUID
    status: str  # updated | deleted | not_found | forbidden | error | duplicate
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "message": self.message}


@dataclass(frozen=True)
class ExportParams:
    """What an export writes: the rows a list with `selection` shows (its filters, custom-field
    filters, date ranges, search and the caller's data scope; its paging and sort are not
    used), in `sort` order (a list's sort: a sortable field, `-` for descending; None: by id,
    the cheapest walk), with `columns` (record columns and `cf.<name>`, in that order; None:
    every record column, then every live custom field)."""

    selection: ListParams = field(default_factory=ListParams)
    sort: str | None = None
    columns: tuple[str, ...] | None = None
    # quote cells a spreadsheet would run as formulas (off for machine round trips)
    formula_escape: bool = True


@dataclass(frozen=True)
class ExportPlan:
    """A checked export (`RecordIOService.export_plan`): what `export_batches` reads and writes."""

    spec: EntitySpec
    tenant_id: uuid.UUID
    header: tuple[str, ...]
    conditions: tuple[ColumnElement[bool], ...]
    sort: str | None  # a sortable column, or None: by id
    descending: bool
    formula_escape: bool


# -- normalisation fast paths (each proven equal to the slow path by tests) --------------------

# A plain ASCII address: dot-atom local part of letters, digits, `_`, `+`, `-`; a domain of
# LDH labels (no `--` anywhere, so no Punycode and no R-LDH labels) under an alphabetic
# top-level domain.  For these email-validator's normalised form is the input itself (its
# UTS-46 step only lower-cases an ASCII domain), so the result is the address lower-cased.
# Everything else (quoted or Unicode local parts, IDNA, odd lengths, special-use domains) goes
# to email-validator.  tests/server/test_record_io_fast.py compares both on varied inputs.
_PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9_+-]{1,64}(?:\.[A-Za-z0-9_+-]{1,64})*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\Z"
)
# email-validator's special-use names other than `test`, which test_environment admits
_SPECIAL_USE_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion"})


def fast_email(value: str) -> str | None:
    """`normalise_email(value)` for a plain ASCII address (`value` already stripped), or None
    when the address needs email-validator."""
    if len(value) > 254 or not _PLAIN_EMAIL.match(value):
        return None
    at = value.rindex("@")
    domain = value[at + 1 :]
    if at > 64 or len(domain) > 253 or "--" in domain:
        return None
    lowered = value.lower()
    if lowered[lowered.rindex(".") + 1 :] in _SPECIAL_USE_TLDS:
        return None
    return lowered


# Phones written with ASCII digits, spaces, dots, dashes and parentheses (one leading `+` at
# most): phonenumbers reads them as their digits (and whether a `+` leads), so the E.164 form
# of one spelling is the E.164 form of every spelling with the same digits.
# tests/server/test_record_io_fast.py checks that over many spellings, numbers and regions.
_PLAIN_PHONE = re.compile(r"\+?[0-9 ().-]{0,200}\Z")
_NOT_DIGIT = re.compile(r"[^0-9]")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}\Z")


class PhoneCache:
    """`to_e164(raw, region)` memoised per digit sequence for plainly written numbers, which
    phonenumbers reads from the digits alone (less for it to read: about half the time of
    the number as written)."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._known: dict[str, str | None] = {}

    def e164(self, raw: str | None) -> str | None:
        if raw is None:
            return None
        if not _PLAIN_PHONE.match(raw):
            return to_e164(raw, self.region)
        key = ("+" if raw.startswith("+") else "") + _NOT_DIGIT.sub("", raw)
        try:
            return self._known[key]
        except KeyError:
            found = self._known[key] = to_e164(key, self.region)
            return found


def normalised_email(value: str | None, field_name: str = "email") -> str | None:
    """`records.normalise_email` with the plain-address fast path."""
    if value is None:
        return None
    stripped = value.strip()
    return fast_email(stripped) or normalise_email(value, field_name)


def new_ids(count: int) -> list[uuid.UUID]:
    """`count` random (version 4) UUIDs from one read of the system's random source, in
    ascending order: a batch then fills the primary-key index in order instead of at random
    places (the ids are as random as ever; only the order they are handed out in is sorted)."""
    pool = os.urandom(16 * count)
    # the bits `uuid.UUID(..., version=4)` sets (RFC 4122 variant, version 4), on plain ints,
    # which sort in C (UUID objects compare through a Python method)
    keep = ~((0xC000 << 48) | (0xF000 << 64))
    mark = (0x8000 << 48) | (4 << 76)
    ints = sorted(
        int.from_bytes(pool[i : i + 16], "big") & keep | mark for i in range(0, 16 * count, 16)
    )
    return [uuid.UUID(int=n) for n in ints]


# -- the cyclic garbage collector ----------------------------------------------------------------

_gc_lock = threading.Lock()
_gc_holders = 0
_gc_was_enabled = True


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while an import builds its rows.  An import allocates
    a dozen containers per row that all live until it ends, and every generation-0 collection
    on the way walks the young ones again, every full one all of them: with the collector on,
    a 100,000-row import spent a third of its CPU there (bench_import; reference counting
    still frees everything that is not a cycle, and nothing here makes cycles).  The switch
    is process-wide, so holders are counted (concurrent imports, the database thread) and the
    collector is restored as it was found when the last one leaves."""
    global _gc_holders, _gc_was_enabled
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


# -- CSV formula injection (OWASP "CSV Injection") ---------------------------------------------

_FORMULA_START = ("=", "@", "\t", "\r")
# after a leading + or -: a plain number or phone number is data, not a formula
_SIGNED_PLAIN = re.compile(r"[+-][0-9 .()-]*[0-9][0-9 .()-]*\Z")


def needs_formula_escape(value: str) -> bool:
    """A cell a spreadsheet would run as a formula: it starts with =, @, tab or carriage
    return, or with + or - and is not a plain number or phone.  A cell that starts with a
    quote followed by such a text is escaped as well, so that unescaping is exact."""
    first = value[:1]
    if not first:
        return False
    if first in _FORMULA_START:
        return True
    if first in "+-":
        return not _SIGNED_PLAIN.match(value)
    return first == "'" and needs_formula_escape(value[1:])


def escape_formula(value: str) -> str:
    return "'" + value if needs_formula_escape(value) else value


def unescape_formula(cell: str) -> str:
    """The inverse of `escape_formula`: a quote that only guards a formula-like text goes."""
    if cell[:1] == "'" and needs_formula_escape(cell[1:]):
        return cell[1:]
    return cell


# -- CSV parsing -----------------------------------------------------------------------------


def _no_progress(_checked: int, _rows: int) -> None:
    pass


def parse_csv(data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (data row number, cells) of a UTF-8 CSV (BOM, CRLF and quoted newlines
    allowed; comma-, semicolon- or tab-separated, see `csv_delimiter`; blank lines skipped
    and not counted).  Problems with the file raise here."""
    if not data:
        raise BadRequest("The file is empty", code="empty_file")
    text = decode_csv(data)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=csv_delimiter(text), strict=True)
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                continue
            rows.append((len(rows) + 1, cells))
            if len(rows) > MAX_ROWS:
                raise PayloadTooLarge(
                    f"Too many rows: at most {MAX_ROWS:,} per import", code="too_many_rows"
                )
    except csv.Error as exc:
        raise BadRequest(
            f"The file is not valid CSV (line {reader.line_num}): {exc}", code="bad_csv"
        ) from None
    if header is None:  # only separators and blanks
        raise BadRequest("The file holds no header row, only empty cells", code="empty_file")
    return header, rows


def _mappable(spec: EntitySpec) -> tuple[str, ...]:
    return tuple(f for f in spec.writable if f not in NOT_MAPPABLE)


def export_record_columns(spec: EntitySpec) -> tuple[str, ...]:
    """The record columns an export can write, in their default order (custom fields follow)."""
    return ("id", *_mappable(spec), "created_at", "updated_at")


def resolve_mapping(
    spec: EntitySpec,
    header: Sequence[str],
    mapping: Mapping[str, str] | None,
    definitions: Sequence[FieldDefinition],
) -> dict[int, str]:
    """Column index -> target (`<field>`, `cf.<name>` or `id`)."""
    fields = set(_mappable(spec)) | {"id"}
    active = {d.field_name for d in definitions if not d.is_archived}
    result: dict[int, str] = {}
    if mapping is None:
        for index, column in enumerate(header):
            name = column.strip().lower()
            if name in fields or (name.startswith("cf.") and name[3:] in active):
                result[index] = name
    else:
        positions = {column.strip(): i for i, column in enumerate(header)}
        names = [column.strip() for column in header]
        problems = []
        for column, target in mapping.items():
            target = str(target).strip()
            if target not in fields and not (target.startswith("cf.") and target[3:] in active):
                problems.append(
                    {"field": f"mapping.{column}", "message": f"unknown field {target!r}"}
                )
            elif column.strip() not in positions:
                problems.append(
                    {"field": f"mapping.{column}", "message": "no such column in the file"}
                )
            elif names.count(column.strip()) > 1:
                problems.append(
                    {
                        "field": f"mapping.{column}",
                        "message": "the file's header names this column more than once",
                    }
                )
            else:
                result[positions[column.strip()]] = target
        if problems:
            raise Invalid(
                "Invalid mapping: " + ", ".join(p["field"] for p in problems),
                details=problems,
                code="bad_mapping",
            )
    targets = list(result.values())
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise Invalid(f"Several columns map to {', '.join(twice)}", code="bad_mapping")
    if not result:
        raise Invalid(
            "No column of the header maps to a field of "
            f"{spec.name}; expected some of: {', '.join(sorted(fields))} (or cf.<name>)",
            code="bad_header",
        )
    return result


def _problems(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "row", "message": e["msg"]}
        for e in exc.errors(include_url=False, include_context=False)
    ]


def _invalid_problems(exc: Invalid) -> list[dict[str, str]]:
    if isinstance(exc.details, list):
        return [dict(d) for d in exc.details]
    return [{"field": "row", "message": exc.message}]


# -- checking rows (in this process or in worker processes) -------------------------------------


@dataclass(frozen=True)
class RowRules:
    """What checking an import row needs besides the row: plain, picklable data (a worker
    process gets a copy with every chunk)."""

    entity: str
    model_for: ModelFor  # a module-level function: pickled by reference
    definitions: tuple[FieldDefinition, ...]
    region: str
    stages: tuple[str, ...]
    links: Mapping[type[Any], set[uuid.UUID]]  # live ids of the tenant the file names
    may_own_others: bool
    user_id: uuid.UUID | None
    department: str | None


class _Checker:
    """The records API's rules for one import row: the create/patch model, e-mail and phone
    normalisation, required fields, custom fields, ownership, stage and links."""

    def __init__(self, rules: RowRules) -> None:
        self.rules = rules
        self.spec = spec = SPECS[rules.entity]
        self.create_model = rules.model_for(spec, "Create")
        self.patch_model = rules.model_for(spec, "Patch")
        self.phones = PhoneCache(rules.region)
        self.emails = spec.normalised and "email" in spec.fields

    def check(
        self, values: Mapping[str, Any], custom: Mapping[str, Any], target: Record | None
    ) -> tuple[list[dict[str, str]], dict[str, Any] | None]:
        """(problems, typed values); typed is None when the values do not even parse."""
        rules, spec = self.rules, self.spec
        errors: list[dict[str, str]] = []
        model = self.create_model if target is None else self.patch_model
        try:
            typed = model.model_validate(values).model_dump(
                exclude_unset=True, exclude={"tenant_id"}
            )
        except ValidationError as exc:
            return _problems(exc), None
        # the records API's normalisation: emails checked, phones in E.164 too
        if self.emails and "email" in typed:
            try:
                typed["email"] = normalised_email(typed["email"])
            except Invalid as exc:
                errors.extend(_invalid_problems(exc))
        for column, e164 in spec.phones.items():
            if column in typed:
                typed[e164] = self.phones.e164(typed[column])
        merged: dict[str, Any]
        if target is None:
            missing = [f for f in spec.required if typed.get(f) in (None, "")]
            errors.extend({"field": f, "message": "is required"} for f in missing)
            errors.extend(identity_problems(spec, typed))
            try:
                typed["custom_fields"] = validate_values(rules.definitions, custom, partial=False)
            except Invalid as exc:
                errors.extend(_invalid_problems(exc))
            if not rules.may_own_others and typed.get("owner_id") not in (None, rules.user_id):
                errors.append(
                    {
                        "field": "owner_id",
                        "message": "only administrators may create records owned by others",
                    }
                )
            typed.setdefault("owner_id", rules.user_id)
            if typed.get("department") is None and rules.department is not None:
                typed["department"] = rules.department
            merged = typed
        else:
            if custom:
                try:
                    typed["custom_fields"] = validate_values(
                        rules.definitions, custom, partial=True, existing=target.custom_fields
                    )
                except Invalid as exc:
                    errors.extend(_invalid_problems(exc))
            if (
                "owner_id" in typed
                and typed["owner_id"] != target.owner_id
                and not rules.may_own_others
            ):
                errors.append(
                    {
                        "field": "owner_id",
                        "message": "only administrators may change a record's owner",
                    }
                )
            merged = {**record_view(spec, target), **typed}
            errors.extend(identity_problems(spec, merged, typed))
        stage = typed.get("stage")
        if rules.stages and stage is not None and stage not in rules.stages:
            errors.append({"field": "stage", "message": f"must be one of {list(rules.stages)}"})
        errors.extend(_link_problems(spec, rules.links, merged))
        # owner and assignee name users of the tenant (the importer itself always may own)
        people = rules.links.get(User, set())
        for column in ("owner_id", "assigned_to"):
            ref = typed.get(column)
            if ref is not None and ref != rules.user_id and ref not in people:
                errors.append({"field": column, "message": "no such user in this tenant"})
        return errors, typed


def check_new_rows(
    rules: RowRules,
    rows: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    bind_for: str | None,
    tenant_id: uuid.UUID,
) -> tuple[list[list[dict[str, str]]], BoundRows | None]:
    """What a worker process runs: the problems of each new row (values, custom values), and
    unless `bind_for` is None (a dry run) the good rows bound for that dialect+driver, in
    order, ready for `insert_records`."""
    with gc_paused():
        checker = _Checker(rules)
        problems: list[list[dict[str, str]]] = []
        good: list[dict[str, Any]] = []
        for values, custom in rows:
            errors, typed = checker.check(values, custom, None)
            problems.append(errors)
            if not errors and typed is not None:
                good.append(typed)
        if bind_for is None:
            return problems, None
        return problems, bind_rows(_fresh_dialect(bind_for), checker.spec, tenant_id, good)


def _warm_up() -> None:
    """Run once in each worker process: load the records API's models before the first chunk,
    then move everything loaded out of the garbage collector's sight (`gc.freeze`: modules,
    phone metadata and schemas live as long as the worker; the collector need not walk them)."""
    import aisha_server.api.record_io  # noqa: F401

    gc.freeze()


class ValidationPool:
    """Worker processes that check the rows of large imports, so that checking (CPU: pydantic,
    e-mail and phone normalisation, custom fields, binding) is spread over the CPUs while this
    process checks the rows that update records.  Owned by the app (`keys.VALIDATION_POOL`): started on first use and shut
    down in the app's cleanup.  `workers` below 2 disables it (one core gains nothing).
    Processes are spawned, not forked: the server runs threads (database writer, readers), and
    forking a process with threads can copy a held lock into the child."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = min(4, os.cpu_count() or 1) if workers is None else workers
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def executor(self) -> ProcessPoolExecutor | None:
        """The pool (started now if need be), or None when disabled or shut down."""
        if self.workers < 2:
            return None
        with self._lock:
            if self._closed:
                return None
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_warm_up,
                )
            return self._executor

    @property
    def started(self) -> bool:
        return self._executor is not None

    def start(self) -> None:
        """Start the worker processes now (each spawn imports the server's modules, ~1 s), so
        they are ready once the file is parsed."""
        executor = self.executor()
        if executor is not None:
            for _ in range(self.workers):
                executor.submit(_warm_up)

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _wait(future: Future[T], dialect: str) -> T:
    """A worker's result, from inside a unit of work: SQLite runs it on a database thread,
    which may block; PostgreSQL runs it in a greenlet on the event loop, which must not."""
    if dialect == "sqlite":
        return future.result()
    return await_only(asyncio.wrap_future(future))


def _write_new(session: Session, spec: EntitySpec, tenant_id: uuid.UUID, rows: list[_Row]) -> None:
    """Insert checked new rows (their typed values) and note their ids in their results."""
    ids = insert_records(session, spec, tenant_id, [r.values for r in rows])
    for row, new_id in zip(rows, ids, strict=True):
        row.result.id = new_id


class _DuplicateGuard:
    """The records API's duplicate rule for an import's new rows: a new account, contact or
    lead whose e-mail or E.164 phone is already a live record's (among the same peers as a
    create, within the importer's data scope) or an earlier new row's of the file is that
    row's error, unless the import confirms duplicates (`confirm_duplicates`), as a create
    needs `confirm_duplicate`."""

    def __init__(
        self,
        session: Session,
        spec: EntitySpec,
        actor: Principal,
        tenant_id: uuid.UUID,
        enabled: bool,
    ) -> None:
        self.session, self.spec, self.actor, self.tenant_id = session, spec, actor, tenant_id
        self.enabled = enabled and spec.normalised
        self.phone_columns = tuple(spec.phones.values())
        self._emails: dict[str, int] = {}  # e-mail -> the file's row that brought it
        self._phones: dict[str, int] = {}
        self._prefetched: dict[tuple[str, str], str] | None = None
        self._peers = [SPECS[n] for n in DUPLICATE_PEERS.get(spec.name, (spec.name,))]
        # peers of which the tenant has a live record the importer can see: with none (a
        # first load into a new tenant), only the file's own rows can be duplicates
        self.peers = (
            [
                peer
                for peer in self._peers
                if session.scalar(self._select(peer, peer.model.id).limit(1)) is not None
            ]
            if self.enabled
            else []
        )

    @property
    def reads(self) -> bool:
        """Whether judging a row reads the database (or only the rows judged before it)."""
        return self.enabled and bool(self.peers)

    def _select(self, peer: EntitySpec, *columns: Any) -> Any:
        model = peer.model
        query = select(*columns).where(
            model.tenant_id == self.tenant_id,
            model.deleted_at.is_(None),
            *RecordService._scope(peer, self.actor),
        )
        if model is Lead:  # a converted lead lives on as its contact
            query = query.where(model.converted_at.is_(None))
        return query

    def _existing(self, emails: set[str], phones: set[str]) -> dict[tuple[str, str], str]:
        """("email"|"phone", value) -> "<entity> <id>" of a live record that has it: one
        statement per peer, column and slice of values, each served by its column's index
        (OR-ed into one statement, SQLite read the tenant's every row instead: 95 ms against
        2 ms for 500 values among 10,000 records)."""
        found: dict[tuple[str, str], str] = {}
        for peer in self.peers:
            model = peer.model
            probes = [("email", model.email, sorted(emails))]
            probes += [("phone", getattr(model, c), sorted(phones)) for c in peer.phones.values()]
            for kind, column, listed in probes:
                for start in range(0, len(listed), CHUNK):
                    query = self._select(peer, column, model.id).where(
                        column.in_(listed[start : start + CHUNK])
                    )
                    for value, record_id in self.session.execute(query):
                        found.setdefault((kind, value), f"{peer.singular} {record_id}")
        return found

    def duplicates(
        self, rows: Sequence[tuple[RowResult, str | None, Sequence[str | None]]]
    ) -> list[bool]:
        """Per new row (its result, e-mail, E.164 phones), in file order: is it a duplicate?
        Its errors say of what."""
        if not self.enabled or not rows:
            return [False] * len(rows)
        existing = self._prefetched
        if existing is None:
            emails = {e for _, e, _ in rows if e}
            phones = {p for _, _, ps in rows for p in ps if p}
            existing = self._existing(emails, phones) if self.peers else {}
        flags = []
        for result, email, row_phones in rows:
            problems = []
            keys = [("email", email)] if email else []
            keys += [("phone", p) for p in dict.fromkeys(row_phones) if p]
            for kind, value in keys:
                seen = self._emails if kind == "email" else self._phones
                match = existing.get((kind, value))
                if match is None and value in seen:
                    match = f"row {seen[value]} of this file"
                if match is not None:
                    problems.append(
                        {
                            "field": kind,
                            "message": f"possible duplicate of {match} (same {kind}); import"
                            " with confirm_duplicates=true to create it anyway",
                        }
                    )
            if problems:
                result.errors.extend(problems)
            else:
                for kind, value in keys:
                    (self._emails if kind == "email" else self._phones)[value] = result.row
            flags.append(bool(problems))
        return flags

    def _identities(
        self, results: Sequence[RowResult], bound: BoundRows
    ) -> list[tuple[RowResult, str | None, list[str | None]]]:
        """(result, e-mail, E.164 phones) of new rows a worker checked and bound (their
        values as the driver takes them: e-mail and E.164 phones are plain text)."""
        at = {name: i for i, name in enumerate(bound.names)}
        email_at = at.get("email")
        phones_at = [at[c] for c in self.phone_columns if c in at]
        return [
            (
                result,
                values[email_at] if email_at is not None else None,
                [values[i] for i in phones_at],
            )
            for result, values in zip(results, bound.values, strict=True)
        ]

    def bound_duplicates(self, results: Sequence[RowResult], bound: BoundRows) -> list[bool]:
        """`duplicates` of new rows a worker checked and bound."""
        if not self.enabled:
            return [False] * len(results)
        return self.duplicates(self._identities(results, bound))

    def prefetch(self, chunks: Sequence[tuple[Sequence[RowResult], BoundRows]]) -> None:
        """Read the records like any of these rows now, before any of them is written;
        `duplicates` then judges from what was read."""
        if not self.reads:
            return
        emails: set[str] = set()
        phones: set[str] = set()
        for results, bound in chunks:
            for _, email, numbers in self._identities(results, bound):
                if email:
                    emails.add(email)
                phones.update(n for n in numbers if n)
        self._prefetched = self._existing(emails, phones)


def _without(bound: BoundRows, drop: Sequence[bool]) -> BoundRows:
    """The bound rows whose flag is False."""
    keep = [i for i, flag in enumerate(drop) if not flag]
    return BoundRows(
        bound.driver,
        bound.names,
        [bound.ids[i] for i in keep],
        [bound.values[i] for i in keep],
        [bound.changes[i] for i in keep],
    )


# -- the service -------------------------------------------------------------------------------


@dataclass
class _Row:
    result: RowResult
    values: dict[str, Any]
    custom: dict[str, Any]
    key: Any = None  # the match value
    target: Record | None = None


class RecordIOService:
    def __init__(
        self,
        db: Database,
        records: RecordService,
        custom_fields: CustomFieldService,
        modules: ModuleSettingsService,
        model_for: ModelFor,
        pool: ValidationPool | None = None,
    ) -> None:
        self._db = db
        self._records = records
        self._custom_fields = custom_fields
        self._modules = modules
        self._model_for = model_for
        self._pool = pool or ValidationPool(workers=0)

    async def _stages(self, tenant_id: uuid.UUID, spec: EntitySpec) -> list[str]:
        if spec.name != "opportunities":
            return []
        settings = await self._modules.settings_for(tenant_id, "opportunities")
        return list(settings.get("stages") or [])

    # -- import ------------------------------------------------------------------------------
    async def import_csv(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        entity: str,
        data: bytes,
        options: ImportOptions,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportReport:
        """Import `data` (see the route's description).  `progress(checked, rows)` is told how
        many of the file's rows have been checked (and, unless a dry run, written) as the
        import goes; on SQLite it is called from the database thread."""
        with gc_paused():
            return await self._import_csv(
                actor, tenant_id, entity, data, options, progress or _no_progress
            )

    async def check_import(
        self, actor: Principal, tenant_id: uuid.UUID, entity: str, options: ImportOptions
    ) -> EntitySpec:
        """What an import checks before it reads the file: the module is on, the caller may
        create and/or update these records, and the match key can find them."""
        records = self._records
        spec = records.spec(entity)
        if options.mode in ("create", "upsert"):
            spec = await records._prepare(actor, tenant_id, entity, "create")
        if options.mode in ("update", "upsert"):
            spec = await records._prepare(actor, tenant_id, entity, "update")
        match = options.match
        if options.mode != "create":
            match = match or "id"
            if match != "id" and match not in spec.fields:
                raise Invalid(
                    f"{spec.name} cannot be matched by {match}",
                    details=[{"field": "match", "message": "use id"}],
                    code="bad_match",
                )
        return spec

    async def _import_csv(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        entity: str,
        data: bytes,
        options: ImportOptions,
        progress: Callable[[int, int], None],
    ) -> ImportReport:
        spec = await self.check_import(actor, tenant_id, entity, options)
        match = options.match
        if options.mode != "create":
            match = match or "id"
        header, raw_rows = parse_csv(data)
        total = len(raw_rows)
        progress(0, total)
        if len(raw_rows) >= PARALLEL_MIN_ROWS:
            self._pool.start()
        definitions = await self._custom_fields.definitions_for(tenant_id, spec.singular)
        columns = resolve_mapping(spec, header, options.mapping, definitions)
        if match is not None and match not in columns.values():
            raise Invalid(
                f"mode {options.mode} matches by {match}: map a column to {match}",
                code="bad_mapping",
            )
        stages = await self._stages(tenant_id, spec)
        list_fields = {"tags"}
        multi = {d.field_name for d in definitions if d.field_type == "multiselect"}
        read = {d.field_name: d for d in definitions if d.field_type in TEXT_READ_TYPES}
        may_own_others = actor.can(Capability.EDIT_ALL_RECORDS)
        unescape = options.formula_unescape

        # parse every row's cells into typed values (no database needed); per column: where
        # its value goes (the id column only ever serves as the match key)
        plan: list[tuple[int, str, int]] = []
        for index, target in columns.items():
            if target.startswith("cf."):
                name = target[3:]
                kind = _CUSTOM_LIST if name in multi else _CUSTOM_TEXT if name in read else _CUSTOM
                plan.append((index, name, kind))
            elif target != "id":
                plan.append((index, target, _LIST if target in list_fields else _PLAIN))
        key_index = next((i for i, t in columns.items() if t == match), None)
        ignored_columns = tuple(c for i, c in enumerate(header) if i not in columns and c)
        width = len(header)
        # NUL characters: the JSON API refuses them in any text, PostgreSQL cannot store them
        nul_columns = dict(columns) if b"\x00" in data else {}
        rows: list[_Row] = []
        for number, cells in raw_rows:
            result = RowResult(number, "error")
            for index, target in nul_columns.items():
                if index < len(cells) and "\x00" in cells[index]:
                    result.errors.append(
                        {"field": target, "message": "must not contain NUL characters"}
                    )
            values: dict[str, Any] = {}
            custom: dict[str, Any] = {}
            count = len(cells)
            for index, name, kind in plan:
                if index >= count:
                    continue
                cell = cells[index].strip()
                if not cell:
                    continue
                # (unescaping never empties a cell: it drops a quote before a formula only)
                if unescape and cell[0] == "'":
                    cell = unescape_formula(cell)
                if kind == _PLAIN:
                    values[name] = cell
                elif kind == _CUSTOM:
                    custom[name] = cell
                elif kind == _CUSTOM_TEXT:
                    # "42" is the number 42, "true" is true; other text stays text, for
                    # validate_values to refuse in the row's report
                    with contextlib.suppress(Invalid):
                        cell = filter_value(read[name], cell)
                    custom[name] = cell
                else:
                    items = [v.strip() for v in cell.split(LIST_SEPARATOR) if v.strip()]
                    (values if kind == _LIST else custom)[name] = items
            key: Any = None
            if key_index is not None and key_index < count:
                cell = cells[key_index].strip()
                if unescape and cell[:1] == "'":
                    cell = unescape_formula(cell)
                key = cell or None
            if count > width:
                result.errors.append({"field": "row", "message": "more cells than the header"})
            if match == "id" and key is not None:
                try:
                    key = uuid.UUID(key)
                except ValueError:
                    result.errors.append({"field": "id", "message": "not a UUID"})
            elif match == "email" and key is not None:
                key = key.lower()
            rows.append(_Row(result, values, custom, key))

        write = not options.dry_run

        def work(session: Session) -> ImportReport:
            phones = PhoneCache(tenant_region(session, tenant_id))
            if match == "phone":
                for row in rows:
                    if row.key is not None:
                        row.key = phones.e164(row.key) or row.key
            self._match_rows(session, spec, actor, tenant_id, match, options.mode, rows)
            links = self._link_index(session, spec, actor, tenant_id, rows)
            updates: list[tuple[Record, dict[str, Any]]] = []
            rules = RowRules(
                entity=spec.name,
                model_for=self._model_for,
                definitions=tuple(definitions),
                region=phones.region,
                stages=tuple(stages),
                links=links,
                may_own_others=may_own_others,
                user_id=actor.user_id,
                department=actor.department,
            )
            checking = _Checker(rules)
            guard = _DuplicateGuard(
                session, spec, actor, tenant_id, enabled=not options.confirm_duplicates
            )
            fresh = [r for r in rows if not r.result.errors and r.target is None]
            pool = self._pool.executor() if len(fresh) >= PARALLEL_MIN_ROWS else None
            if pool is None:
                fresh = []
            else:
                # new rows are checked (and bound) in worker processes, chunk by chunk, while
                # this process checks the rows that update records; they are written once the
                # duplicate rule has seen them all (below)
                step = PARALLEL_CHUNK
                chunks = [fresh[i : i + step] for i in range(0, len(fresh), step)]
                bind_for = dialect_key(session.connection().dialect)
                futures = [
                    pool.submit(
                        check_new_rows,
                        rules,
                        [(r.values, r.custom) for r in c],
                        bind_for,
                        tenant_id,
                    )
                    for c in chunks
                ]
            parallel = {id(r) for r in fresh}
            creates: list[tuple[_Row, dict[str, Any]]] = []
            checked = 0
            for row in rows:
                if id(row) in parallel:
                    continue
                checked += 1
                if checked % PROGRESS_EVERY == 0:
                    progress(checked, total)
                result = row.result
                if result.errors:
                    continue
                target = row.target
                errors, typed = checking.check(row.values, row.custom, target)
                if errors:
                    result.errors.extend(errors)
                    continue
                assert typed is not None
                if target is None:
                    creates.append((row, typed))
                else:
                    result.id = target.id
                    changed = {
                        k: v
                        for k, v in typed.items()
                        if getattr(target, "metadata_" if k == "metadata" else k) != v
                    }
                    result.status = "updated" if changed else "skipped"
                    if write and changed:
                        updates.append((target, changed))
            flags = guard.duplicates(
                [
                    (row.result, typed.get("email"), [typed.get(c) for c in guard.phone_columns])
                    for row, typed in creates
                ]
            )
            inserts: list[_Row] = []
            for (row, typed), duplicate in zip(creates, flags, strict=True):
                if duplicate:
                    continue
                row.result.status = "created"
                if write:
                    row.values = typed
                    inserts.append(row)
            # with on_error=rollback one bad row dooms the import: nothing more is written and
            # the exception below rolls back what was
            doomed = options.on_error == "rollback" and any(r.result.errors for r in rows)
            if inserts and not doomed:
                _write_new(session, spec, tenant_id, inserts)
            done = total - len(parallel)
            progress(done, total)
            if pool is not None:
                dialect = session.connection().dialect.name
                # the duplicate rule over every new row before any is written, when it reads
                # the tenant's records: rows this transaction inserts would sit in the tables
                # it reads, and PostgreSQL plans a small tenant's lookups by statistics that
                # know none of them (it read the tenant's every row per lookup: minutes for
                # 100,000 rows).  When it reads nothing (no records to be like: a first load),
                # each chunk is written as soon as it is checked, while the workers go on.
                hold = guard.reads
                checked_chunks: list[tuple[list[RowResult], BoundRows]] = []

                def judge(good: list[RowResult], bound: BoundRows) -> None:
                    nonlocal doomed
                    flags = guard.bound_duplicates(good, bound)
                    if any(flags):
                        doomed = doomed or options.on_error == "rollback"
                        good = [r for r, flag in zip(good, flags, strict=True) if not flag]
                        bound = _without(bound, flags)
                    for result in good:
                        result.status = "created"
                    if write and not doomed:
                        ids = insert_records(session, spec, tenant_id, bound)
                        for result, new_id in zip(good, ids, strict=True):
                            result.id = new_id

                try:
                    for chunk, future in zip(chunks, futures, strict=True):
                        problems, bound = _wait(future, dialect)
                        good = []
                        for row, errors in zip(chunk, problems, strict=True):
                            if errors:
                                row.result.errors.extend(errors)
                                doomed = doomed or options.on_error == "rollback"
                            else:
                                good.append(row.result)
                        assert bound is not None
                        if hold:
                            checked_chunks.append((good, bound))
                        else:
                            judge(good, bound)
                        done += len(chunk)
                        progress(done, total)
                finally:  # after a failure the chunks not started yet are not checked
                    for future in futures:
                        future.cancel()
                if hold:
                    guard.prefetch([(good, bound) for good, bound in checked_chunks])
                for good, bound in checked_chunks:
                    judge(good, bound)
            bad = [r.result for r in rows if r.result.errors]
            for r in bad:
                r.status = "error"
                r.id = None
            if bad and options.on_error == "rollback":
                raise Invalid(
                    f"Import rejected: {len(bad)} of {len(rows)} rows have errors;"
                    " nothing was imported",
                    details=[r.as_dict() for r in bad],
                    code="import_rejected",
                )
            update_records(session, updates)
            return ImportReport(
                [r.result for r in rows], options.dry_run, options.mode, ignored_columns
            )

        report = await self._db.run(
            work, tenant_id=tenant_id, write=write, actor=changelog.ChangeContext(actor.user_id)
        )
        totals = report.totals
        if totals["created"] + totals["updated"] >= ANALYZE_AFTER_ROWS:
            # the planner's statistics of the table, now: the next import (an upsert matching
            # what this one wrote) should not be planned as if the rows were not there
            try:
                await self._db.analyze(spec.model.__tablename__)
            except Exception:
                log.exception("could not refresh the statistics of %s", spec.name)
        return report

    def _match_rows(
        self,
        session: Session,
        spec: EntitySpec,
        actor: Principal,
        tenant_id: uuid.UUID,
        match: str | None,
        mode: str,
        rows: list[_Row],
    ) -> None:
        """Find each update/upsert row's record (in the caller's scope), or say why not."""
        if match is None:
            return
        model = spec.model
        column = getattr(model, match)
        keys = list({r.key for r in rows if r.key is not None and not r.result.errors})
        found: dict[Any, list[Record]] = {}
        scope = RecordService._scope(spec, actor)
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            hit: ColumnElement[bool]
            # plain IN on indexed columns: under PostgreSQL's row-level security only
            # leakproof comparisons reach an index, and `lower(email) IN (500 values)` read the
            # tenant's every row per chunk (an upsert of 100,000 rows: minutes)
            if match == "email":
                # keys are lower-cased, as every stored address is (records.normalise_email)
                hit = column.in_(chunk)
            elif match in spec.phones:
                # a key read as E.164 finds the E.164 form (a phone typed as that number has
                # it); any other key, the phone as typed
                e164 = [k for k in chunk if isinstance(k, str) and _E164.match(k)]
                typed = [k for k in chunk if not (isinstance(k, str) and _E164.match(k))]
                arms = [getattr(model, spec.phones[match]).in_(e164)] if e164 else []
                if typed:
                    arms.append(column.in_(typed))
                hit = or_(*arms)
            else:
                hit = column.in_(chunk)
            query = select(model).where(
                model.tenant_id == tenant_id, model.deleted_at.is_(None), hit, *scope
            )
            for record in session.scalars(query):
                values = {getattr(record, match)}
                if match in spec.phones:
                    values.add(getattr(record, spec.phones[match]))
                for value in values - {None}:
                    found.setdefault(value.lower() if match == "email" else value, []).append(
                        record
                    )
        first_row: dict[Any, int] = {}
        for row in rows:
            result = row.result
            if result.errors:
                continue
            if row.key is None:
                if mode == "update":
                    result.errors.append({"field": match, "message": "is empty: nothing to match"})
                elif match == "id" or mode == "upsert":
                    pass  # upsert: no key -> a new record
                continue
            if row.key in first_row:
                result.errors.append(
                    {
                        "field": match,
                        "message": f"matches the same record as row {first_row[row.key]}",
                    }
                )
                continue
            first_row[row.key] = result.row
            hits = found.get(row.key, [])
            if len(hits) > 1:
                result.errors.append(
                    {"field": match, "message": f"{len(hits)} {spec.name} have this {match}"}
                )
            elif hits:
                if RecordService._may_edit(actor, hits[0]):
                    row.target = hits[0]
                else:
                    result.errors.append(
                        {"field": match, "message": f"you may not edit this {spec.singular}"}
                    )
            elif mode == "update" or match == "id":
                result.errors.append({"field": match, "message": f"{spec.singular} not found"})

    @staticmethod
    def _link_index(
        session: Session,
        spec: EntitySpec,
        actor: Principal,
        tenant_id: uuid.UUID,
        rows: list[_Row],
    ) -> dict[type[Any], set[uuid.UUID]]:
        """The live ids of the tenant among every link the file names; of records, those
        the actor can see (as `RecordService._check_link_scope` asks of a create)."""
        wanted: dict[type[Any], set[uuid.UUID]] = {}

        def want(target: type[Any], raw: Any) -> None:
            with contextlib.suppress(ValueError):
                wanted.setdefault(target, set()).add(uuid.UUID(str(raw)))

        for row in rows:
            for column, target in spec.links.items():
                if column in row.values:
                    want(target, row.values[column])
            for column in ("owner_id", "assigned_to"):
                if column in row.values:
                    want(User, row.values[column])
            related = RELATED_TYPES.get(str(row.values.get("related_type", "")).strip())
            if related is not None and "related_id" in row.values:
                want(related, row.values["related_id"])
        # links the updated records already hold may stay (re-importing an export), whoever
        # the linked record belongs to: only new links must be visible
        stored: dict[type[Any], set[uuid.UUID]] = {}
        for row in rows:
            if row.target is None:
                continue
            for column, target in spec.links.items():
                value = getattr(row.target, column, None)
                if value is not None:
                    stored.setdefault(target, set()).add(value)
            related_model = RELATED_TYPES.get(str(getattr(row.target, "related_type", "")))
            related_id = getattr(row.target, "related_id", None)
            if related_model is not None and related_id is not None:
                stored.setdefault(related_model, set()).add(related_id)
        live: dict[type[Any], set[uuid.UUID]] = {}
        for target, ids in wanted.items():
            found = live.setdefault(target, set())
            target_spec = SPEC_BY_MODEL.get(target)
            visible = RecordService._scope(target_spec, actor) if target_spec else []
            kept = ids & stored.get(target, set())
            for listed, scope in ((list(ids - kept), visible), (list(kept), [])):
                for start in range(0, len(listed), CHUNK):
                    found.update(
                        session.scalars(
                            select(target.id).where(
                                target.tenant_id == tenant_id,
                                target.deleted_at.is_(None),
                                target.id.in_(listed[start : start + CHUNK]),
                                *scope,
                            )
                        )
                    )
        return live

    # -- bulk update / delete -----------------------------------------------------------------
    async def bulk_update(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        entity: str,
        ids: Sequence[uuid.UUID],
        changes: Mapping[str, Any],
        *,
        confirm_duplicates: bool = False,
    ) -> list[BulkResult]:
        """The PATCH rules for every id, in one transaction; each id succeeds or fails alone.
        An e-mail or phone given to a record is refused for it (`duplicate`) where another
        record the actor can see has it, or an earlier record of this request was given it,
        unless `confirm_duplicates`."""
        spec = await self._records._prepare(actor, tenant_id, entity, "update")
        _check_count(ids)
        data = cleared_to_defaults(spec, changes)
        _normalise_emails(spec, data)
        await self._records._check_stage(tenant_id, spec, data)
        blanked = [f for f in spec.required if f in data and data[f] in (None, "")]
        if blanked:
            raise Invalid(
                "Validation failed: " + ", ".join(blanked),
                details=[{"field": f, "message": "cannot be empty"} for f in blanked],
            )
        definitions = await self._custom_fields.definitions_for(tenant_id, spec.singular)

        def work(session: Session) -> list[BulkResult]:
            # owners and assignees are the tenant's users, as in PATCH (the whole request)
            RecordService._check_people(session, tenant_id, data, actor)
            _derive_phones(session, spec, tenant_id, data)
            rows = self._visible(session, spec, actor, tenant_id, ids)
            results = []
            changes: list[tuple[Record, dict[str, Any]]] = []
            given_to: uuid.UUID | None = None  # the record of this request given the e-mail/phone
            for record_id in dict.fromkeys(ids):
                row = rows.get(record_id)
                if row is None:
                    results.append(BulkResult(record_id, "not_found", f"{spec.singular} not found"))
                    continue
                if not RecordService._may_edit(actor, row):
                    results.append(
                        BulkResult(record_id, "forbidden", f"You may not edit this {spec.singular}")
                    )
                    continue
                change = dict(data)
                try:
                    if "custom_fields" in change:
                        change["custom_fields"] = validate_values(
                            definitions,
                            change.get("custom_fields") or {},
                            partial=True,
                            existing=row.custom_fields,
                        )
                    if (
                        "owner_id" in change
                        and change["owner_id"] != row.owner_id
                        and not actor.can(Capability.EDIT_ALL_RECORDS)
                    ):
                        results.append(
                            BulkResult(
                                record_id,
                                "forbidden",
                                "Only administrators may change a record's owner",
                            )
                        )
                        continue
                    stored = record_view(spec, row)
                    merged = {**stored, **change}
                    check_identity(spec, merged, change)
                    RecordService._check_links(session, spec, tenant_id, merged)
                    RecordService._check_link_scope(
                        session, spec, actor, tenant_id, merged, _changed_keys(stored, change)
                    )
                except Invalid as exc:
                    results.append(BulkResult(record_id, "error", exc.message))
                    continue
                if not confirm_duplicates:
                    problem = self._bulk_duplicate(session, spec, actor, tenant_id, row, change,
                                                   given_to)  # fmt: skip
                    if problem is not None:
                        results.append(BulkResult(record_id, "duplicate", problem))
                        continue
                    if given_to is None and _gives_contact_details(spec, row, change):
                        given_to = row.id
                changes.append((row, change))
                results.append(BulkResult(record_id, "updated"))
            update_records(session, changes)
            return results

        return await self._db.run(
            work, tenant_id=tenant_id, actor=changelog.ChangeContext(actor.user_id)
        )

    def _bulk_duplicate(
        self,
        session: Session,
        spec: EntitySpec,
        actor: Principal,
        tenant_id: uuid.UUID,
        row: Record,
        change: Mapping[str, Any],
        given_to: uuid.UUID | None,
    ) -> str | None:
        """Why a bulk update may not give `row` its new e-mail or phone (None: it may)."""
        if not _gives_contact_details(spec, row, change):
            return None
        again = "repeat with confirm_duplicates=true to save it anyway"
        if given_to is not None:
            return (
                f"Possible duplicate: this request gives the same e-mail or phone to"
                f" {spec.singular} {given_to}; {again}"
            )
        matches = self._records.changed_duplicates(session, spec, actor, tenant_id, row, change)
        if not matches:
            return None
        first = matches[0]
        named = first["name"] or first["email"] or first["phone"]
        more = f" and {len(matches) - 1} more" if len(matches) > 1 else ""
        return f"Possible duplicate of {first['entity']} {first['id']} ({named}){more}; {again}"

    async def bulk_delete(
        self, actor: Principal, tenant_id: uuid.UUID, entity: str, ids: Sequence[uuid.UUID]
    ) -> list[BulkResult]:
        """The DELETE rules (soft delete) for every id, in one transaction."""
        spec = await self._records._prepare(actor, tenant_id, entity, "delete")
        _check_count(ids)

        def work(session: Session) -> list[BulkResult]:
            rows = self._visible(session, spec, actor, tenant_id, ids)
            now = utcnow()
            results = []
            deletions: list[tuple[Record, dict[str, Any]]] = []
            for record_id in dict.fromkeys(ids):
                row = rows.get(record_id)
                if row is None:
                    results.append(BulkResult(record_id, "not_found", f"{spec.singular} not found"))
                    continue
                deletions.append((row, {"deleted_at": now}))
                results.append(BulkResult(record_id, "deleted"))
            update_records(session, deletions)
            return results

        return await self._db.run(
            work, tenant_id=tenant_id, actor=changelog.ChangeContext(actor.user_id)
        )

    @staticmethod
    def _visible(
        session: Session,
        spec: EntitySpec,
        actor: Principal,
        tenant_id: uuid.UUID,
        ids: Iterable[uuid.UUID],
    ) -> dict[uuid.UUID, Record]:
        model = spec.model
        query = select(model).where(
            model.tenant_id == tenant_id,
            model.deleted_at.is_(None),
            model.id.in_(list(set(ids))),
            *RecordService._scope(spec, actor),
        )
        return {row.id: row for row in session.scalars(query)}

    # -- export ------------------------------------------------------------------------------
    async def export_plan(
        self, actor: Principal, tenant_id: uuid.UUID, entity: str, params: ExportParams
    ) -> ExportPlan:
        """Checks the caller may export and that the columns, sort and filters can be honoured
        (Invalid/BadRequest before anything is written), and plans the export."""
        spec = await self._records._prepare(actor, tenant_id, entity, "export")
        definitions = {
            d.field_name: d
            for d in await self._custom_fields.definitions_for(tenant_id, spec.singular)
        }
        live = [name for name, d in definitions.items() if not d.is_archived]
        record_columns = export_record_columns(spec)
        header = params.columns
        if header is None:
            header = (*record_columns, *(f"cf.{name}" for name in live))
        _check_export_columns(spec, header, record_columns, live)
        sort: str | None = None
        descending = False
        if params.sort is not None:
            sort, descending = parse_sort(spec, params.sort)
        selection = params.selection
        region = DEFAULT_REGION
        if selection.match == "prefix" and any(
            search.is_phone_word(w) for w in search.words(selection.q)
        ):  # phone prefixes depend on the tenant's country, as on the list
            region = await self._db.run(
                lambda s: tenant_region(s, tenant_id), tenant_id=tenant_id, write=False
            )
        conditions = list_conditions(
            spec, tenant_id, scope_rule(actor), selection, definitions, self._db.dialect,
            region=region,
        )  # fmt: skip
        return ExportPlan(
            spec, tenant_id, tuple(header), tuple(conditions), sort, descending,
            params.formula_escape,
        )  # fmt: skip

    async def export_batches(
        self, plan: ExportPlan, *, batch: int = EXPORT_BATCH
    ) -> AsyncIterator[bytes]:
        """CSV text, header first, then one chunk per keyset batch of `batch` records: one
        short read each (the columns only, no ORM objects), so memory stays flat whatever the
        size of the export.

        In `plan.sort` order, the keyset being (sort value, id); records whose sort value is
        empty come last, by id, whichever the direction (as in a spreadsheet)."""
        table = plan.spec.model.__table__
        id_column = table.c["id"]
        # the row read: the record columns written, the custom fields' document, then the
        # keyset's sort value and id
        names = [h for h in plan.header if not h.startswith("cf.")]
        selected: list[Any] = [table.c[n] for n in names]
        custom_at = len(selected)
        with_custom = any(h.startswith("cf.") for h in plan.header)
        if with_custom:
            selected.append(table.c["custom_fields"])
        sort_column = table.c[plan.sort] if plan.sort is not None else None
        selected += [
            (sort_column if sort_column is not None else id_column).label("export_sort_key"),
            id_column.label("export_id_key"),
        ]
        cells_of: list[tuple[bool, Any]] = [
            (True, h[3:]) if h.startswith("cf.") else (False, names.index(h)) for h in plan.header
        ]
        escape = plan.formula_escape
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        header = list(plan.header)
        writer.writerow([escape_formula(h) for h in header] if escape else header)
        yield out.getvalue().encode()

        # the walk: (sort value, id) over the records with a value, then by id over the empty
        # ones (a sort column that can be empty), or by id alone (no sort)
        phases: list[bool] = [True, False] if sort_column is not None else [False]
        if sort_column is not None and not sort_column.nullable:
            phases = [True]
        for by_value in phases:
            after: tuple[Any, Any] | None = None
            while True:
                query = select(*selected).where(*plan.conditions)
                if by_value:
                    assert sort_column is not None
                    query = query.where(sort_column.is_not(None))
                    if after is not None:
                        key = tuple_(sort_column, id_column)
                        query = query.where(key < after if plan.descending else key > after)
                    order = (sort_column, id_column)
                    query = query.order_by(*(c.desc() for c in order) if plan.descending else order)
                else:
                    if sort_column is not None:
                        query = query.where(sort_column.is_(None))
                    if after is not None:
                        query = query.where(id_column > after[1])
                    query = query.order_by(id_column)
                statement = query.limit(batch)

                def read(
                    session: Session, statement: Any = statement
                ) -> tuple[list[list[str]], tuple[Any, Any] | None]:
                    found = session.execute(statement).all()
                    lines = []
                    for row in found:
                        stored = (row[custom_at] or {}) if with_custom else {}
                        cells = [
                            _cell(stored.get(at)) if custom else _cell(row[at])
                            for custom, at in cells_of
                        ]
                        if escape:
                            cells = [escape_formula(c) if c else c for c in cells]
                        lines.append(cells)
                    return lines, ((found[-1][-2], found[-1][-1]) if found else None)

                lines, after = await self._db.run(read, tenant_id=plan.tenant_id, write=False)
                if lines:
                    out.seek(0)
                    out.truncate()
                    writer.writerows(lines)
                    yield out.getvalue().encode()
                if len(lines) < batch:
                    break


# -- the one place imports and bulk operations write records ------------------------------------


@dataclass(frozen=True)
class BoundRows:
    """New rows in the driver's form (`bind_rows`): what `insert_records` hands the driver.
    Built in a worker process for large imports, so the writer only writes."""

    driver: str  # the dialect+driver the values are bound for, e.g. "sqlite+pysqlite"
    names: tuple[str, ...]  # column names, "id" first
    ids: list[uuid.UUID]
    values: list[tuple[Any, ...]]
    # per row: its change-log entry's changes ({column: [None, value as JSON]}, as the ORM
    # flush hook writes for a new object) as JSON text, and its scope (owner_id, assigned_to,
    # department)
    changes: list[tuple[str, tuple[Any, Any, Any]]]


def dialect_key(dialect: Any) -> str:
    return f"{dialect.name}+{dialect.driver}"


def _json_text(fallback: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    """The change log's JSON through orjson: the document SQLAlchemy's processor
    (`json.dumps`) writes, read back equal, in a tenth of the time (bench_import: ~15 us per
    entry before).  Only spacing and the escaping of non-ASCII text differ, which no reader of
    the log sees.  Whatever orjson refuses (integers beyond 64 bits) goes through `fallback`,
    the column's own processor, and fails or succeeds there as before."""
    dumps = orjson.dumps

    def process(value: Any) -> Any:
        try:
            return dumps(value).decode()
        except TypeError:
            return fallback(value) if fallback is not None else value

    return process


def _memoised_json(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A record's JSON column processor (stored bit for bit as the ORM stores it), memoised
    for lists of strings and dicts of string values: tags and select custom fields repeat
    the same few documents over many rows (json.dumps costs 3-5 us each)."""
    known: dict[tuple[str, ...], Any] = {}

    def process(value: Any) -> Any:
        if isinstance(value, list):
            if not all(type(item) is str for item in value):
                return processor(value)
            key = ("[", *value)
        elif isinstance(value, dict):
            if not all(type(item) is str for item in value.values()):
                return processor(value)
            key = ("{", *(part for pair in value.items() for part in pair))
        else:
            return processor(value)
        try:
            return known[key]
        except KeyError:
            if len(known) >= 4_096:  # free text: few repeats, so keep the memo small
                known.clear()
            text = known[key] = processor(value)
            return text

    return process


def _processor(column: Column[Any], dialect: Any) -> Callable[[Any], Any] | None:
    processor = changelog.bind_processor(column, dialect)
    if processor is not None and isinstance(column.type, JSON):
        return _memoised_json(processor)
    return processor


_CHANGES_JSON: Column[Any] = SyncChange.__table__.c["changes"]  # type: ignore[assignment]


def bind_rows(
    dialect: Any,
    spec: EntitySpec,
    tenant_id: uuid.UUID,
    rows: Sequence[Mapping[str, Any]],
    now: datetime | None = None,
) -> BoundRows:
    """New ids (ascending) and each row's full column tuple, every value through its column's
    own SQLAlchemy bind processor (UUIDs, UTC datetimes, JSON, decimals stored exactly as the
    ORM stores them).  `dialect` is the
    connection's, or in a worker process the same dialect class built afresh
    (`_fresh_dialect`): bind processors need no connection."""
    ids = new_ids(len(rows))
    table = spec.model.__table__
    defaults = _insert_defaults(spec, tenant_id, now or utcnow())
    names = ("id", *defaults)
    processors = [_processor(table.c[name], dialect) for name in names]
    base: list[Any] = [None]
    for name, processor in zip(names[1:], processors[1:], strict=True):
        value = defaults[name]
        base.append(processor(value) if processor is not None else value)
    # per column name: (its position, its processor, whether the change log shows it)
    columns = {
        name: (i, processors[i], name not in changelog.SKIPPED) for i, name in enumerate(names)
    }
    id_processor = processors[0]
    changes_json = _json_text(changelog.bind_processor(_CHANGES_JSON, dialect))
    values = []
    # the change log's view of a new row (changelog._collect): every set column but the
    # bookkeeping ones, as JSON; the defaults' part is the same for every row
    base_changes = {
        n: [None, changelog.plain(defaults[n])]
        for n in names
        if n not in changelog.SKIPPED and defaults[n] not in (None, {}, [])
    }
    default_scope = (
        defaults.get("owner_id"),
        defaults.get("assigned_to"),
        defaults.get("department"),
    )
    changes = []
    plain = changelog.plain
    for new_id, row_values in zip(ids, rows, strict=True):
        row = base.copy()
        row[0] = id_processor(new_id) if id_processor is not None else new_id
        row_changes = base_changes.copy()
        for name, value in row_values.items():
            i, processor, logged = columns[name]
            row[i] = processor(value) if processor is not None else value
            if not logged:
                continue
            # not set: None, {} or [] (as changelog._collect; no tuple of fresh {} and [] here)
            if value is None or (not value and isinstance(value, dict | list)):
                row_changes.pop(name, None)
            else:  # (most values are text, which `plain` returns as it is)
                row_changes[name] = [None, value if type(value) is str else plain(value)]
        values.append(tuple(row))
        owner, assigned, department = default_scope
        scope = (
            row_values.get("owner_id", owner),
            row_values.get("assigned_to", assigned),
            row_values.get("department", department),
        )
        changes.append((changes_json(row_changes), scope))
    return BoundRows(dialect_key(dialect), names, ids, values, changes)


def _fresh_dialect(key: str) -> Any:
    """A dialect object of `key` ("sqlite+pysqlite", "postgresql+asyncpg") without an engine."""
    from sqlalchemy.engine import make_url

    return make_url(f"{key}://").get_dialect()()


def insert_records(
    session: Session,
    spec: EntitySpec,
    tenant_id: uuid.UUID,
    rows: Sequence[Mapping[str, Any]] | BoundRows,
) -> list[uuid.UUID]:
    """Insert new `spec` records (validated column values, or the same already bound by
    `bind_rows`) in the session's transaction and return their new ids, in order.  Every
    record an import creates is written here.

    The sync change log gets one entry per record here, in the same transaction (what the ORM
    flush hook writes for a new object; `changelog.log_bulk`).

    Straight to the driver (`changelog.write_bound`): one `executemany` on SQLite; on
    PostgreSQL a binary COPY into a staging table and one `INSERT ... SELECT` (row-level
    security applies)."""
    connection = session.connection()
    dialect = connection.dialect
    if isinstance(rows, BoundRows):
        bound = rows
        if bound.driver != dialect_key(dialect):
            raise ValueError(f"rows bound for {bound.driver}, not {dialect_key(dialect)}")
    else:
        bound = bind_rows(dialect, spec, tenant_id, rows)
    if not bound.ids:
        return []
    if dialect.name == "sqlite":
        # a 64 MiB page cache on the writer's connection (SQLite's default is 2 MiB): a bulk
        # insert touches a dozen index B-trees at random places, and with the small cache the
        # pages are evicted and read back between rows (bench_import: ~10-30% of the write).
        # The connection keeps it; the readers keep the default (uow._sqlite_pragmas).
        driver: Any = connection.connection.driver_connection
        driver.execute("PRAGMA cache_size=-65536")
    changelog.write_bound(connection, spec.model.__table__, bound.names, bound.values)
    # the sync change log, in the same transaction (raw writes pass no ORM flush hook)
    changelog.log_bulk(
        session,
        tenant_id,
        changelog.SYNCED[spec.model],
        [
            (new_id, "upsert", 1, row_changes, owner_id, assigned_to, department)
            for new_id, (row_changes, (owner_id, assigned_to, department)) in zip(
                bound.ids, bound.changes, strict=True
            )
        ],
    )
    return bound.ids


def update_records(session: Session, changes: Sequence[tuple[Record, Mapping[str, Any]]]) -> None:
    """Apply each (record, changed values) through the records API's one mutation path, in the
    session's transaction.  Every record an import, bulk update or bulk delete changes is
    written here.

    One flush for them all: each record's version bump and sync change-log entry come from
    the flush hooks as for a single record, but the UPDATEs and the change log are written
    in batches (a flush per record cost ~1.5 ms: an upsert of 20,000 rows took 31 s)."""
    for row, values in changes:
        RecordService._apply(row, values)
    if changes:
        session.flush()


def _gives_contact_details(spec: EntitySpec, row: Record, change: Mapping[str, Any]) -> bool:
    """Whether `change` (phones derived) gives `row` an e-mail or phone it does not have: what
    the duplicate rule looks at."""
    return spec.normalised and any(
        change.get(name) and change[name] != getattr(row, name)
        for name in ("email", *spec.phones.values())
    )


def _check_count(ids: Sequence[uuid.UUID]) -> None:
    if not ids:
        raise Invalid("ids: give at least one id", details=[{"field": "ids", "message": "empty"}])
    if len(ids) > MAX_BULK_IDS:
        raise Invalid(
            f"ids: at most {MAX_BULK_IDS} per request",
            details=[{"field": "ids", "message": f"at most {MAX_BULK_IDS}"}],
        )


def _check_export_columns(
    spec: EntitySpec, header: Sequence[str], record_columns: Sequence[str], live: Sequence[str]
) -> None:
    """An export's columns: record columns and live custom fields (`cf.<name>`), each once."""
    if not header:
        raise Invalid(
            "Invalid export columns: name at least one",
            details=[{"field": "columns", "message": "empty"}],
        )
    if "" in header:
        raise Invalid(
            "Invalid export columns: an empty name (a comma too many?)",
            details=[{"field": "columns", "message": "empty name between commas"}],
        )
    known = {*record_columns, *(f"cf.{name}" for name in live)}
    unknown = [c for c in header if c not in known]
    if unknown:
        allowed = [*record_columns, *(f"cf.{name}" for name in live)]
        raise Invalid(
            f"Cannot export {spec.name} column(s): {', '.join(unknown)}",
            details=[
                {"field": "columns", "message": f"{c!r} is not one of {allowed}"} for c in unknown
            ],
        )
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise Invalid(
            f"Invalid export columns: {', '.join(twice)} named twice",
            details=[{"field": "columns", "message": f"{c!r} named twice"} for c in twice],
        )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return LIST_SEPARATOR.join(str(v) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return str(value)


def _link_problems(
    spec: EntitySpec, live: Mapping[type[Any], set[uuid.UUID]], values: Mapping[str, Any]
) -> list[dict[str, str]]:
    """`RecordService._check_links` against ids looked up once for the whole file."""
    problems = []
    for column, target in spec.links.items():
        ref = values.get(column)
        if ref is not None and ref not in live.get(target, set()):
            problems.append({"field": column, "message": f"no such {target.__tablename__[:-1]}"})
    related_type = values.get("related_type")
    related_id = values.get("related_id")
    if related_type is not None or related_id is not None:
        related = RELATED_TYPES.get(related_type) if related_type else None
        if related_type is not None and related is None:
            problems.append(
                {"field": "related_type", "message": f"must be one of {sorted(RELATED_TYPES)}"}
            )
        elif (related_type is None) != (related_id is None):
            problems.append(
                {"field": "related_id", "message": "related_type and related_id go together"}
            )
        elif related is not None and related_id not in live.get(related, set()):
            problems.append({"field": "related_id", "message": f"no such {related_type}"})
    return problems


def _insert_defaults(spec: EntitySpec, tenant_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """Every column of a new row but its id and values (one statement shape for the bulk
    INSERT).  The JSON defaults are shared between rows: they are only serialised."""
    row: dict[str, Any] = {
        "tenant_id": tenant_id,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "deleted_at": None,
    }
    for name in spec.writable:
        row[name] = _empty(spec, name)
    for e164 in spec.phones.values():
        row[e164] = None
    return row
