"""What the desktop knows about each record entity's fields: the columns a table can show,
the editor's form (built-in fields and the tenant's custom fields by type), entity labels
with their defaults, and the checks an editor makes before it hands a record to the sync
engine.  Qt-free: the views turn these descriptions into widgets."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from aisha_desktop.replica.schema import INDEXED, INDEXED_COMMON, columns

# entity key -> (default plural, default singular), in navigation order (as the server's)
ENTITY_DEFAULTS: dict[str, tuple[str, str]] = {
    "accounts": ("Accounts", "Account"),
    "contacts": ("Contacts", "Contact"),
    "leads": ("Leads", "Lead"),
    "opportunities": ("Opportunities", "Opportunity"),
    "activities": ("Activities", "Activity"),
}
NAV_ENTITIES: tuple[str, ...] = tuple(ENTITY_DEFAULTS)
# the custom field definitions name entities in the singular
SINGULAR_KEY = {
    "accounts": "account",
    "contacts": "contact",
    "leads": "lead",
    "opportunities": "opportunity",
    "activities": "activity",
    "notes": "note",
}
STATUSES: dict[str, tuple[str, ...]] = {
    "accounts": ("active", "inactive", "prospect"),
    "contacts": ("active", "inactive", "prospect"),
    "leads": ("new", "contacted", "qualified", "unqualified", "converted"),
    "opportunities": ("open", "won", "lost"),
    "activities": ("planned", "completed", "cancelled"),
    "notes": (),
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One editable field: `kind` is a custom field type (text, number, currency, date,
    datetime, select, multiselect, boolean, email, phone, url) or `longtext`."""

    name: str
    label: str
    kind: str = "text"
    required: bool = False
    options: tuple[str, ...] = ()
    custom: bool = False
    option_titles: tuple[str, ...] = ()  # what a select shows for each option (default: it)


def _f(name: str, kind: str = "text", required: bool = False, label: str = "") -> FieldSpec:
    return FieldSpec(name, label or name.replace("_", " ").capitalize(), kind, required)


# The writable built-in fields (the server's EntitySpec.fields), in form order.
FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "accounts": (
        _f("name", required=True), _f("type"), _f("industry"), _f("email", "email"),
        _f("phone", "phone"), _f("website", "url"), _f("annual_revenue", "currency"),
        _f("employee_count", "number"), _f("address_1", label="Address"),
        _f("city"), _f("state"), _f("zip", label="ZIP"), _f("country"),
        _f("description", "longtext"),
    ),
    "contacts": (
        _f("first_name"), _f("last_name"), _f("email", "email"), _f("phone", "phone"),
        _f("mobile", "phone"), _f("title"), _f("company"), _f("lead_source"),
        _f("description", "longtext"),
    ),
    "leads": (
        _f("first_name"), _f("last_name"), _f("email", "email"), _f("phone", "phone"),
        _f("company"), _f("title"), _f("source"), _f("value", "currency"),
        _f("score", "number"), _f("description", "longtext"),
    ),
    "opportunities": (
        _f("name", required=True), _f("stage"), _f("amount", "currency"),
        _f("probability", "number"), _f("close_date", "date"), _f("description", "longtext"),
    ),
    "activities": (
        _f("subject", required=True), _f("type"), _f("due_date", "date"),
        _f("description", "longtext"),
    ),
    "notes": (_f("title"), _f("content", "longtext", required=True)),
}  # fmt: skip

# a record needs at least one of these (the server's EntitySpec.identity)
IDENTITY: dict[str, tuple[str, ...]] = {
    "contacts": ("first_name", "last_name", "email", "phone", "mobile"),
    "leads": ("first_name", "last_name", "company", "email", "phone"),
}

# Columns a table offers (shown ones first by default) and their headers.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": ("name", "type", "industry", "email", "phone", "city", "status", "updated_at"),
    "contacts": ("first_name", "last_name", "email", "phone", "company", "status", "updated_at"),
    "leads": ("first_name", "last_name", "email", "company", "source", "status", "updated_at"),
    "opportunities": ("name", "stage", "amount", "close_date", "status", "updated_at"),
    "activities": ("subject", "type", "due_date", "status", "updated_at"),
    "notes": ("title", "content", "updated_at"),
}
COLUMN_TITLES = {"updated_at": "Updated", "created_at": "Created", "zip": "ZIP"}


def available_columns(entity: str) -> tuple[str, ...]:
    names = [*DEFAULT_COLUMNS[entity]]
    for spec in FIELDS[entity]:
        if spec.name not in names and spec.kind != "longtext":
            names.append(spec.name)
    for extra in ("created_at", "owner_id", "assigned_to", "department"):
        if extra not in names:
            names.append(extra)
    return tuple(names)


def column_title(name: str) -> str:
    return COLUMN_TITLES.get(name) or name.replace("_", " ").capitalize()


def sortable_columns(entity: str) -> frozenset[str]:
    """Columns the replica can sort on: its indexed ones (sorting anything else would read
    every row)."""
    return frozenset((*INDEXED_COMMON, *INDEXED[entity]))


def filterable_columns(entity: str) -> frozenset[str]:
    return frozenset(columns(entity))


# -- labels -------------------------------------------------------------------------------


