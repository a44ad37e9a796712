"""What the CSV import dialog decides before it sends a file (Qt-free): the file read as the
server will read it (UTF-8 with or without a BOM, CRLF, quoted line breaks, blank lines
skipped), a preview of its first rows, the fields a column may map to (the server's writable
fields, `id`, and the tenant's live custom fields as `cf.<name>`), a first mapping guessed
from the header, and the problems that make sending pointless (nothing mapped, a column
mapped twice, a required field or the match key unmapped)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aisha_desktop.models.fields import FIELDS, IDENTITY, column_title, custom_field_specs

# The fields an import column may name per entity: the server's writable fields less the JSON
# documents (`record_io._mappable`, checked equal by tests), plus `id` (the match key).
IMPORT_FIELDS: dict[str, tuple[str, ...]] = {
    "accounts": (
        "name", "type", "industry", "website", "email", "phone", "annual_revenue",
        "employee_count", "address_1", "address_2", "city", "state", "zip", "country",
        "description", "tags",
    ),
    "contacts": (
        "first_name", "last_name", "email", "phone", "mobile", "title", "company",
        "account_id", "lead_source", "description", "tags",
    ),
    "leads": (
        "first_name", "last_name", "email", "phone", "company", "title", "source", "value",
        "score", "description", "tags",
    ),
    "opportunities": (
        "name", "stage", "amount", "probability", "close_date", "account_id", "contact_id",
        "lead_id", "description",
    ),
    "activities": (
        "type", "subject", "description", "due_date", "completed_at", "related_type",
        "related_id",
    ),
}  # fmt: skip
COMMON_IMPORT_FIELDS = ("owner_id", "assigned_to", "department", "status")
# the fields a new record cannot do without (the server's EntitySpec.required)
REQUIRED: dict[str, tuple[str, ...]] = {
    "accounts": ("name",),
    "opportunities": ("name",),
    "activities": ("subject",),
}
PREVIEW_ROWS = 20
# other spellings of a field a header may use (after normalising: lower case, `_` for spaces)
SYNONYMS: dict[str, str] = {
    "e_mail": "email", "email_address": "email", "mail": "email",
    "telephone": "phone", "phone_number": "phone", "tel": "phone", "mobile_phone": "mobile",
    "cell": "mobile", "given_name": "first_name", "firstname": "first_name",
    "forename": "first_name", "surname": "last_name", "lastname": "last_name",
    "family_name": "last_name", "job_title": "title", "organisation": "company",
    "organization": "company", "company_name": "company", "postcode": "zip",
    "postal_code": "zip", "zip_code": "zip", "address": "address_1", "street": "address_1",
    "web": "website", "url": "website", "revenue": "annual_revenue",
    "employees": "employee_count", "record_id": "id", "uuid": "id",
}  # fmt: skip


class CsvFileError(ValueError):
    """The file cannot be read as CSV; the message says why and where."""


@dataclass(frozen=True)
class CsvPreview:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]  # the first PREVIEW_ROWS data rows
    row_count: int  # data rows (blank lines not counted), as the server numbers them
    had_bom: bool
    wide_rows: tuple[int, ...] = ()  # rows with more cells than the header (server: error)


def inspect_csv(data: bytes, preview_rows: int = PREVIEW_ROWS) -> CsvPreview:
    """Read the whole file as the server will; raises `CsvFileError` when it would refuse
    it (not UTF-8, empty, malformed quoting, no header)."""
    had_bom = data.startswith(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvFileError(
            f"The file is not UTF-8 text (invalid byte at position {exc.start});"
            " save it as “CSV UTF-8” and choose it again"
        ) from None
    if not text.strip():
        raise CsvFileError("The file is empty")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: tuple[str, ...] | None = None
    rows: list[tuple[str, ...]] = []
    wide: list[int] = []
    count = 0
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = tuple(c.strip() for c in cells)
                continue
            count += 1
            if len(cells) > len(header):
                wide.append(count)
            if len(rows) < preview_rows:
                rows.append(tuple(cells))
    except csv.Error as exc:
        raise CsvFileError(f"The file is not valid CSV (line {reader.line_num}): {exc}") from None
    assert header is not None
    if not any(header):
        raise CsvFileError("The first line (the header) names no columns")
    return CsvPreview(header, tuple(rows), count, had_bom, tuple(wide))


@dataclass(frozen=True)
class Target:
    name: str  # what the server is sent: a field, `id` or `cf.<name>`
    label: str
    required: bool = False
    identity: bool = False  # a new record needs one of these (a person's name, e-mail, phone)


def import_targets(entity: str, custom_rows: Iterable[Mapping[str, Any]]) -> list[Target]:
    """What a column of `entity` may map to, in a sensible order for a picker."""
    labels = {spec.name: spec.label for spec in FIELDS.get(entity, ())}
    required = set(REQUIRED.get(entity, ()))
    identity = set(IDENTITY.get(entity, ()))
    targets = [
        Target(name, labels.get(name) or column_title(name), name in required, name in identity)
        for name in (*IMPORT_FIELDS[entity], *COMMON_IMPORT_FIELDS)
    ]
    targets.append(Target("id", "Record id (match key)"))
    for spec in custom_field_specs(entity, custom_rows):
        targets.append(Target(f"cf.{spec.name}", f"{spec.label} (custom)", spec.required))
    return targets


def _normal(text: str) -> str:
    return re.sub(r"[^0-9a-z.]+", "_", text.strip().lower()).strip("_")


def auto_mapping(header: Sequence[str], targets: Sequence[Target]) -> dict[str, str]:
    """column -> target for the columns whose header names a target: its name, its label,
    `cf.<name>` or a known synonym.  Each target is used once (the first column wins)."""
    by_key: dict[str, str] = {}
    for target in targets:
        by_key.setdefault(_normal(target.name), target.name)
        label = target.label.removesuffix(" (custom)").removesuffix(" (match key)")
        by_key.setdefault(_normal(label), target.name)
        if target.name.startswith("cf."):
            by_key.setdefault(_normal(target.name[3:]), target.name)
    names = {t.name for t in targets}
    result: dict[str, str] = {}
    used: set[str] = set()
    for column in header:
        key = _normal(column)
        found = by_key.get(key) or SYNONYMS.get(key)
        if found and found in names and found not in used and column not in result:
            result[column] = found
            used.add(found)
    return result


def mapping_problems(
    mapping: Mapping[str, str],
    targets: Sequence[Target],
    mode: str,
    match: str | None,
) -> list[str]:
    """Why the server would refuse the mapping outright (empty: fine to send)."""
    problems: list[str] = []
    chosen = [t for t in mapping.values() if t]
    if not chosen:
        problems.append("Map at least one column to a field")
    labels = {t.name: t.label for t in targets}
    twice = sorted({t for t in chosen if chosen.count(t) > 1})
    if twice:
        problems.append(
            "Several columns map to " + ", ".join(labels.get(t, t) for t in twice)
            + ": map each field once"
        )  # fmt: skip
    if mode != "create":
        key = match or "id"
        if key not in chosen:
            problems.append(f"Mode {mode} matches records by {key}: map a column to it")
    if mode == "create":
        missing = [t.label for t in targets if t.required and t.name not in chosen]
        if missing:
            problems.append(
                "Required for new records, map a column to: " + ", ".join(missing)
            )  # fmt: skip
        identity = [t for t in targets if t.identity]
        if chosen and identity and not any(t.name in chosen for t in identity):
            problems.append(
                "New records need a name, an e-mail or a phone: map a column to one of "
                + ", ".join(t.label for t in identity)
            )
    return problems


def sent_mapping(mapping: Mapping[str, str]) -> dict[str, str]:
    """The mapping as the server takes it: only the mapped columns."""
    return {column: target for column, target in mapping.items() if target}
