"""CRM records: accounts, contacts, leads, opportunities, activities, notes.

One service for the six entities, driven by an `EntitySpec` each: which columns a client may
write, which ones lists may sort and filter on, where `q` searches, and which links must
point at live records of the same tenant.  Every write of every entity goes through
`_mutate` (one mutation path per entity, in the caller's transaction), which is where the
sync change log attaches.

Data scope (guide 3.2-3.3): employees see and edit records they own or are assigned;
managers see and edit their department's records (and their own); admins and support see the
tenant, support changes nothing; a superadmin works in the tenant it names.  A record outside
the caller's scope is 404, one visible but not editable is 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import orjson
import phonenumbers
from sqlalchemy import (
    JSON,
    ColumnElement,
    Date,
    Integer,
    Numeric,
    Select,
    String,
    Text,
    Uuid,
    and_,
    bindparam,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import Join

from aisha_server.auth.authorize import allows
from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import Capability, DataScope
from aisha_server.db.base import UTCDateTime, utcnow
from aisha_server.db.changelog import ChangeContext
from aisha_server.db.models import (
    Account,
    Activity,
    Contact,
    Lead,
    Note,
    Opportunity,
    Tenant,
    User,
)
from aisha_server.db.models.crm import Record
from aisha_server.db.uow import Database, select_rows
from aisha_server.errors import (
    BadRequest,
    Conflict,
    Invalid,
    NotFound,
    PermissionDenied,
)
from aisha_server.services import search
from aisha_server.services.custom_fields import (
    CustomFieldService,
    FieldDefinition,
    filter_value,
    validate_values,
)
from aisha_server.services.emails import EmailNotValidError, normalised_email
from aisha_server.services.module_settings import ModuleSettingsService
from aisha_server.services.pagination import Page, decode_cursor, encode_cursor

T = TypeVar("T")

# Columns every record has and clients may write.
COMMON_FIELDS = ("owner_id", "assigned_to", "department", "status", "metadata", "custom_fields")
RELATED_TYPES: dict[str, type[Any]] = {
    "account": Account,
    "contact": Contact,
    "lead": Lead,
    "opportunity": Opportunity,
}
MAX_LIMIT = 500
DEFAULT_REGION = "US"  # phones are read in this region when the tenant names none


@dataclass(frozen=True)
class EntitySpec:
    name: str  # the resource: "contacts"
    singular: str  # "contact"
    model: type[Any]  # a mapped subclass of Record
    fields: tuple[str, ...]  # entity-specific writable columns
    required: tuple[str, ...] = ()
    # a record needs at least one of these to be told apart (a person with no name, e-mail
    # or phone is nobody anyone can find again)
    identity: tuple[str, ...] = ()
    sortable: tuple[str, ...] = ("updated_at", "created_at")
    filters: tuple[str, ...] = ("status",)
    search: tuple[str, ...] = ()  # `q` with match=contains looks in these
    # `q` (prefix, the default) looks in these: each has a (tenant_id, lower(col)) index, or
    # is stored normalised with a (tenant_id, col) index (email, and phones via E.164)
    prefix_search: tuple[str, ...] = ()
    links: Mapping[str, type[Any]] = field(default_factory=dict)
    # phone column -> its E.164 form (derived on every write, read-only to clients)
    phones: Mapping[str, str] = field(default_factory=dict)

    @property
    def normalised(self) -> bool:
        """Emails and phones are normalised, duplicates looked for, records mergeable."""
        return self.name in ("accounts", "contacts", "leads")

    @property
    def writable(self) -> tuple[str, ...]:
        return (*self.fields, *COMMON_FIELDS)


SPECS: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in (
        EntitySpec(
            "accounts",
            "account",
            Account,
            fields=(
                "name", "type", "industry", "website", "email", "phone", "annual_revenue",
                "employee_count", "address_1", "address_2", "city", "state", "zip", "country",
                "description", "tags",
            ),
            required=("name",),
            sortable=("updated_at", "created_at", "name"),
            filters=("status", "type", "industry"),
            search=("name", "email", "phone", "website"),
            prefix_search=("name", "email", "phone"),
            phones={"phone": "phone_e164"},
        ),
        EntitySpec(
            "contacts",
            "contact",
            Contact,
            fields=(
                "first_name", "last_name", "email", "phone", "mobile", "title", "company",
                "account_id", "lead_source", "description", "tags",
            ),
            identity=("first_name", "last_name", "email", "phone", "mobile"),
            sortable=("updated_at", "created_at", "last_name", "email"),
            filters=("status", "account_id", "lead_source"),
            search=("first_name", "last_name", "email", "phone", "mobile", "company"),
            prefix_search=("first_name", "last_name", "email", "phone", "mobile", "company"),
            links={"account_id": Account},
            phones={"phone": "phone_e164", "mobile": "mobile_e164"},
        ),
        EntitySpec(
            "leads",
            "lead",
            Lead,
            fields=(
                "first_name", "last_name", "email", "phone", "company", "title", "source",
                "value", "score", "description", "tags",
            ),
            identity=("first_name", "last_name", "company", "email", "phone"),
            sortable=("updated_at", "created_at", "email"),
            filters=("status", "source"),
            search=("first_name", "last_name", "email", "phone", "company"),
            prefix_search=("first_name", "last_name", "email", "phone", "company"),
            phones={"phone": "phone_e164"},
        ),
        EntitySpec(
            "opportunities",
            "opportunity",
            Opportunity,
            fields=(
                "name", "stage", "amount", "probability", "close_date", "account_id",
                "contact_id", "lead_id", "description",
            ),
            required=("name",),
            sortable=("updated_at", "created_at", "close_date"),
            filters=("status", "stage", "account_id", "contact_id"),
            search=("name",),
            prefix_search=("name",),
            links={"account_id": Account, "contact_id": Contact, "lead_id": Lead},
        ),
        EntitySpec(
            "activities",
            "activity",
            Activity,
            fields=(
                "type", "subject", "description", "due_date", "completed_at", "related_type",
                "related_id",
            ),
            required=("subject",),
            sortable=("updated_at", "created_at", "due_date"),
            filters=("status", "type", "related_type", "related_id"),
            search=("subject",),
            prefix_search=("subject",),
        ),
        EntitySpec(
            "notes",
            "note",
            Note,
            fields=("title", "content", "related_type", "related_id"),
            required=("content",),
            sortable=("updated_at", "created_at"),
            filters=("related_type", "related_id"),
            search=("title",),
            prefix_search=("title",),
        ),
    )
}  # fmt: skip
# the spec of each record model (a link's target)
SPEC_BY_MODEL: dict[type[Any], EntitySpec] = {spec.model: spec for spec in SPECS.values()}


# -- lists --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListParams:
    limit: int = 50
    offset: int = 0
    cursor: str | None = None
    sort: str = "-updated_at"
    q: str | None = None
    match: str = "prefix"  # or "contains" (see services/search.py)
    equals: Mapping[str, Any] = field(default_factory=dict)  # column -> value
    owner_id: uuid.UUID | None = None
    assigned_to: uuid.UUID | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    custom: Mapping[str, str] = field(default_factory=dict)  # custom field name -> raw value
    deleted: bool = False  # list the tombstones instead (restore screens)
    include_total: bool = False


@dataclass(frozen=True)
class WriteContext:
    """What a write needs that is read outside its transaction: the entity, its custom-field
    definitions and (opportunities) the tenant's stages.  Built by RecordService.write_context,
    once per entity for a whole sync push."""

    spec: EntitySpec
    definitions: list[FieldDefinition]
    stages: list[str] = field(default_factory=list)

    def check_stage(self, values: Mapping[str, Any]) -> None:
        """Opportunity stages come from the tenant's `opportunities` module settings."""
        stage = values.get("stage")
        if self.spec.name != "opportunities" or stage is None:
            return
        if self.stages and stage not in self.stages:
            raise Invalid(
                "Validation failed: stage",
                details=[{"field": "stage", "message": f"must be one of {list(self.stages)}"}],
            )