def entity_labels(rows: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """entity -> (plural, singular) from the replica's entity_labels rows, defaults filled."""
    labels = dict(ENTITY_DEFAULTS)
    for row in rows:
        key = row.get("entity_key")
        plural = row.get("custom_label")
        if key not in labels or not isinstance(plural, str) or not plural.strip():
            continue
        singular = row.get("custom_label_singular")
        labels[key] = (
            plural.strip(),
            singular.strip()
            if isinstance(singular, str) and singular.strip()
            else ENTITY_DEFAULTS[key][1],
        )
    return labels


# -- forms ----------------------------------------------------------------------------------

CUSTOM_KINDS = frozenset(
    {"text", "number", "currency", "date", "datetime", "select", "multiselect", "boolean",
     "email", "phone", "url"}
)  # fmt: skip


def stage_title(stage: str) -> str:
    """How an opportunity stage key is shown ("closed_won" -> "Closed won")."""
    return stage.replace("_", " ").capitalize() if stage else "No stage"


def form_specs(entity: str, stages: Sequence[str] = ()) -> list[FieldSpec]:
    """The built-in fields of `entity`'s form.  An opportunity's stage is a choice of the
    tenant's pipeline `stages` (the server refuses any other)."""
    specs = list(FIELDS[entity])
    if entity == "opportunities" and stages:
        titles = tuple(stage_title(s) for s in stages)
        specs = [
            FieldSpec("stage", "Stage", "select", options=tuple(stages), option_titles=titles)
            if spec.name == "stage"
            else spec
            for spec in specs
        ]
    return specs


def custom_field_specs(entity: str, rows: Iterable[Mapping[str, Any]]) -> list[FieldSpec]:
    """The tenant's live (not archived) custom fields of `entity`, by position."""
    singular = SINGULAR_KEY[entity]
    found: list[tuple[int, str, FieldSpec]] = []
    for row in rows:
        if row.get("entity") not in (singular, entity) or row.get("is_archived"):
            continue
        name, kind = row.get("field_name"), row.get("field_type")
        if not isinstance(name, str) or kind not in CUSTOM_KINDS:
            continue
        label = row.get("label")
        options = row.get("options")
        spec = FieldSpec(
            name=name,
            label=label if isinstance(label, str) and label else column_title(name),
            kind=str(kind),
            required=bool(row.get("is_required")),
            options=tuple(str(o) for o in options) if isinstance(options, list) else (),
            custom=True,
        )
        position = row.get("position")
        found.append((position if isinstance(position, int) else 0, name, spec))
    return [spec for _, _, spec in sorted(found, key=lambda t: (t[0], t[1]))]


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9 ()./-]{5,30}$")


def is_web_address(text: str, *, bare_host: bool = False) -> bool:
    """What the server takes: an http(s) URL with a host (custom url fields), or for the
    built-in website field also a host name without a scheme ("acme.example/en")."""
    if not text or any(c.isspace() for c in text):
        return False
    candidate = f"http://{text}" if bare_host and "://" not in text else text
    try:
        parts = urlsplit(candidate)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https") or not host:
        return False
    return not bare_host or "." in host or host == "localhost"


def check_value(spec: FieldSpec, value: Any) -> str | None:
    """What is wrong with `value` for `spec` (None: fine).  Empty values only fail required
    fields; the server checks again (this is for messages next to the field)."""
    if value is None or value == "" or value == []:
        return f"{spec.label} is required" if spec.required else None
    text = str(value).strip() if not isinstance(value, list | bool) else ""
    kind = spec.kind
    if kind == "email" and not EMAIL.match(text):
        return f"{spec.label}: not an email address"
    if kind == "phone" and not PHONE.match(text):
        return f"{spec.label}: not a phone number"
    if kind == "url" and not is_web_address(text, bare_host=not spec.custom):
        if spec.custom:
            return f"{spec.label}: not a web address (http:// or https://)"
        return f"{spec.label}: not a web address (acme.example or https://acme.example)"
    if kind in ("number", "currency"):
        try:
            number = Decimal(text)
        except InvalidOperation:
            return f"{spec.label}: not a number"
        if not number.is_finite():
            return f"{spec.label}: not a number"
    if kind == "date":
        try:
            date.fromisoformat(text)
        except ValueError:
            return f"{spec.label}: not a date (YYYY-MM-DD)"
    if kind == "select" and spec.options and text not in spec.options:
        return f"{spec.label}: one of {', '.join(spec.options)}"
    if kind == "multiselect" and spec.options and isinstance(value, list):
        unknown = [v for v in value if v not in spec.options]
        if unknown:
            return f"{spec.label}: unknown option {unknown[0]}"
    return None


def validate(specs: Sequence[FieldSpec], values: Mapping[str, Any]) -> dict[str, str]:
    """field name -> message for every field whose value is wrong."""
    problems: dict[str, str] = {}
    for spec in specs:
        message = check_value(spec, values.get(spec.name))
        if message is not None:
            problems[spec.name] = message
    return problems


def display_name(entity: str, data: Mapping[str, Any]) -> str:
    """How a record is named in titles and lists."""
    if entity in ("contacts", "leads"):
        name = " ".join(str(data[k]) for k in ("first_name", "last_name") if data.get(k))
        return name or str(data.get("email") or data.get("company") or "(no name)")
    key = {"activities": "subject", "notes": "title"}.get(entity, "name")
    return str(data.get(key) or "(untitled)")
