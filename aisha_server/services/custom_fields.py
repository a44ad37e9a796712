"""Custom field definitions and the validation of their values (guide 4.4, 6.5).

A tenant defines extra fields per entity (`contact`, `account`, `lead`, `opportunity`,
`activity`, `note`); records keep the values in their `custom_fields` JSON.  This module
owns both halves:

* `CustomFieldService`: list, create, change, archive and restore definitions (tenant
  admins and the superadmin write, every tenant user reads), and `definitions_for`, the
  short-lived per-tenant cache the record services read on every write;
* `validate_values` / `filter_value`: pure functions that check and normalise the values
  a record write or a list filter carries, so every write path applies the same rules.

Removing a definition archives it (`is_archived`): stored values are never dropped, new
values for it are refused, and restoring it brings them back into use.  Likewise removing
a select option that records still use is allowed and those stored values stay as they
are (they are no longer offered, and a write that sends one of them again is refused).
Changing a field's type is refused: stored values of the old type would no longer fit.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn
from urllib.parse import urlsplit

import phonenumbers
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aisha_server.auth.authorize import require_allowed
from aisha_server.auth.principal import Principal
from aisha_server.db.changelog import ChangeContext
from aisha_server.db.models import (
    Account,
    Activity,
    Contact,
    CustomField,
    Lead,
    Note,
    Opportunity,
)
from aisha_server.db.uow import Database
from aisha_server.errors import Conflict, Invalid, NotFound
from aisha_server.services.emails import EmailNotValidError, normalised_email

RESOURCE = "custom-fields"
# singular entity names, as the guide's SQL writes them; plurals are accepted on input
ENTITIES: tuple[str, ...] = ("contact", "account", "lead", "opportunity", "activity", "note")
_PLURALS = {
    "contacts": "contact",
    "accounts": "account",
    "leads": "lead",
    "opportunities": "opportunity",
    "activities": "activity",
    "notes": "note",
}
FIELD_TYPES: tuple[str, ...] = (
    "text",
    "number",
    "currency",
    "date",
    "datetime",
    "select",
    "multiselect",
    "boolean",
    "email",
    "phone",
    "url",
)
CHOICE_TYPES = frozenset({"select", "multiselect"})
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TEXT_MAX = 10_000
OPTION_MAX = 200
MAX_OPTIONS = 500  # a select offers at most this many
# the record model of each entity: a custom field may not take the name of a built-in field
_MODELS: dict[str, type[Any]] = {
    "contact": Contact,
    "account": Account,
    "lead": Lead,
    "opportunity": Opportunity,
    "activity": Activity,
    "note": Note,
}
URL_MAX = 2048
CURRENCY_MAX = Decimal("1e15")  # absolute value; keeps "%.2f" exact and sane
CACHE_SECONDS = 5.0

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def normalise_entity(value: str) -> str | None:
    """`contacts` -> `contact`; None for a name that is not a custom-field entity."""
    name = value.strip().lower()
    name = _PLURALS.get(name, name)
    return name if name in ENTITIES else None


@dataclass(frozen=True, slots=True)
class FieldDefinition:
    """One custom field as the validators see it (an immutable copy of a row)."""

    field_name: str
    field_type: str
    entity: str = "contact"
    options: tuple[str, ...] = ()
    is_required: bool = False
    is_archived: bool = False
    label: str | None = None
    position: int = 0
    id: uuid.UUID | None = None

    @classmethod
    def from_row(cls, row: CustomField) -> FieldDefinition:
        return cls(
            field_name=row.field_name,
            field_type=row.field_type,
            entity=row.entity,
            options=tuple(str(o) for o in (row.options or ())),
            is_required=bool(row.is_required),
            is_archived=bool(row.is_archived),
            label=row.label,
            position=row.position or 0,
            id=row.id,
        )


# -- values ----------------------------------------------------------------------------------


class _Bad(ValueError):
    """One value's problem; collected into a single `Invalid`."""


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | tuple) and not value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad("must be a string")
    if len(value) > TEXT_MAX:
        raise _Bad(f"must be at most {TEXT_MAX} characters")
    return value


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad("must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Bad("must be a finite number")
    return value


def _number_text(raw: str) -> int | float:
    text = raw.strip()
    if not _DECIMAL.match(text):
        raise _Bad("must be a number")
    if "." not in text:
        return int(text)
    return float(text)


def _currency(value: Any) -> str:
    if isinstance(value, bool):
        raise _Bad("must be an amount (a number or a numeric string)")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _Bad("must be a finite amount")
        amount = Decimal(repr(value))  # the shortest repr: 0.1 -> "0.1", not its binary value
    elif isinstance(value, str) and _DECIMAL.match(value.strip()):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            raise _Bad("must be an amount") from None
    else:
        raise _Bad("must be an amount (a number or a numeric string such as '1234.50')")
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise _Bad("must have at most 2 decimal places")
    if abs(amount) >= CURRENCY_MAX:
        raise _Bad("is too large")
    return f"{amount.quantize(Decimal('0.01')):f}"


def _date(value: Any) -> str:
    if not isinstance(value, str) or not _DATE.match(value.strip()):
        raise _Bad("must be a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise _Bad("must be a real calendar date (YYYY-MM-DD)") from None


def _datetime(value: Any) -> str:
    if not isinstance(value, str) or "T" not in value.upper().strip():
        raise _Bad("must be an ISO 8601 date-time with a time zone, e.g. 2025-01-31T09:30:00Z")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _Bad("must be an ISO 8601 date-time, e.g. 2025-01-31T09:30:00Z") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise _Bad("must carry a time zone (e.g. Z or +02:00)")
    return moment.astimezone(UTC).isoformat()


def _option(definition: FieldDefinition, value: Any) -> str:
    """The option's own spelling; matching ignores case (imports rarely get case right)."""
    if not isinstance(value, str):
        raise _Bad("must be one of: " + ", ".join(definition.options))
    if value in definition.options:
        return value
    folded = [o for o in definition.options if o.casefold() == value.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    raise _Bad("must be one of: " + ", ".join(definition.options))


def _multiselect(definition: FieldDefinition, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _Bad("must be a list of options")
    chosen = [_option(definition, item) for item in value]
    if len(set(chosen)) != len(chosen):
        raise _Bad("must not repeat an option")
    return chosen


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad("must be true or false")
    return value


def _email(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad("must be an email address")
    try:
        return normalised_email(value)
    except EmailNotValidError as exc:
        raise _Bad(f"is not a valid email address: {exc}") from None


def _phone(value: Any, region: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("must be a phone number")
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise _Bad("is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise _Bad("is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _url(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad("must be a URL")
    text = value.strip()
    if len(text) > URL_MAX or any(c.isspace() for c in text):
        raise _Bad("must be an http(s) URL without spaces")
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise _Bad("must be an http(s) URL") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise _Bad("must be an http or https URL with a host")
    return text


def _normalise(definition: FieldDefinition, value: Any, region: str) -> Any:
    """The stored form of one non-empty value, or `_Bad`."""
    kind = definition.field_type
    if kind == "text":
        return _text(value)
    if kind == "number":
        return _number(value)
    if kind == "currency":
        return _currency(value)
    if kind == "date":
        return _date(value)
    if kind == "datetime":
        return _datetime(value)
    if kind == "select":
        return _option(definition, value)
    if kind == "multiselect":
        return _multiselect(definition, value)
    if kind == "boolean":
        return _boolean(value)
    if kind == "email":
        return _email(value)
    if kind == "phone":
        return _phone(value, region)
    if kind == "url":
        return _url(value)
    raise _Bad(f"has an unknown field type {kind!r}")


def _fail(field: str, message: str, what: str = "Validation failed") -> NoReturn:
    raise Invalid(f"{what}: {field}", details=[{"field": field, "message": message}])


def _raise(problems: list[dict[str, str]], what: str) -> None:
    if problems:
        fields = ", ".join(sorted({p["field"] for p in problems}))
        raise Invalid(f"{what}: {fields}", details=problems)


def validate_values(
    definitions: Sequence[FieldDefinition],
    values: Mapping[str, Any],
    *,
    partial: bool,
    existing: Mapping[str, Any] | None = None,
    default_region: str = "US",
) -> dict[str, Any]:
    """The custom-field values to store after a write, or `Invalid` naming every bad field.

    `definitions` are the entity's definitions, archived ones included.  `partial=False`
    (create, full replace): every required active field must be given and non-empty.
    `partial=True` (update): only the given fields change; a required one may not be
    cleared.  `null` (or an empty string/list) clears an optional field.  Values of archived
    fields are kept as stored and cannot be changed (sending the stored value back as it is
    is accepted, so clients may round-trip a record).  Stored values without a definition
    are kept too.  Stored forms: currency a string with 2 decimals ("1234.50"), date
    "YYYY-MM-DD", datetime UTC ISO 8601, email lower-case, phone E.164 ("+15555550123"),
    multiselect a list in the order given, select/multiselect the option's own spelling.
    """
    if not isinstance(values, Mapping):
        _fail("custom_fields", "must be an object")
    by_name = {d.field_name: d for d in definitions}
    stored = dict(existing or {})
    result: dict[str, Any]
    if partial:
        result = dict(stored)
    else:
        # a full write replaces active fields; archived and undefined ones stay as stored
        result = {k: v for k, v in stored.items() if k not in by_name or by_name[k].is_archived}
    problems: list[dict[str, str]] = []

    def bad(name: str, message: str) -> None:
        problems.append({"field": f"custom_fields.{name}", "message": message})

    for name, value in values.items():
        definition = by_name.get(name)
        if definition is None:
            bad(name, "is not a custom field of this record type")
            continue
        if definition.is_archived:
            if name in stored and stored[name] == value:
                continue
            bad(name, "is archived and cannot be changed")
            continue
        if _is_empty(value):
            if definition.is_required:
                bad(name, "is required and cannot be empty")
            result.pop(name, None)
            continue
        try:
            result[name] = _normalise(definition, value, default_region)
        except _Bad as exc:
            bad(name, str(exc))
    if not partial:
        for definition in definitions:
            if (
                definition.is_required
                and not definition.is_archived
                and definition.field_name not in values
            ):
                bad(definition.field_name, "is required")
    _raise(problems, "Validation failed")
    return result


def filter_value(definition: FieldDefinition, raw: str) -> Any:
    """A list filter's value (`cf.referral_source=Website`) in the stored form.

    Same rules as writes, read from text: numbers parse from digits, booleans are `true`
    or `false`, a multiselect filter names one option (records holding it match).
    """
    name = f"cf.{definition.field_name}"
    kind = definition.field_type
    try:
        if kind == "number":
            return _number(_number_text(raw))
        if kind == "boolean":
            word = raw.strip().lower()
            if word not in ("true", "false"):
                raise _Bad("must be true or false")
            return word == "true"
        if kind == "multiselect":
            return _option(definition, raw)
        return _normalise(definition, raw, "US")
    except _Bad as exc:
        _fail(name, str(exc), "Invalid query parameters")


# -- definitions -----------------------------------------------------------------------------


def check_options(field_type: str, options: Any) -> list[str] | None:
    """Options for select/multiselect (required, non-empty, unique strings); none otherwise."""
    if field_type not in CHOICE_TYPES:
        if options is not None:
            _fail("options", "only select and multiselect fields have options")
        return None
    if not isinstance(options, list) or not options:
        _fail("options", "a non-empty list of strings is required")
    if len(options) > MAX_OPTIONS:
        _fail("options", f"at most {MAX_OPTIONS} options")
    cleaned: list[str] = []
    for option in options:
        if not isinstance(option, str) or not option.strip() or len(option) > OPTION_MAX:
            _fail("options", f"each option must be text of 1-{OPTION_MAX} characters")
        cleaned.append(option.strip())
    if len({o.casefold() for o in cleaned}) != len(cleaned):
        _fail("options", "options must be unique")
    return cleaned


def check_field_name(name: str, entity: str | None = None) -> str:
    """A custom field's name; for `entity`, also not the name of one of its built-in fields
    (`email`, `id`, ...): imports, exports and filters name both kinds side by side."""
    if not FIELD_NAME.match(name):
        _fail(
            "field_name",
            "lower-case letters, digits and underscores, starting with a letter "
            "(at most 63 characters)",
        )
    model = _MODELS.get(entity or "")
    if model is not None and name in {c.name for c in model.__table__.columns} | {"metadata"}:
        _fail("field_name", f"{name!r} is a built-in field of {entity} records")
    return name


def check_entity(value: str, field: str = "entity") -> str:
    entity = normalise_entity(value)
    if entity is None:
        _fail(field, "one of: " + ", ".join(ENTITIES))
    return entity


def check_field_type(value: str) -> str:
    if value not in FIELD_TYPES:
        _fail("field_type", "one of: " + ", ".join(FIELD_TYPES))
    return value


def definition_view(row: CustomField) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "tenant_id": str(row.tenant_id),
        "entity": row.entity,
        "field_name": row.field_name,
        "field_type": row.field_type,
        "label": row.label,
        "options": list(row.options) if row.options is not None else None,
        "is_required": bool(row.is_required),
        "is_archived": bool(row.is_archived),
        "position": row.position or 0,
        "version": row.version,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


@dataclass(frozen=True, slots=True)
class NewField:
    entity: str
    field_name: str
    field_type: str
    label: str | None = None
    options: list[str] | None = None
    is_required: bool = False
    position: int = 0


@dataclass(frozen=True, slots=True)
class FieldChanges:
    """What an update may change; `fields_set` says which were given (null clears a label)."""

    fields_set: frozenset[str]
    label: str | None = None
    options: list[str] | None = None
    is_required: bool | None = None
    position: int | None = None
    field_type: str | None = None


def load_definitions(
    session: Session, tenant_id: uuid.UUID, entity: str | None = None
) -> list[FieldDefinition]:
    """Every definition (archived included) of a tenant, or of one entity, in form order.
    For record services that read definitions inside their own unit of work."""
    query = select(CustomField).where(
        CustomField.tenant_id == tenant_id, CustomField.deleted_at.is_(None)
    )
    if entity is not None:
        query = query.where(CustomField.entity == entity)
    rows = session.scalars(query.order_by(CustomField.position, CustomField.field_name)).all()
    return [FieldDefinition.from_row(r) for r in rows]


def _field(session: Session, tenant_id: uuid.UUID, field_id: uuid.UUID) -> CustomField:
    row = session.get(CustomField, field_id)
    if row is None or row.tenant_id != tenant_id or row.deleted_at is not None:
        raise NotFound(f"Custom field not found: {field_id}", code="custom_field_not_found")
    return row


def _name_taken(entity: str, name: str) -> Conflict:
    return Conflict(
        f"A custom field named {name!r} already exists for {entity}",
        code="custom_field_exists",
        details=[{"field": "field_name", "message": "already in use for this entity"}],
    )


class CustomFieldService:
    def __init__(self, db: Database, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        # tenant -> (expires at, monotonic; definitions by entity)
        self._cache: dict[uuid.UUID, tuple[float, dict[str, list[FieldDefinition]]]] = {}

    # -- for record services -----------------------------------------------------------------
    async def definitions_for(self, tenant_id: uuid.UUID, entity: str) -> list[FieldDefinition]:
        """The entity's definitions (archived included), cached per tenant for a few seconds;
        changes made through this instance drop the cache at once."""
        entity = normalise_entity(entity) or entity
        now = time.monotonic()
        cached = self._cache.get(tenant_id)
        if cached is None or cached[0] <= now:

            def read(session: Session) -> list[FieldDefinition]:
                return load_definitions(session, tenant_id)

            grouped: dict[str, list[FieldDefinition]] = {}
            definitions = await self._db.run(read, tenant_id=tenant_id, write=False, quick=True)
            for definition in definitions:
                grouped.setdefault(definition.entity, []).append(definition)
            cached = (now + self._cache_seconds, grouped)
            self._cache[tenant_id] = cached
        return list(cached[1].get(entity, ()))

    def forget(self, tenant_id: uuid.UUID) -> None:
        self._cache.pop(tenant_id, None)

    # -- the resource ------------------------------------------------------------------------
    async def list_fields(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        *,
        entity: str | None = None,
        include_archived: bool = False,
    ) -> list[dict[str, Any]]:
        require_allowed(actor, RESOURCE, "read")
        wanted = check_entity(entity) if entity else None

        def read(session: Session) -> list[dict[str, Any]]:
            query = select(CustomField).where(
                CustomField.tenant_id == tenant_id, CustomField.deleted_at.is_(None)
            )
            if wanted is not None:
                query = query.where(CustomField.entity == wanted)
            if not include_archived:
                query = query.where(CustomField.is_archived.is_(False))
            query = query.order_by(CustomField.entity, CustomField.position, CustomField.field_name)
            return [definition_view(r) for r in session.scalars(query)]

        return await self._db.run(read, tenant_id=tenant_id, write=False)

    async def get_field(
        self, actor: Principal, tenant_id: uuid.UUID, field_id: uuid.UUID
    ) -> dict[str, Any]:
        require_allowed(actor, RESOURCE, "read")

        def read(session: Session) -> dict[str, Any]:
            return definition_view(_field(session, tenant_id, field_id))

        return await self._db.run(read, tenant_id=tenant_id, write=False)

    async def create_field(
        self, actor: Principal, tenant_id: uuid.UUID, new: NewField
    ) -> dict[str, Any]:
        require_allowed(
            actor, RESOURCE, "create", message="Only administrators may define custom fields"
        )
        entity = check_entity(new.entity)
        name = check_field_name(new.field_name, entity)
        kind = check_field_type(new.field_type)
        options = check_options(kind, new.options)

        def write(session: Session) -> dict[str, Any]:
            taken = session.scalar(
                select(CustomField.id).where(
                    CustomField.tenant_id == tenant_id,
                    CustomField.entity == entity,
                    CustomField.field_name == name,
                )
            )
            if taken is not None:
                raise _name_taken(entity, name)
            row = CustomField(
                tenant_id=tenant_id,
                entity=entity,
                field_name=name,
                field_type=kind,
                label=new.label,
                options=options,
                is_required=new.is_required,
                position=new.position,
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError:  # a concurrent create of the same name
                raise _name_taken(entity, name) from None
            return definition_view(row)

        view = await self._db.run(write, tenant_id=tenant_id, actor=ChangeContext(actor.user_id))
        self.forget(tenant_id)
        return view

    async def update_field(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        field_id: uuid.UUID,
        changes: FieldChanges,
    ) -> dict[str, Any]:
        """Label, options, required flag and position.  The type never changes (stored
        values would no longer fit).  Dropping a select option that records still hold is
        allowed: those stored values stay as they are and are no longer offered."""
        require_allowed(
            actor, RESOURCE, "update", message="Only administrators may change custom fields"
        )

        def write(session: Session) -> dict[str, Any]:
            row = _field(session, tenant_id, field_id)
            given = changes.fields_set
            if "field_type" in given and changes.field_type != row.field_type:
                _fail(
                    "field_type",
                    "cannot be changed: stored values of the old type would no longer "
                    "fit (archive this field and define a new one)",
                )
            if "options" in given:
                row.options = check_options(row.field_type, changes.options)
            if "label" in given:
                row.label = changes.label
            if "is_required" in given:
                if changes.is_required is None:
                    _fail("is_required", "must be true or false")
                row.is_required = bool(changes.is_required)
            if "position" in given:
                if changes.position is None:
                    _fail("position", "must be a number")
                row.position = int(changes.position or 0)
            session.flush()
            return definition_view(row)

        view = await self._db.run(write, tenant_id=tenant_id, actor=ChangeContext(actor.user_id))
        self.forget(tenant_id)
        return view

    async def set_archived(
        self, actor: Principal, tenant_id: uuid.UUID, field_id: uuid.UUID, archived: bool
    ) -> dict[str, Any]:
        """Archive (DELETE) or restore a field; stored values are never touched."""
        require_allowed(
            actor,
            RESOURCE,
            "delete" if archived else "update",
            message="Only administrators may archive or restore custom fields",
        )

        def write(session: Session) -> dict[str, Any]:
            row = _field(session, tenant_id, field_id)
            if row.is_archived != archived:
                row.is_archived = archived
                session.flush()
            return definition_view(row)

        view = await self._db.run(write, tenant_id=tenant_id, actor=ChangeContext(actor.user_id))
        self.forget(tenant_id)
        return view