@dataclass(frozen=True)
class RecordPage:
    page: Page[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ScopeRule:
    """What an actor sees of a tenant's records beyond the tenant, as data (guide 3.3): every
    record (`kind` ""), its own (`"own"`: owner or assignee is the user) or its department's
    and its own (`"department"`).  A rule without a user owns nothing."""

    kind: str = ""
    user_id: uuid.UUID | None = None
    department: str | None = None

    def values(self) -> list[Any]:
        """The rule's values in the order `_scope_condition` takes them."""
        if self.kind == "own":
            return [self.user_id, self.user_id]
        if self.kind == "department":
            return [self.department, self.user_id, self.user_id]
        return []


def scope_rule(actor: Principal) -> ScopeRule:
    scope = actor.data_scope
    if scope in (DataScope.ALL_TENANTS, DataScope.TENANT):
        return ScopeRule()
    if scope is DataScope.DEPARTMENT and actor.department:
        return ScopeRule("department", actor.user_id, actor.department)
    return ScopeRule("own", actor.user_id)


@dataclass(frozen=True, slots=True)
class ListPlan:
    """A list query as its form and its values.  `shape` says what is compared with what and
    holds no value (so every page of every tenant with the same filters has the same shape);
    `values` are the statement's bind parameters `p0`, `p1`, ... in the shape's order.  The
    SELECT of a shape is built once (`planned_select`), which spares a page the ~0.3 ms of
    building and keying a statement; `list_statement` builds the same SQL with the values in."""

    shape: tuple[Any, ...]
    values: tuple[Any, ...]

    def parameters(self) -> dict[str, Any]:
        return {f"p{i}": value for i, value in enumerate(self.values)}


def plan_list(
    spec: EntitySpec,
    tenant_id: uuid.UUID,
    scope: ScopeRule,
    params: ListParams,
    definitions: Mapping[str, FieldDefinition],
    dialect: str,
    *,
    region: str = DEFAULT_REGION,
    paged: bool = True,
) -> ListPlan:
    """What a list (or, `paged=False`, an export) with these parameters selects: tenant,
    tombstones, data scope, filters, custom-field filters (`definitions`: the entity's live
    custom fields by name), `q`; and for a page the order, keyset cursor and `limit + 1` rows
    (one more tells whether a next page exists).  Raises Invalid/BadRequest for parameters it
    cannot honour, before anything is read."""
    if params.match not in search.MODES:
        raise Invalid(
            f"Unknown search mode {params.match!r}",
            details=[{"field": "match", "message": f"one of {list(search.MODES)}"}],
        )
    if params.q and "\x00" in params.q:  # no stored text holds one (PostgreSQL refuses it)
        raise Invalid(
            "Invalid query parameters: q",
            details=[{"field": "q", "message": "must not contain NUL characters"}],
        )
    shape: list[Any] = [spec.name, dialect, params.deleted]
    values: list[Any] = [tenant_id]
    if scope.kind:
        shape.append((scope.kind,))
        values += scope.values()
    for name, value in params.equals.items():
        if name not in spec.filters:
            raise Invalid(
                f"Cannot filter {spec.name} by {name!r}",
                details=[{"field": name, "message": f"filters: {list(spec.filters)}"}],
            )
        shape.append(("eq", name))
        values.append(value)
    for name in ("owner_id", "assigned_to"):
        value = getattr(params, name)
        if value is not None:
            shape.append(("eq", name))
            values.append(value)
    for name, low, high in (
        ("created_at", params.created_from, params.created_to),
        ("updated_at", params.updated_from, params.updated_to),
    ):
        if low is not None:
            shape.append(("from", name))
            values.append(low)
        if high is not None:
            shape.append(("before", name))
            values.append(high)
    for name, raw in params.custom.items():
        definition = definitions.get(name)
        if definition is None:
            raise Invalid(
                f"Invalid query parameters: cf.{name}",
                details=[{"field": f"cf.{name}", "message": "no such custom field"}],
            )
        value = filter_value(definition, raw)
        shape.append(("cf", name, definition.field_type))
        values.append(float(value) if definition.field_type == "number" else value)
    columns = spec.prefix_search if params.match == "prefix" else spec.search
    for word in search.words(params.q):
        alternatives = search.word_alternatives(
            spec.model.__tablename__, columns, dict(spec.phones), word, params.match, dialect,
            region,
        )  # fmt: skip
        shape.append(("word", tuple((ref, comparison) for ref, comparison, _ in alternatives)))
        for _, _, found in alternatives:
            values += found
    if not paged:
        return ListPlan(tuple(shape), tuple(values))

    sort_name, descending = parse_sort(spec, params.sort)
    shape.append(("order", sort_name, descending))
    if params.cursor is not None:
        sort_col: InstrumentedAttribute[Any] = getattr(spec.model, sort_name)
        if spec.model.__table__.c[sort_name].nullable:
            raise BadRequest(
                f"Cursor paging needs a sort on a column that is never empty, not {sort_name!r}"
                " (use offset)",
                code="invalid_cursor",
            )
        if params.offset:
            raise BadRequest("Give either cursor or offset, not both", code="invalid_cursor")
        value, last_id, made_for = decode_cursor(params.cursor, size=3)
        if made_for != sort_token(sort_name, descending):
            raise BadRequest(
                f"This cursor pages a list sorted by {made_for!r}, not {params.sort!r}",
                code="invalid_cursor",
            )
        try:
            key = (_coerce(sort_col, value), uuid.UUID(str(last_id)))
        except (ValueError, TypeError, ArithmeticError):
            raise BadRequest("Invalid cursor", code="invalid_cursor") from None
        shape.append(("after",))
        values += key
    values.append(max(1, min(params.limit, MAX_LIMIT)) + 1)
    if params.cursor is None and params.offset:
        shape.append(("offset",))
        values.append(params.offset)
    return ListPlan(tuple(shape), tuple(values))


def sort_token(name: str, descending: bool) -> str:
    """A list's sort as its cursors carry it (`-updated_at`, `last_name`): a cursor is
    refused by a list sorted otherwise, where its values would seek the wrong order."""
    return f"-{name}" if descending else name


def list_cursor(row: Mapping[str, Any], sort_name: str, descending: bool) -> str:
    """The `next_cursor` after `row` (a record's view) in a list sorted by `sort_name`."""
    return encode_cursor(
        [_plain(row[sort_name]), str(row["id"]), sort_token(sort_name, descending)]
    )


def parse_sort(spec: EntitySpec, sort: str) -> tuple[str, bool]:
    """(field, descending) of a list sort such as `-updated_at`; a field the entity cannot be
    sorted on (not indexed) is a 422."""
    name = sort.lstrip("-+")
    if name not in spec.sortable:
        raise Invalid(
            f"Cannot sort {spec.name} by {name!r}",
            details=[{"field": "sort", "message": f"one of {list(spec.sortable)}"}],
        )
    return name, sort.startswith("-")


class _Binds:
    """The values of a plan as a builder consumes them: the values themselves (a statement
    with its values in) or bind parameters `p0`, `p1`, ... standing for them (a statement
    built once per shape)."""

    def __init__(self, values: Sequence[Any] | None) -> None:
        self._values = values
        self._next = 0

    @property
    def literal(self) -> bool:
        """The values themselves (not bind parameters)."""
        return self._values is not None

    def take(self, kind: Any = None) -> Any:
        index = self._next
        self._next += 1
        if self._values is None:
            return bindparam(f"p{index}", type_=kind)
        value = self._values[index]
        return value if kind is None else literal(value, kind)


_WHERE_TERMS = frozenset({"own", "department", "eq", "from", "before", "cf", "word"})


def _where(
    spec: EntitySpec, shape: Sequence[Any], binds: _Binds
) -> tuple[list[ColumnElement[bool]], int]:
    """The WHERE conditions of a plan's shape, and where its paging terms start."""
    model = spec.model
    table = model.__table__
    name, dialect, deleted = shape[0], shape[1], shape[2]
    assert name == spec.name
    conditions: list[ColumnElement[bool]] = [
        model.tenant_id == binds.take(),
        model.deleted_at.is_not(None) if deleted else model.deleted_at.is_(None),
    ]
    index = 3
    while index < len(shape) and shape[index][0] in _WHERE_TERMS:
        term = shape[index]
        kind = term[0]
        if kind in ("own", "department"):
            conditions.append(_scope_condition(model, kind, binds))
        elif kind == "eq":
            conditions.append(getattr(model, term[1]) == binds.take())
        elif kind == "from":
            conditions.append(getattr(model, term[1]) >= binds.take())
        elif kind == "before":
            conditions.append(getattr(model, term[1]) < binds.take())
        elif kind == "cf":
            conditions.append(_custom_condition(dialect, model, term[1], term[2], binds))
        else:  # a word of `q`: one of its alternatives matches
            either = []
            for ref, comparison in term[1]:
                taken = [binds.take() for _ in range(2 if comparison == "range" else 1)]
                either.append(search.alternative_condition(table, ref, comparison, taken, dialect))
            conditions.append(or_(*either) if either else false())
        index += 1
    return conditions, index


def _scope_condition(model: type[Any], kind: str, binds: _Binds) -> ColumnElement[bool]:
    """A ScopeRule's condition (its values: `ScopeRule.values`)."""
    department = binds.take() if kind == "department" else None
    owner, assignee = binds.take(), binds.take()
    own: ColumnElement[bool] = or_(model.owner_id == owner, model.assigned_to == assignee)
    if binds.literal and owner is None:  # without a user nothing is one's own
        own = false()
    return own if department is None else or_(model.department == department, own)


def _select(
    spec: EntitySpec, shape: Sequence[Any], binds: _Binds
) -> tuple[Select[Any], Select[Any]]:
    """The page's SELECT for a plan's shape, and the COUNT of what it pages through.

    SQLite pages in two steps, in one statement: the rowids of the page (narrow rows: the
    search indexes, the row's sort key and tombstone), then the API's columns of those rows
    only.  Read in one step, every row a search matches (hundreds for a short word) was
    formed into the API's text and sorted whole before 50 were kept.  The page's rowids come
    from a subquery in its order, and the rows are read by `CROSS JOIN` (SQLite runs the left
    side as the outer loop: the subquery's rows, in their order), so the page is not sorted
    a second time (an outer ORDER BY copied every formed row through a temporary B-tree:
    about a tenth of the statement).  PostgreSQL keeps the page's top rows in its top-N sort
    itself."""
    model = spec.model
    table = model.__table__
    dialect = shape[1]
    conditions, index = _where(spec, shape, binds)
    _, sort_name, descending = shape[index]
    sort_col: InstrumentedAttribute[Any] = getattr(model, sort_name)
    if index + 1 < len(shape) and shape[index + 1][0] == "after":
        key = tuple_(binds.take(sort_col.type), binds.take(model.id.type))
        position = tuple_(sort_col, model.id)
        conditions.append(position < key if descending else position > key)
    order = (sort_col.desc(), model.id.desc()) if descending else (sort_col, model.id)
    count = select(func.count()).select_from(table).where(*conditions)
    limit = binds.take(Integer())
    offset = binds.take(Integer()) if shape[-1][0] == "offset" else None
    columns = list_columns(spec, dialect)
    if dialect == "sqlite":
        rowid: ColumnElement[Any] = literal_column(f'"{table.name}".rowid')
        inner = select(rowid.label("page_rowid")).where(*conditions).order_by(*order)
        inner = inner.limit(limit)
        if offset is not None:
            inner = inner.offset(offset)
        page_rows = inner.subquery("page")
        joined = _SQLiteCrossJoin(page_rows, table, rowid == page_rows.c.page_rowid)
        return select(*columns).select_from(joined), count
    page = select(*columns).where(*conditions).order_by(*order).limit(limit)
    if offset is not None:
        page = page.offset(offset)
    return page, count


class _SQLiteCrossJoin(Join):
    """`left CROSS JOIN right ON ...`: SQLite never reorders a CROSS JOIN, so `left` is the
    outer loop and the rows come in its order (https://sqlite.org/optoverview.html, "Manual
    Control Of Query Plans Using CROSS JOIN")."""

    inherit_cache = True


@compiles(_SQLiteCrossJoin)
def _compile_cross_join(join: _SQLiteCrossJoin, compiler: SQLCompiler, **kw: Any) -> str:
    # the plain join's SQL (binds and the cartesian-product linter as SQLAlchemy does them);
    # its last " JOIN " is this join's own: the ON clause (a rowid equality) holds none
    plain_join: Any = compiler.visit_join  # untyped in SQLAlchemy
    head, keyword, tail = plain_join(join, **kw).rpartition(" JOIN ")
    assert keyword
    return f"{head} CROSS JOIN {tail}"


def planned_select(spec: EntitySpec, shape: tuple[Any, ...]) -> Select[Any]:
    """The SELECT of a page's shape with bind parameters for its values, built once per shape
    (SQLAlchemy keeps the statement's cache key and compiled form with it); run it with
    `ListPlan.parameters()`."""
    return _planned(spec, shape)[0]


def planned_count(spec: EntitySpec, shape: tuple[Any, ...]) -> Select[Any]:
    """How many rows the page's shape pages through (its conditions, the cursor's included)."""
    return _planned(spec, shape)[1]


def _planned(spec: EntitySpec, shape: tuple[Any, ...]) -> tuple[Select[Any], Select[Any]]:
    statements = _PLANNED.get(shape)
    if statements is None:
        if len(_PLANNED) >= 2048:  # shapes are few; a flood of odd ones only costs rebuilding
            _PLANNED.clear()
        statements = _PLANNED[shape] = _select(spec, shape, _Binds(None))
    return statements


_PLANNED: dict[tuple[Any, ...], tuple[Select[Any], Select[Any]]] = {}


def list_conditions(
    spec: EntitySpec,
    tenant_id: uuid.UUID,
    scope: ScopeRule,
    params: ListParams,
    definitions: Mapping[str, FieldDefinition],
    dialect: str,
    *,
    region: str = DEFAULT_REGION,
) -> list[ColumnElement[bool]]:
    """What rows a list (or an export) with these parameters selects, as conditions with their
    values in (`plan_list` with `paged=False`)."""
    plan = plan_list(
        spec, tenant_id, scope, params, definitions, dialect, region=region, paged=False
    )
    return _where(spec, plan.shape, _Binds(plan.values))[0]


def list_statement(
    spec: EntitySpec,
    tenant_id: uuid.UUID,
    scope: ScopeRule,
    params: ListParams,
    definitions: Mapping[str, FieldDefinition],
    dialect: str,
    *,
    region: str = DEFAULT_REGION,
) -> Select[Any]:
    """The SELECT a record list runs, built with its values in: the SQL of `planned_select`
    for the same plan.  Raises Invalid/BadRequest for parameters it cannot honour.  Pure:
    benchmarks run the very same statement through a bare handler."""
    plan = plan_list(spec, tenant_id, scope, params, definitions, dialect, region=region)
    return _select(spec, plan.shape, _Binds(plan.values))[0]


# -- normalisation (emails, phones) ---------------------------------------------------------

MAX_DUPLICATES = 20
# where a new record's duplicates are looked for
DUPLICATE_PEERS: dict[str, tuple[str, ...]] = {
    "accounts": ("accounts",),
    "contacts": ("contacts", "leads"),
    "leads": ("leads", "contacts"),
}


def identity_problems(
    spec: EntitySpec, merged: Mapping[str, Any], changed: Iterable[str] | None = None
) -> list[dict[str, str]]:
    """A contact or lead left with none of its `identity` fields (name, e-mail, phone...):
    one problem per field, all saying so.  `changed`: the fields an update sets; an update
    that touches none of them is not held to it (a record stored before the rule stays
    editable)."""
    if not spec.identity:
        return []
    if changed is not None and not set(changed) & set(spec.identity):
        return []
    for name in spec.identity:
        value = merged.get(name)
        if value is not None and (not isinstance(value, str) or value.strip()):
            return []
    message = f"a {spec.singular} needs at least one of: " + ", ".join(spec.identity)
    return [{"field": name, "message": message} for name in spec.identity]


def check_identity(
    spec: EntitySpec, merged: Mapping[str, Any], changed: Iterable[str] | None = None
) -> None:
    """`identity_problems` as a 422."""
    problems = identity_problems(spec, merged, changed)
    if problems:
        raise Invalid(f"Validation failed: {problems[0]['message']}", details=problems)


def normalise_email(value: str | None, field_name: str = "email") -> str | None:
    """The address as email-validator normalises it, lower-cased (so equality finds
    duplicates); blank is no address; an invalid one is a 422 naming the field."""
    if value is None or not value.strip():
        return None
    try:
        return normalised_email(value)
    except EmailNotValidError as exc:
        raise Invalid(
            f"Validation failed: {field_name}",
            details=[{"field": field_name, "message": str(exc)}],
        ) from None


def to_e164(raw: str | None, region: str) -> str | None:
    """E.164 of a phone as entered, read in the tenant's default region.  Anything that is not
    a valid number (notes such as "after 5pm", partial numbers) gives None: the phone is still
    stored as entered, because operators type extensions and remarks into phone fields and
    refusing the whole record for that loses more than it protects.  An extension ("x12")
    is dropped from the E.164 form, which has none."""
    if raw is None or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def tenant_region(session: Session, tenant_id: uuid.UUID) -> str:
    """tenants.settings["default_region"] (ISO 3166 alpha-2) when it names a region
    phonenumbers knows, else "US"."""
    settings = session.scalar(select(Tenant.settings).where(Tenant.id == tenant_id)) or {}
    region = settings.get("default_region") if isinstance(settings, dict) else None
    if isinstance(region, str) and region.strip().upper() in phonenumbers.SUPPORTED_REGIONS:
        return region.strip().upper()
    return DEFAULT_REGION


def _normalise_emails(spec: EntitySpec, values: dict[str, Any], prefix: str = "") -> None:
    if spec.normalised and "email" in values:
        values["email"] = normalise_email(values["email"], f"{prefix}email")


def _derive_phones(
    session: Session, spec: EntitySpec, tenant_id: uuid.UUID, changes: dict[str, Any]
) -> None:
    """Adds the E.164 form of every phone column the changes write."""
    given = [column for column in spec.phones if column in changes]
    if not given:
        return
    region = tenant_region(session, tenant_id)
    for column in given:
        raw = changes[column]
        if isinstance(raw, str) and not raw.strip():
            changes[column] = raw = None  # blank is no number, as a blank e-mail is none
        changes[spec.phones[column]] = to_e164(raw, region)


def display_name(row: Record) -> str | None:
    if isinstance(row, Account):
        return row.name
    if isinstance(row, Contact | Lead):
        name = " ".join(p for p in (row.first_name, row.last_name) if p)
        return name or row.company or row.email
    return None


def _prefixed(prefix: str, exc: Invalid) -> Invalid:
    """The same validation error with its fields named inside a nested body (`contact.x`)."""
    details = exc.details
    if isinstance(details, list):
        details = [
            {**d, "field": f"{prefix}.{d.get('field')}"} if isinstance(d, dict) else d
            for d in details
        ]
        fields = ", ".join(str(d.get("field")) for d in details if isinstance(d, dict))
        return Invalid(f"Validation failed: {fields}", details=details, code=exc.code)
    return Invalid(f"{prefix}: {exc.message}", details=details, code=exc.code)


# -- serialisation ------------------------------------------------------------------------


def record_view(spec: EntitySpec, row: Record) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row.id, "tenant_id": row.tenant_id}
    for name in spec.writable:
        attr = "metadata_" if name == "metadata" else name
        out[name] = getattr(row, attr)
    for derived in spec.phones.values():
        out[derived] = getattr(row, derived)
    out.update(
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )
    if isinstance(row, Lead):
        out.update(
            converted_at=row.converted_at,
            converted_contact_id=row.converted_contact_id,
            converted_account_id=row.converted_account_id,
        )
    return out


def _view_names(spec: EntitySpec) -> list[str]:
    names = ["id", "tenant_id", *spec.writable, *spec.phones.values(), "version", "created_at",
             "updated_at", "deleted_at"]  # fmt: skip
    if spec.model is Lead:
        names += ["converted_at", "converted_contact_id", "converted_account_id"]
    return names


def list_columns(spec: EntitySpec, dialect: str) -> list[ColumnElement[Any]]:
    """The columns a list selects, in `_view_names` order, as close to the API's JSON as the
    database can give them.  SQLite: UUIDs and timestamps come back as the API's text, formed
    by SQLite from the stored text (`_uuid_sql`, `_timestamp_sql`: no per-value UUID, datetime
    or regex work in Python), JSON documents as their stored text.  PostgreSQL: every value but
    text and integers comes back as the API's text (`::text`, `_pg_timestamp_sql`): the driver
    would otherwise build a UUID, datetime or Decimal per value, parse three JSON documents
    per row with the stdlib json module (~8% of a page's CPU), and orjson hand the driver's
    own UUID type back to Python.  `row_viewer` wraps the JSON text for orjson."""
    key = (spec.name, dialect)
    cached = _COLUMNS.get(key)
    if cached is None:
        table = spec.model.__table__
        cached = []
        for name in _view_names(spec):
            column = table.c[name]
            stored = f'"{table.name}"."{name}"'
            if dialect == "sqlite" and isinstance(column.type, Uuid) and name != "id":
                # stored hex; row_viewer dashes it from a memo (tenant, owners, assignees and
                # links repeat from row to row)
                cached.append(type_coerce(column, String()).label(name))
            elif dialect == "sqlite" and isinstance(column.type, Uuid):
                cached.append(literal_column(_uuid_sql(stored), String()).label(name))
            elif dialect == "sqlite" and isinstance(column.type, UTCDateTime):
                cached.append(literal_column(_timestamp_sql(stored), String()).label(name))
            elif dialect == "sqlite" and isinstance(column.type, JSON | Numeric | Date):
                # as stored: JSON text, a number, 'YYYY-MM-DD' (row_viewer)
                cached.append(type_coerce(column, String()).label(name))
            elif dialect == "postgresql" and isinstance(column.type, UTCDateTime):
                cached.append(literal_column(_pg_timestamp_sql(stored), String()).label(name))
            elif dialect == "postgresql" and isinstance(column.type, JSON | Uuid | Numeric | Date):
                # text: JSON documents, 8-4-4-4-12 ids, money at its scale ("12000.50"), dates
                cached.append(cast(column, Text()).label(name))
            else:
                cached.append(column)
        _COLUMNS[key] = cached
    return list(cached)


_COLUMNS: dict[tuple[str, str], list[ColumnElement[Any]]] = {}


def _dashed(value: str | None) -> str | None:
    """SQLite: a UUID's stored 32 hex digits in the API's 8-4-4-4-12 form, memoised."""
    if value is None:
        return None
    text = _DASHED.get(value)
    if text is None:
        if len(_DASHED) >= 100_000:
            _DASHED.clear()
        text = _DASHED[value] = (
            f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
        )
    return text


_DASHED: dict[str, str] = {}


def _uuid_sql(stored: str) -> str:
    """SQLite: a UUID stored as 32 hex digits, in the API's 8-4-4-4-12 form (NULL stays)."""
    return (
        f"substr({stored}, 1, 8) || '-' || substr({stored}, 9, 4) || '-' || "
        f"substr({stored}, 13, 4) || '-' || substr({stored}, 17, 4) || '-' || "
        f"substr({stored}, 21)"
    )


def _timestamp_sql(stored: str) -> str:
    """SQLite: a UTC time stored as 'YYYY-MM-DD HH:MM:SS[.ffffff]' in the API's ISO form, the
    fraction left out when it is zero, as orjson writes a datetime (NULL stays)."""
    day, clock = f"substr({stored}, 1, 10) || 'T' || ", f"substr({stored}, 12)"
    return (
        f"CASE WHEN rtrim(substr({stored}, 21), '0') = '' "
        f"THEN {day}substr({stored}, 12, 8) || '+00:00' "
        f"ELSE {day}{clock} || '+00:00' END"
    )


def _pg_timestamp_sql(stored: str) -> str:
    """PostgreSQL: a timestamptz in the API's ISO form in UTC, the fraction left out when it is
    zero, as orjson writes a datetime (NULL stays)."""
    utc = f"({stored} AT TIME ZONE 'UTC')"
    return (
        f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        f"CASE WHEN date_trunc('second', {stored}) = {stored} THEN '' "
        f"ELSE to_char({utc}, '.US') END || '+00:00'"
    )


def _json_text(value: str | None) -> Any:
    return None if value is None else orjson.Fragment(value)


def _fixed_point(scale: int) -> Callable[[Any], str | None]:
    form = f"%.{scale}f"

    def text(value: Any) -> str | None:
        return None if value is None else form % value

    return text


def row_viewer(spec: EntitySpec, dialect: str) -> Callable[[Any], dict[str, Any]]:
    """record_view for a result row of `list_statement` (column name -> value)."""
    key = (spec.name, dialect)
    cached = _VIEWERS.get(key)
    if cached is not None:
        return cached
    names = _view_names(spec)
    table = spec.model.__table__
    # the converter is generated as one dict display (`{"id": row[0], "tenant_id":
    # dashed(row[1]), ...}`), as dataclasses generate their __init__: a loop over the
    # converters and dict(zip(...)) cost about half again as much, 50 rows a page
    functions: dict[str, Callable[[Any], Any]] = {}
    entries: list[str] = []
    for index, name in enumerate(names):
        kind = table.c[name].type
        function: Callable[[Any], Any] | None = None
        if isinstance(kind, JSON):  # text on both backends (list_columns)
            function = _json_text
        elif dialect == "sqlite" and isinstance(kind, Uuid) and name != "id":
            function = _dashed
        elif dialect == "sqlite" and isinstance(kind, Numeric):
            # the text SQLAlchemy's Decimal of the stored number prints (money: "12000.50")
            function = _fixed_point(kind.scale or 0)
        value = f"row[{index}]"
        if function is not None:
            functions[f"f{index}"] = function
            value = f"f{index}({value})"
        assert name.isidentifier()
        entries.append(f"{name!r}: {value}")
    source = "def convert(row):\n    return {" + ", ".join(entries) + "}\n"
    namespace: dict[str, Any] = dict(functions)
    exec(compile(source, f"<row_viewer {spec.name} {dialect}>", "exec"), namespace)
    convert: Callable[[Any], dict[str, Any]] = namespace["convert"]
    _VIEWERS[key] = convert
    return convert


_VIEWERS: dict[tuple[str, str], Callable[[Any], dict[str, Any]]] = {}


# -- the service --------------------------------------------------------------------------


# the entities that carry communication text, and their text fields
COMMUNICATIONS: dict[str, frozenset[str]] = {
    "activities": frozenset({"subject", "description"}),
    "notes": frozenset({"title", "content"}),
}
# called with (session, tenant_id, entity, the written record's view)
CommunicationHook = Callable[[Session, uuid.UUID, str, Mapping[str, Any]], None]


class RecordService:
    def __init__(
        self,
        db: Database,
        custom_fields: CustomFieldService,
        modules: ModuleSettingsService,
        *,
        communications: CommunicationHook | None = None,
    ) -> None:
        self._db = db
        self._custom_fields = custom_fields
        self._modules = modules
        # activities and notes written (any path but the bulk import) go to C.A.R.E.'s
        # escalation detection, in the same transaction
        self._communications = communications

    async def _prepare(
        self, actor: Principal, tenant_id: uuid.UUID, entity: str, action: str
    ) -> EntitySpec:
        """Entity known, action allowed to the role, module enabled for the tenant."""
        spec = self.spec(entity)
        self._require(actor, spec, action)
        await self._modules.require_enabled(tenant_id, spec.name)
        return spec

    async def _check_stage(
        self, tenant_id: uuid.UUID, spec: EntitySpec, values: Mapping[str, Any]
    ) -> None:
        """Opportunity stages come from the tenant's `opportunities` module settings."""
        if spec.name == "opportunities" and values.get("stage") is not None:
            WriteContext(spec, [], await self._stages(tenant_id, spec)).check_stage(values)

    async def _stages(self, tenant_id: uuid.UUID, spec: EntitySpec) -> list[str]:
        if spec.name != "opportunities":
            return []
        stages = (await self._modules.settings_for(tenant_id, "opportunities")).get("stages")
        return list(stages or [])

    async def write_context(
        self, actor: Principal, tenant_id: uuid.UUID, entity: str, action: str
    ) -> WriteContext:
        """Entity known, `action` allowed, module enabled; with what the write validates by."""
        spec = await self._prepare(actor, tenant_id, entity, action)
        definitions = await self._custom_fields.definitions_for(tenant_id, spec.singular)
        return WriteContext(spec, definitions, await self._stages(tenant_id, spec))

    @staticmethod
    def spec(entity: str) -> EntitySpec:
        try:
            return SPECS[entity]
        except KeyError:
            raise NotFound(f"Unknown entity {entity}") from None

    # scope ---------------------------------------------------------------------------------
    @staticmethod
    def _scope(spec: EntitySpec, actor: Principal) -> list[ColumnElement[bool]]:
        """What the actor may see, beyond the tenant (which RLS and the queries fix)."""
        rule = scope_rule(actor)
        if not rule.kind:
            return []
        return [_scope_condition(spec.model, rule.kind, _Binds(rule.values()))]

    @staticmethod
    def _may_edit(actor: Principal, row: Record) -> bool:
        if actor.can(Capability.EDIT_ALL_RECORDS):
            return True
        mine = actor.user_id is not None and actor.user_id in (row.owner_id, row.assigned_to)
        if actor.can(Capability.EDIT_TEAM_RECORDS):
            return mine or (actor.department is not None and row.department == actor.department)
        return actor.can(Capability.EDIT_OWN_RECORDS) and mine

    def _require(self, actor: Principal, spec: EntitySpec, action: str) -> None:
        if not allows(actor, spec.name, action):
            raise PermissionDenied(
                f"Your role may not {action} {spec.name}", code="forbidden_action"
            )

    def _load(
        self,
        session: Session,
        spec: EntitySpec,
        actor: Principal,
        tenant_id: uuid.UUID,
        record_id: uuid.UUID,
        *,
        deleted: bool | None = False,
    ) -> Record:
        """The record within the actor's scope: live (`deleted=False`), deleted (True) or
        either (None); 404 otherwise."""
        model = spec.model
        condition = [model.id == record_id, model.tenant_id == tenant_id, *self._scope(spec, actor)]
        if deleted is not None:
            condition.append(
                model.deleted_at.is_not(None) if deleted else model.deleted_at.is_(None)
            )
        row: Record | None = session.scalar(select(model).where(*condition))
        if row is None:
            raise NotFound(f"{spec.singular.capitalize()} not found")
        return row

    # validation of links ---------------------------------------------------------------------
    @staticmethod
    def _check_links(
        session: Session, spec: EntitySpec, tenant_id: uuid.UUID, values: Mapping[str, Any]
    ) -> None:
        problems = []
        for column, target in spec.links.items():
            ref = values.get(column)
            if ref is not None and not _live(session, target, tenant_id, ref):
                problems.append(
                    {"field": column, "message": f"no such {target.__tablename__[:-1]}"}
                )
        related_type = values.get("related_type")
        related_id = values.get("related_id")
        if related_type is not None or related_id is not None:
            related: type[Any] | None = RELATED_TYPES.get(related_type) if related_type else None
            if related_type is not None and related is None:
                problems.append(
                    {"field": "related_type", "message": f"must be one of {sorted(RELATED_TYPES)}"}
                )
            elif (related_type is None) != (related_id is None):
                problems.append(
                    {"field": "related_id", "message": "related_type and related_id go together"}
                )
            elif related is not None and not _live(session, related, tenant_id, related_id):
                problems.append({"field": "related_id", "message": f"no such {related_type}"})
        if problems:
            raise Invalid(
                "Validation failed: " + ", ".join(p["field"] for p in problems), details=problems
            )

    @staticmethod
    def _check_link_scope(
        session: Session,
        spec: EntitySpec,
        actor: Principal,
        tenant_id: uuid.UUID,
        values: Mapping[str, Any],
        given: Iterable[str],
    ) -> None:
        """A link the actor gives (a new or changed `account_id`, `related_id`, ...) points at
        a record the actor can see: an employee cannot attach a note to, or file a contact
        under, a record outside their scope.  The answer is the one for a record that does
        not exist, so a refusal tells nothing of other people's records.  Links already
        stored are not judged again (an admin may have filed the record under one)."""
        rule = scope_rule(actor)
        if not rule.kind:
            return
        wanted: list[tuple[str, type[Any], Any, str]] = []
        given = set(given)
        for column, target in spec.links.items():
            if column in given and values.get(column) is not None:
                wanted.append((column, target, values[column], target.__tablename__[:-1]))
        related = RELATED_TYPES.get(str(values.get("related_type") or ""))
        linked = values.get("related_id")
        if related is not None and linked is not None and {"related_id", "related_type"} & given:
            wanted.append(("related_id", related, linked, str(values["related_type"])))
        problems = []
        for column, target, ref, name in wanted:
            target_spec = SPEC_BY_MODEL.get(target)
            conditions = RecordService._scope(target_spec, actor) if target_spec else []
            if (
                conditions
                and session.scalar(
                    select(target.id).where(
                        target.id == ref, target.tenant_id == tenant_id, *conditions
                    )
                )
                is None
            ):
                problems.append({"field": column, "message": f"no such {name}"})
        if problems:
            raise Invalid(
                "Validation failed: " + ", ".join(p["field"] for p in problems), details=problems
            )

    @staticmethod
    def _check_people(
        session: Session, tenant_id: uuid.UUID, values: Mapping[str, Any], actor: Principal
    ) -> None:
        """owner_id and assigned_to name live users of the tenant (or the actor itself: a
        superadmin working in the tenant owns what it creates)."""
        problems = []
        for column in ("owner_id", "assigned_to"):
            ref = values.get(column)
            if ref is None or ref == actor.user_id:
                continue
            found = session.scalar(
                select(User.id).where(
                    User.id == ref, User.tenant_id == tenant_id, User.deleted_at.is_(None)
                )
            )
            if found is None:
                problems.append({"field": column, "message": "no such user in this tenant"})
        if problems:
            raise Invalid(
                "Validation failed: " + ", ".join(p["field"] for p in problems), details=problems
            )

    # the one mutation path --------------------------------------------------------------------
    @staticmethod
    def _mutate(session: Session, row: Record, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply `changes` to `row`; returns {field: (old, new)} of what really changed.
        Version and updated_at are bumped, and the sync change log written, by the unit of
        work's flush hooks."""
        changed = RecordService._apply(row, changes)
        session.flush()
        return changed

    @staticmethod
    def _apply(row: Record, changes: Mapping[str, Any]) -> dict[str, Any]:
        """`_mutate` without the flush: for many records changed at once, flushed together
        (`record_io.update_records`)."""
        changed: dict[str, Any] = {}
        for name, value in changes.items():
            attr = "metadata_" if name == "metadata" else name
            old = getattr(row, attr)
            if old != value:
                setattr(row, attr, value)
                changed[name] = (old, value)
        return changed

    # create ----------------------------------------------------------------------------------
    @staticmethod
    def _creation_values(
        actor: Principal,
        spec: EntitySpec,
        values: Mapping[str, Any],
        definitions: Any,
        defaults: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A new record's columns: validated custom fields, required fields present, emails
        normalised, the owner and department the actor may give it.  `defaults` are trusted
        values (a converted lead's owner) that the actor's own `values` override."""
        data = dict(values)
        _normalise_emails(spec, data)
        data["custom_fields"] = validate_values(
            definitions, data.get("custom_fields") or {}, partial=False
        )
        missing = [f for f in spec.required if data.get(f) in (None, "")]
        if missing:
            raise Invalid(
                "Validation failed: " + ", ".join(missing),
                details=[{"field": f, "message": "is required"} for f in missing],
            )
        check_identity(spec, data)
        # employees and managers create records for themselves (or hand them to a peer as
        # assignee); ownership of others' records is an admin's to give
        if not actor.can(Capability.EDIT_ALL_RECORDS) and data.get("owner_id") not in (
            None,
            actor.user_id,
        ):
            raise PermissionDenied("Only administrators may create records owned by others")
        for name, value in (defaults or {}).items():
            if data.get(name) is None:
                data[name] = value
        data.setdefault("owner_id", actor.user_id)
        if data.get("department") is None and actor.department is not None:
            data["department"] = actor.department
        return data

    def _insert(
        self, session: Session, spec: EntitySpec, tenant_id: uuid.UUID, data: Mapping[str, Any]
    ) -> Record:
        changes = dict(data)
        self._check_links(session, spec, tenant_id, changes)
        _derive_phones(session, spec, tenant_id, changes)
        row: Record = spec.model(tenant_id=tenant_id)
        session.add(row)
        self._mutate(session, row, changes)
        return row

    def _duplicates(
        self,
        session: Session,
        spec: EntitySpec,
        actor: Principal,
        tenant_id: uuid.UUID,
        data: Mapping[str, Any],
        *,
        exclude: uuid.UUID | None = None,
        among: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Live records with the same normalised email or the same E.164 phone, within the
        actor's data scope (so nothing outside it is revealed): among the entity itself and,
        for people, the other kind of person — a new contact is checked against open leads and
        a new lead against contacts (`among` narrows that)."""
        email = data.get("email")
        phones = {data[c] for c in spec.phones.values() if data.get(c)}
        if not email and not phones:
            return []
        found: list[dict[str, Any]] = []
        for name in among or DUPLICATE_PEERS.get(spec.name, (spec.name,)):
            peer = SPECS[name]
            model = peer.model
            matchers: list[ColumnElement[bool]] = []
            if email:
                matchers.append(model.email == email)
            if phones:
                matchers += [getattr(model, c).in_(phones) for c in peer.phones.values()]
            conditions = [
                model.tenant_id == tenant_id,
                model.deleted_at.is_(None),
                or_(*matchers),
                *self._scope(peer, actor),
            ]
            if exclude is not None:
                conditions.append(model.id != exclude)
            if model is Lead:  # a converted lead lives on as its contact
                conditions.append(model.converted_at.is_(None))
            query = (
                select(model)
                .where(*conditions)
                .order_by(model.created_at)
                .limit(MAX_DUPLICATES - len(found))
            )
            for row in session.scalars(query):
                matched = ["email"] if email and row.email == email else []
                matched += [c for c in peer.phones.values() if getattr(row, c) in phones]
                found.append(
                    {
                        "id": row.id,
                        "entity": peer.singular,
                        "name": display_name(row),
                        "email": row.email,
                        "phone": row.phone,
                        "matched_on": matched,
                    }
                )
            if len(found) >= MAX_DUPLICATES:
                break
        return found

    def changed_duplicates(
        self,
        session: Session,
        spec: EntitySpec,
        actor: Principal,
        tenant_id: uuid.UUID,
        row: Record,
        changes: Mapping[str, Any],
    ) -> list[dict[str, Any]]:
        """Other records like `row` by the e-mail or E.164 phones `changes` give it (phones
        already derived).  Values the record keeps are not looked at again: a duplicate
        accepted at its create does not block every later edit."""
        if not spec.normalised:
            return []
        probe = {
            name: changes[name]
            for name in ("email", *spec.phones.values())
            if changes.get(name) and changes[name] != getattr(row, name)
        }
        if not probe:
            return []
        return self._duplicates(session, spec, actor, tenant_id, probe, exclude=row.id)

    async def create(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        entity: str,
        values: Mapping[str, Any],
        *,
        confirm_duplicate: bool = False,
    ) -> dict[str, Any]:
        """A new record.  Accounts, contacts and leads whose email or phone matches a live
        record the actor can see are refused with 409 `possible_duplicates` (the matches in
        `details`) unless `confirm_duplicate`."""
        context = await self.write_context(actor, tenant_id, entity, "create")
        data = self.creation_data(context, actor, values)
        return await self._db.run(
            lambda session: self.create_in(
                session, context, actor, tenant_id, data, confirm_duplicate=confirm_duplicate
            ),
            tenant_id=tenant_id,
            actor=_by(actor),
        )

    def creation_data(
        self, context: WriteContext, actor: Principal, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Checks a new record's values (stage, custom fields, required, owner) before any
        transaction; returns the columns to write."""
        context.check_stage(values)
        return self._creation_values(actor, context.spec, values, context.definitions)

    def create_in(
        self,
        session: Session,
        context: WriteContext,
        actor: Principal,
        tenant_id: uuid.UUID,
        data: Mapping[str, Any],
        *,
        confirm_duplicate: bool = False,
        record_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        """Writes a record from `creation_data` in the caller's transaction (`record_id`: a
        client-generated id, from sync pushes)."""
        spec = context.spec
        if spec.normalised and not confirm_duplicate:
            probe = dict(data)
            _derive_phones(session, spec, tenant_id, probe)
            matches = self._duplicates(session, spec, actor, tenant_id, probe)
            if matches:
                raise Conflict(
                    f"Possible duplicate {spec.name}: repeat with ?confirm_duplicate=true"
                    " to create it anyway",
                    code="possible_duplicates",
                    details=matches,
                )
        if record_id is not None and session.get(spec.model, record_id) is not None:
            raise Conflict(f"A {spec.singular} with id {record_id} exists", code="id_taken")
        self._check_people(session, tenant_id, data, actor)
        self._check_link_scope(session, spec, actor, tenant_id, data, data.keys())
        values = dict(data)
        if record_id is not None:
            values["id"] = record_id
        view = record_view(spec, self._insert(session, spec, tenant_id, values))
        if self._communications is not None and spec.name in COMMUNICATIONS:
            self._communications(session, tenant_id, spec.name, view)
        return view

    # read ------------------------------------------------------------------------------------
    async def get(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        entity: str,
        record_id: uuid.UUID,
        *,
        include_deleted: bool = False,
    ) -> dict[str, Any]:
        """The record within the actor's scope; a deleted one only with `include_deleted`."""
        spec = await self._prepare(actor, tenant_id, entity, "read")
        deleted = None if include_deleted else False
        return await self._db.run(
            lambda s: record_view(
                spec, self._load(s, spec, actor, tenant_id, record_id, deleted=deleted)
            ),
            tenant_id=tenant_id,
            write=False,
            quick=True,
        )

    async def list(
        self, actor: Principal, tenant_id: uuid.UUID, entity: str, params: ListParams
    ) -> RecordPage:
        spec = await self._prepare(actor, tenant_id, entity, "read")
        definitions: dict[str, FieldDefinition] = {}
        if params.custom:
            definitions = {
                d.field_name: d
                for d in await self._custom_fields.definitions_for(tenant_id, spec.singular)
            }
        rule = scope_rule(actor)
        dialect = self._db.dialect
        phone_search = params.match == "prefix" and any(
            search.is_phone_word(w) for w in search.words(params.q)
        )
        # checks the parameters before anything is read
        plan = plan_list(spec, tenant_id, rule, params, definitions, dialect)
        limit = max(1, min(params.limit, MAX_LIMIT))
        sort_name, descending = parse_sort(spec, params.sort)
        keyset = not spec.model.__table__.c[sort_name].nullable
        view = row_viewer(spec, dialect)

        def read(session: Session) -> RecordPage:
            current = plan
            if phone_search:  # phone prefixes depend on the tenant's country
                current = plan_list(
                    spec, tenant_id, rule, params, definitions, dialect,
                    region=tenant_region(session, tenant_id),
                )  # fmt: skip
            statement = planned_select(spec, current.shape)
            values = current.parameters()
            # plain rows, not ORM objects: a page is read-only, and building 50 identity-
            # mapped instances costs ten times the query
            rows = select_rows(session, statement, values)
            more = len(rows) > limit
            items = [view(r) for r in rows[:limit]]
            next_cursor = (
                list_cursor(items[-1], sort_name, descending) if more and items and keyset else None
            )
            total = -1
            if params.include_total:
                total = int(session.scalar(planned_count(spec, current.shape), values) or 0)
            return RecordPage(Page(items, total, limit, params.offset), next_cursor)

        # a page is a bounded indexed read (the database moves one that overruns to a thread);
        # a count, a contains-search or a deep offset reads rows in proportion to the tenant
        quick = not (params.include_total or params.match == "contains" or params.offset > 1000)
        return await self._db.run(read, tenant_id=tenant_id, write=False, quick=quick)

    # update ----------------------------------------------------------------------------------
    async def update(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        entity: str,
        record_id: uuid.UUID,
        values: Mapping[str, Any],
        *,
        replace: bool,
        base_version: int | None = None,
        confirm_duplicate: bool = False,
    ) -> dict[str, Any]:
        """PATCH (`replace=False`) changes what is given; PUT (`replace=True`) also clears
        every writable field not given.  `base_version` (If-Match) refuses a stale write.  An
        e-mail or phone changed to one of another record the actor can see is refused with
        409 `possible_duplicates`, as a create is, unless `confirm_duplicate`."""
        context = await self.write_context(actor, tenant_id, entity, "update")
        data = self.update_data(context, values, replace=replace)
        return await self._db.run(
            lambda session: self.update_in(
                session, context, actor, tenant_id, record_id, data,
                replace=replace, base_version=base_version,
                check_duplicates=not confirm_duplicate,
            ),
            tenant_id=tenant_id, actor=_by(actor),
        )  # fmt: skip

    def update_data(
        self, context: WriteContext, values: Mapping[str, Any], *, replace: bool
    ) -> dict[str, Any]:
        """Checks an update's values before any transaction (emails, stage, required)."""
        spec = context.spec
        data = cleared_to_defaults(spec, values)
        _normalise_emails(spec, data)
        context.check_stage(data)
        if replace:
            missing = [f for f in spec.required if data.get(f) in (None, "")]
            if missing:
                raise Invalid(
                    "Validation failed: " + ", ".join(missing),
                    details=[{"field": f, "message": "is required"} for f in missing],
                )
        else:
            blanked = [f for f in spec.required if f in data and data[f] in (None, "")]
            if blanked:
                raise Invalid(
                    "Validation failed: " + ", ".join(blanked),
                    details=[{"field": f, "message": "cannot be empty"} for f in blanked],
                )
        return data

    def load_for_edit(
        self,
        session: Session,
        spec: EntitySpec,
        actor: Principal,
        tenant_id: uuid.UUID,
        record_id: uuid.UUID,
        *,
        deleted: bool = False,
    ) -> Record:
        """The record, if the actor can see (404 otherwise) and edit it (403 otherwise)."""
        row = self._load(session, spec, actor, tenant_id, record_id, deleted=deleted)
        if not self._may_edit(actor, row):
            raise PermissionDenied(f"You may not edit this {spec.singular}")
        return row

    def update_in(
        self,
        session: Session,
        context: WriteContext,
        actor: Principal,
        tenant_id: uuid.UUID,
        record_id: uuid.UUID,
        data: Mapping[str, Any],
        *,
        replace: bool = False,
        base_version: int | None = None,
        row: Record | None = None,
        check_duplicates: bool = False,
    ) -> dict[str, Any]:
        """Applies `update_data` in the caller's transaction (`row`: already loaded with
        load_for_edit).  `check_duplicates`: the API's duplicate rule for a changed e-mail or
        phone (sync pushes come confirmed by the desktop, as their creates do)."""
        spec = context.spec
        if row is None:
            row = self.load_for_edit(session, spec, actor, tenant_id, record_id)
        if base_version is not None and row.version != base_version:
            raise _stale(spec, row.version)
        if (
            isinstance(row, Lead)
            and row.converted_at is not None
            and data.get("status", "converted") != "converted"
        ):
            # its contact, account and opportunity exist: it cannot be converted again
            raise Invalid(
                "Validation failed: status",
                details=[{"field": "status", "message": "a converted lead stays converted"}],
            )
        changes = dict(data)
        if replace or "custom_fields" in changes:
            changes["custom_fields"] = validate_values(
                context.definitions,
                changes.get("custom_fields") or {},
                partial=not replace,
                existing=row.custom_fields,
            )
        if replace:
            for name in spec.writable:
                if name not in changes and name not in ("owner_id", "department"):
                    changes[name] = _empty(spec, name)
        if (
            "owner_id" in changes
            and changes["owner_id"] != row.owner_id
            and not actor.can(Capability.EDIT_ALL_RECORDS)
        ):
            raise PermissionDenied("Only administrators may change a record's owner")
        stored = record_view(spec, row)
        merged = {**stored, **changes}
        check_identity(spec, merged, None if replace else changes)
        self._check_links(session, spec, tenant_id, merged)
        self._check_link_scope(
            session, spec, actor, tenant_id, merged, _changed_keys(stored, changes)
        )
        self._check_people(session, tenant_id, changes, actor)
        _derive_phones(session, spec, tenant_id, changes)
        if check_duplicates:
            matches = self.changed_duplicates(session, spec, actor, tenant_id, row, changes)
            if matches:
                raise Conflict(
                    f"Possible duplicate {spec.name}: repeat with ?confirm_duplicate=true"
                    " to save it anyway",
                    code="possible_duplicates",
                    details=matches,
                )
        self._mutate(session, row, changes)
        view = record_view(spec, row)
        if (
            self._communications is not None
            and spec.name in COMMUNICATIONS
            and COMMUNICATIONS[spec.name] & set(changes)
        ):
            self._communications(session, tenant_id, spec.name, view)
        return view

    # delete / restore ------------------------------------------------------------------------
    async def delete(
        self, actor: Principal, tenant_id: uuid.UUID, entity: str, record_id: uuid.UUID
    ) -> dict[str, Any]:
        spec = await self._prepare(actor, tenant_id, entity, "delete")
        return await self._db.run(
            lambda session: self.delete_in(session, spec, actor, tenant_id, record_id),
            tenant_id=tenant_id,
            actor=_by(actor),
        )

    def delete_in(
        self,
        session: Session,
        spec: EntitySpec,
        actor: Principal,
        tenant_id: uuid.UUID,
        record_id: uuid.UUID,
    ) -> dict[str, Any]:
        """Soft delete (the tombstone syncs) in the caller's transaction."""
        row = self._load(session, spec, actor, tenant_id, record_id)
        row.deleted_at = utcnow()
        session.flush()
        return record_view(spec, row)

    async def restore(
        self, actor: Principal, tenant_id: uuid.UUID, entity: str, record_id: uuid.UUID
    ) -> dict[str, Any]:
        spec = self.spec(entity)
        if not allows(actor, spec.name, "delete"):  # who may delete may restore
            raise PermissionDenied(
                f"Your role may not restore {spec.name} (restoring needs the right to delete)",
                code="forbidden_action",
            )
        spec = await self._prepare(actor, tenant_id, entity, "delete")

        def write(session: Session) -> dict[str, Any]:
            row = self._load(session, spec, actor, tenant_id, record_id, deleted=True)
            row.deleted_at = None
            session.flush()
            return record_view(spec, row)

        return await self._db.run(write, tenant_id=tenant_id, actor=_by(actor))

    # merge -----------------------------------------------------------------------------------
    def _repoint(
        self, session: Session, tenant_id: uuid.UUID, singular: str, old: uuid.UUID, new: uuid.UUID
    ) -> dict[str, int]:
        """Every row linking to `old` links to `new` instead (deleted rows too, so a restore
        keeps its link); counts per table."""
        targets: list[tuple[type[Any], str, ColumnElement[bool] | None]] = [
            (Activity, "related_id", Activity.related_type == singular),
            (Note, "related_id", Note.related_type == singular),
        ]
        if singular == "account":
            targets += [
                (Contact, "account_id", None),
                (Opportunity, "account_id", None),
                (Lead, "converted_account_id", None),
            ]
        elif singular == "contact":
            targets += [(Opportunity, "contact_id", None), (Lead, "converted_contact_id", None)]
        elif singular == "lead":
            targets += [(Opportunity, "lead_id", None)]
        counts: dict[str, int] = {}
        for model, column, extra in targets:
            conditions = [model.tenant_id == tenant_id, getattr(model, column) == old]
            if extra is not None:
                conditions.append(extra)
            rows = session.scalars(select(model).where(*conditions)).all()
            for row in rows:
                self._mutate(session, row, {column: new})
            table = model.__tablename__
            counts[table] = counts.get(table, 0) + len(rows)
        return counts

    async def merge(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        entity: str,
        record_id: uuid.UUID,
        duplicate_id: uuid.UUID,
    ) -> dict[str, Any]:
        """Merge `duplicate_id` into `record_id` in one transaction: the record's empty fields
        are filled from the duplicate, tags united, custom fields and metadata merged (the
        record wins), every activity, note and link re-pointed, then the duplicate is soft
        deleted with metadata.merged_into (restorable).  Both must be editable by the actor."""
        spec = await self._prepare(actor, tenant_id, entity, "update")
        if not spec.normalised:
            raise NotFound(f"{spec.name} cannot be merged")
        if record_id == duplicate_id:
            raise Invalid(
                "A record cannot be merged into itself",
                details=[{"field": "duplicate_id", "message": "must name another record"}],
            )

        def write(session: Session) -> dict[str, Any]:
            row = self._load(session, spec, actor, tenant_id, record_id)
            duplicate = self._load(session, spec, actor, tenant_id, duplicate_id)
            for target in (row, duplicate):
                if not self._may_edit(actor, target):
                    raise PermissionDenied(f"You may not edit this {spec.singular}")
            changes: dict[str, Any] = {}
            for name in spec.fields:
                if name == "tags":
                    continue
                mine, theirs = getattr(row, name), getattr(duplicate, name)
                if mine in (None, "") and theirs not in (None, ""):
                    changes[name] = theirs
                    if name in spec.phones:
                        changes[spec.phones[name]] = getattr(duplicate, spec.phones[name])
            tags = [*(getattr(row, "tags", None) or []), *(getattr(duplicate, "tags", None) or [])]
            changes["tags"] = list(dict.fromkeys(tags))
            changes["custom_fields"] = {**duplicate.custom_fields, **row.custom_fields}
            metadata = {**duplicate.metadata_, **row.metadata_}
            metadata.pop("merged_into", None)
            merged_from = list(row.metadata_.get("merged_from") or [])
            metadata["merged_from"] = [*merged_from, str(duplicate.id)]
            changes["metadata"] = metadata
            if row.assigned_to is None and duplicate.assigned_to is not None:
                changes["assigned_to"] = duplicate.assigned_to
            self._mutate(session, row, changes)
            counts = self._repoint(session, tenant_id, spec.singular, duplicate.id, row.id)
            self._mutate(
                session,
                duplicate,
                {
                    "metadata": {**duplicate.metadata_, "merged_into": str(row.id)},
                    "deleted_at": utcnow(),
                },
            )
            return {"record": record_view(spec, row), "merged_id": duplicate.id,
                    "repointed": counts}  # fmt: skip

        return await self._db.run(write, tenant_id=tenant_id, actor=_by(actor))

    # lead conversion ---------------------------------------------------------------------------
    async def convert_lead(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        lead_id: uuid.UUID,
        *,
        contact: Mapping[str, Any] | None = None,
        account: Mapping[str, Any] | None = None,
        account_id: uuid.UUID | None = None,
        opportunity: Mapping[str, Any] | None = None,
        confirm_duplicate: bool = False,
    ) -> dict[str, Any]:
        """Convert a lead, in ONE transaction (any failure writes nothing): a contact from
        the lead's names, email, phone, title and company (plus `contact` overrides); an
        account from its company (plus `account` overrides) unless `account_id` names an
        existing one, none when there is neither; an opportunity only when `opportunity` is
        given.  The lead is marked converted and linked to both.  Its activities and notes
        stay on the lead (its history; the lead remains readable) and are returned."""
        leads = await self._prepare(actor, tenant_id, "leads", "update")
        contacts = await self._prepare(actor, tenant_id, "contacts", "create")
        accounts = SPECS["accounts"]
        # the links between the new records are the conversion's to make: a value given for
        # one would be overwritten, and account_id beside account would leave one unused
        set_here = [
            f"{prefix}.{name}"
            for prefix, values, names in (
                ("contact", contact, ("account_id",)),
                ("opportunity", opportunity, ("lead_id", "contact_id", "account_id")),
            )
            for name in names
            if values is not None and name in values
        ]
        if account_id is not None and account:
            set_here.append("account")
        if set_here:
            raise Invalid(
                "Validation failed: " + ", ".join(set_here),
                details=[
                    {
                        "field": name,
                        "message": "give either account_id or account, not both"
                        if name == "account"
                        else "set by the conversion (name an existing account with account_id)",
                    }
                    for name in set_here
                ],
            )
        account_refusal: Exception | None = None
        if account_id is not None:
            await self._prepare(actor, tenant_id, "accounts", "read")
        else:
            try:  # only needed when an account will be created (the lead has a company)
                await self._prepare(actor, tenant_id, "accounts", "create")
            except (PermissionDenied, NotFound) as exc:
                account_refusal = exc
        opportunities = SPECS["opportunities"]
        stages: list[str] = []
        if opportunity is not None:
            await self._prepare(actor, tenant_id, "opportunities", "create")
            try:
                await self._check_stage(tenant_id, opportunities, opportunity)
            except Invalid as exc:
                raise _prefixed("opportunity", exc) from None
            stages = list(
                (await self._modules.settings_for(tenant_id, "opportunities")).get("stages") or []
            )
        definitions = {
            spec.name: await self._custom_fields.definitions_for(tenant_id, spec.singular)
            for spec in (contacts, accounts, opportunities)
        }

        def build(
            session: Session,
            spec: EntitySpec,
            prefix: str,
            values: Mapping[str, Any],
            defaults: dict[str, Any],
        ) -> dict[str, Any]:
            try:
                built = self._creation_values(
                    actor, spec, {**{k: v for k, v in defaults.items() if k in spec.writable
                                     and v not in (None, "", [])}, **values},
                    definitions[spec.name], defaults=ownership,
                )  # fmt: skip
                # owners and assignees given in the overrides are the tenant's, as on create
                # (the lead's own, taken by default, are not checked again)
                given = {k: built.get(k) for k in ("owner_id", "assigned_to") if k in values}
                self._check_people(session, tenant_id, given, actor)
            except Invalid as exc:
                raise _prefixed(prefix, exc) from None
            return built

        ownership: dict[str, Any] = {}

        def write(session: Session) -> dict[str, Any]:
            lead = self._load(session, leads, actor, tenant_id, lead_id)
            assert isinstance(lead, Lead)
            if not self._may_edit(actor, lead):
                raise PermissionDenied("You may not edit this lead")
            if lead.converted_at is not None or lead.status == "converted":
                raise Conflict("This lead is already converted", code="already_converted",
                               details={"converted_contact_id": lead.converted_contact_id,
                                        "converted_account_id": lead.converted_account_id})  # fmt: skip
            # the new records belong to whoever owns the lead, so its owner keeps them in sight
            ownership.update(
                owner_id=lead.owner_id, assigned_to=lead.assigned_to, department=lead.department
            )
            lead_name = display_name(lead) or "Lead"
            account_row: Record | None = None
            if account_id is not None:
                account_row = self._load(session, accounts, actor, tenant_id, account_id)
            elif lead.company or (account and account.get("name")):
                if account_refusal is not None:
                    raise account_refusal
                values = build(session, accounts, "account", account or {},
                               {"name": lead.company, "email": None, "phone": lead.phone})  # fmt: skip
                account_row = self._insert(session, accounts, tenant_id, values)
            elif account:
                raise Invalid("Validation failed: account.name",
                              details=[{"field": "account.name", "message": "is required (the lead has no company)"}])  # fmt: skip
            contact_values = build(
                session, contacts, "contact", contact or {},
                {"first_name": lead.first_name, "last_name": lead.last_name, "email": lead.email,
                 "phone": lead.phone, "title": lead.title, "company": lead.company,
                 "lead_source": lead.source, "tags": lead.tags},
            )  # fmt: skip
            if account_row is not None:
                contact_values["account_id"] = account_row.id
            if not confirm_duplicate:
                probe = dict(contact_values)
                _derive_phones(session, contacts, tenant_id, probe)
                matches = self._duplicates(
                    session, contacts, actor, tenant_id, probe, among=("contacts",)
                )
                if matches:
                    raise Conflict(
                        "Possible duplicate contacts: repeat with confirm_duplicate=true to"
                        " convert anyway",
                        code="possible_duplicates",
                        details=matches,
                    )
            try:
                contact_row = self._insert(session, contacts, tenant_id, contact_values)
            except Invalid as exc:
                raise _prefixed("contact", exc) from None
            opportunity_row: Record | None = None
            if opportunity is not None:
                opportunity_values = build(
                    session, opportunities, "opportunity", opportunity,
                    {"name": f"{lead.company or lead_name} opportunity", "amount": lead.value,
                     "stage": stages[0] if stages else None},
                )  # fmt: skip
                opportunity_values.update(
                    lead_id=lead.id,
                    contact_id=contact_row.id,
                    account_id=account_row.id if account_row is not None else None,
                )
                opportunity_row = self._insert(
                    session, opportunities, tenant_id, opportunity_values
                )
            self._mutate(
                session,
                lead,
                {
                    "status": "converted",
                    "converted_at": utcnow(),
                    "converted_contact_id": contact_row.id,
                    "converted_account_id": account_row.id if account_row is not None else None,
                },
            )
            history: dict[str, list[dict[str, Any]]] = {}
            for name in ("activities", "notes"):
                spec = SPECS[name]
                model = spec.model
                rows = session.scalars(
                    select(model)
                    .where(
                        model.tenant_id == tenant_id,
                        model.related_type == "lead",
                        model.related_id == lead.id,
                        model.deleted_at.is_(None),
                        *self._scope(spec, actor),
                    )
                    .order_by(model.created_at)
                ).all()
                history[name] = [record_view(spec, r) for r in rows]
            return {
                "lead": record_view(leads, lead),
                "contact": record_view(contacts, contact_row),
                "account": record_view(accounts, account_row) if account_row is not None else None,
                "opportunity": record_view(opportunities, opportunity_row)
                if opportunity_row is not None
                else None,
                **history,
            }

        return await self._db.run(write, tenant_id=tenant_id, actor=_by(actor))


def _custom_condition(
    dialect: str, model: type[Any], name: str, field_type: str, binds: _Binds
) -> ColumnElement[bool]:
    """custom_fields[name] equals the (normalised) value; a multiselect holds it."""
    condition: ColumnElement[bool]
    if field_type == "multiselect":
        if dialect == "postgresql":
            held = func.jsonb_build_array(binds.take(String()))
            condition = model.custom_fields.op("->")(name).op("@>")(held)
        else:
            items = func.json_each(model.custom_fields, f"$.{name}").table_valued("value")
            condition = exists(select(items.c.value).where(items.c.value == binds.take()))
    elif field_type == "boolean":
        condition = model.custom_fields[name].as_boolean() == binds.take()
    elif field_type == "number":
        condition = model.custom_fields[name].as_float() == binds.take()
    else:
        condition = model.custom_fields[name].as_string() == binds.take()
    return condition


def _by(actor: Principal) -> ChangeContext:
    """The change-log stamp of a write made through the API by `actor`."""
    return ChangeContext(actor.user_id)


def _stale(spec: EntitySpec, current: int) -> Exception:
    from aisha_server.errors import Conflict

    return Conflict(
        f"This {spec.singular} was changed by someone else (now version {current})",
        code="version_conflict",
        details={"current_version": current},
    )


def _live(session: Session, table: type[Any], tenant_id: uuid.UUID, ref: Any) -> bool:
    return (
        session.scalar(
            select(table.id).where(
                and_(table.id == ref, table.tenant_id == tenant_id, table.deleted_at.is_(None))
            )
        )
        is not None
    )


def _empty(spec: EntitySpec, name: str) -> Any:
    """What a PUT leaves in a field it does not mention: the column's default, else null."""
    column = spec.model.__table__.c["metadata" if name == "metadata" else name]
    default = column.default
    if default is not None and default.is_scalar:
        return default.arg
    if default is not None and default.is_callable:
        return default.arg(None)
    return None


def _changed_keys(stored: Mapping[str, Any], changes: Mapping[str, Any]) -> list[str]:
    """The fields whose new value differs from the stored one (ids compared as text)."""
    return [k for k, v in changes.items() if str(stored.get(k)) != str(v)]


def cleared_to_defaults(spec: EntitySpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """An update's values with null for a field that has a default (tags, metadata) read as
    that default, as a create and a PUT store it: a PATCH `{"tags": null}` clears the tags
    rather than leaving a null that no other write makes."""
    data = dict(values)
    for name, value in values.items():
        if value is None and name in spec.writable:
            empty = _empty(spec, name)
            if empty is not None:
                data[name] = empty
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return value


def _coerce(column: InstrumentedAttribute[Any], value: Any) -> Any:
    """A cursor's sort value back in the column's Python type."""
    if value is None:
        return None
    python_type: Callable[..., Any] | None
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = None
    if python_type is datetime:
        at = datetime.fromisoformat(str(value))
        if at.tzinfo is None:  # every cursor this server makes carries its offset
            raise ValueError("a cursor's time without an offset")
        return at
    if python_type is date:
        return date.fromisoformat(str(value))
    if python_type is Decimal:
        number = Decimal(str(value))
        if not number.is_finite():
            raise ValueError("not a finite number")
        return number
    if python_type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("not an integer")
        return value
    if python_type is str:
        if not isinstance(value, str) or "\x00" in value:
            raise TypeError("not a text")
        return value
    return value
