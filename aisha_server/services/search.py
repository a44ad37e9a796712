"""`q` on record lists: what a search term matches, as SQL both backends answer from indexes.

Two modes:

* **prefix** (the default): every word of the query must start one of the entity's searched
  values — a name, the e-mail address, the company, or (for words made of phone characters)
  the phone number in E.164.  Each searched text column has a lower-cased copy kept by the
  database with a `(tenant_id, copy)` index (migration 0006; `text_pattern_ops` on
  PostgreSQL), e-mail addresses are stored lower-cased and phones in E.164 with their own
  `(tenant_id, ...)` indexes, so a word becomes one index range per column inside the tenant,
  OR-ed: SQLite answers it with its multi-index OR plan and PostgreSQL with a BitmapOr, at any
  table size.  On PostgreSQL the ranges are written with the leakproof text_pattern operators:
  under row-level security that is what lets the planner use the indexes at all (see
  `_starts_with` and db/models/crm.py).
* **contains**: every word must occur anywhere in one of the searched columns
  (case-insensitive `LIKE '%word%'`).  No index serves that; it reads the tenant's rows (in the
  list's sort order, so a common word stops after one page).

Why not FTS5 / trigram indexes: measured on this machine (2026-11), keeping an FTS5 index
in step with a contacts table cut bulk-insert speed from ~257,000 to ~22,000 rows/s
(unicode61) and ~13,000 rows/s (trigram); the CSV import must sustain 20,000 rows/s.  Prefix
search on B-tree indexes costs a few microseconds per insert and answers the searches operators
type (start of a name, an address, a number).  See docs/api.md ("Search").

Case: PostgreSQL's `lower()` folds all of Unicode; SQLite's folds ASCII only, so on SQLite
the query word is folded the same way (ASCII only) and "Élo" finds "Élodie" but "élo" does not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import phonenumbers
from sqlalchemy import ColumnElement, Table, and_, func

from aisha_server.db.models.crm import SEARCH_INDEXES, search_key_name

MAX_WORDS = 6
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PHONE_WORD = re.compile(r"^\+?[0-9().\-]*[0-9][0-9().\-]*$")
MODES = ("prefix", "contains")


def words(q: str | None) -> list[str]:
    """The query's words (whitespace-separated), at most MAX_WORDS, blanks dropped; a query
    that is one phone number written with spaces ("(212) 555-01") is one word."""
    if not q:
        return []
    split = q.split()
    joined = "".join(split)
    if len(split) > 1 and is_phone_word(joined):
        return [joined]
    return split[:MAX_WORDS]


def is_phone_word(word: str) -> bool:
    """Phone characters only, with at least three digits ("555-01", "(212)") or a leading
    + and a digit ("+44")."""
    if not _PHONE_WORD.match(word):
        return False
    return word.startswith("+") or sum(c.isdigit() for c in word) >= 3


def fold(word: str, dialect: str) -> str:
    """The word lower-cased the way the database's `lower()` does it."""
    return word.translate(_ASCII_FOLD) if dialect == "sqlite" else word.lower()


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def successor(prefix: str) -> str | None:
    """The least string greater than every string that starts with `prefix`, in code point
    order (which is UTF-8 byte order): the prefix with its last character raised by one, after
    dropping trailing U+10FFFF; None when there is none (a prefix of only U+10FFFF)."""
    stripped = prefix.rstrip("\U0010ffff")
    if not stripped:
        return None
    point = ord(stripped[-1]) + 1
    if 0xD800 <= point <= 0xDFFF:  # surrogates are not characters (nor storable)
        point = 0xE000
    return stripped[:-1] + chr(point)


def _starts_with(expression: Any, low: Any, high: Any | None, dialect: str) -> ColumnElement[bool]:
    """`expression` starts with a prefix, as the range [low, high) that a B-tree index on the
    expression serves (`high` is the prefix's successor, None when it has none).

    PostgreSQL: compared bytewise with the text_pattern operators (`~>=~`, `~<~`), which a
    `text_pattern_ops` index serves under any collation and which are LEAKPROOF, so the planner
    applies them at the index under row-level security (`lower()` or LIKE would be applied
    row by row after the tenant policy: db/models/crm.py).  SQLite compares text bytewise
    (BINARY collation) with plain `>=` / `<`."""
    if dialect == "postgresql":
        above = expression.op("~>=~", is_comparison=True)(low)
        if high is None:
            return above  # type: ignore[no-any-return]
        return and_(above, expression.op("~<~", is_comparison=True)(high))
    if high is None:
        return expression >= low  # type: ignore[no-any-return]
    return and_(expression >= low, expression < high)


def phone_prefixes(word: str, region: str) -> list[str]:
    """E.164 prefixes a phone-like word can start: as typed with a leading + (or 00), else
    both in the tenant's country and as a full international number."""
    digits = "".join(c for c in word if c.isdigit())
    if word.startswith("+"):
        return ["+" + digits]
    if digits.startswith("00"):
        return ["+" + digits[2:]]
    code = phonenumbers.country_code_for_region(region)
    national = digits.lstrip("0") if code not in (0, 39) else digits  # Italy keeps its 0
    found = [f"+{code}{national}"] if code else []
    if ("+" + digits) not in found:
        found.append("+" + digits)
    return found


# How a word can match a row, as data (the list query's plan keeps the form apart from the
# values, services/records.py): (column reference, comparison, values).  A reference is a
# table column's name, or "lower:<name>" for lower(<name>); the comparison is "range"
# (values low, high), "from" (low: a prefix with no successor) or "like" (the pattern).
Alternative = tuple[str, str, tuple[str, ...]]


def _folded(table_name: str, column: str) -> str:
    """`column` lower-cased: its stored copy when it has one (SEARCH_INDEXES), else lower()."""
    if column in SEARCH_INDEXES.get(table_name, ()):
        return search_key_name(column)
    return f"lower:{column}"


def _prefix(reference: str, prefix: str) -> Alternative:
    upper = successor(prefix)
    if upper is None:
        return (reference, "from", (prefix,))
    return (reference, "range", (prefix, upper))


def word_alternatives(
    table_name: str,
    columns: Sequence[str],
    phones: dict[str, str],
    word: str,
    mode: str,
    dialect: str,
    region: str,
) -> list[Alternative]:
    """The alternatives any one of which makes `word` match a row of `table_name`.

    `phones` maps a searched phone column to its E.164 column; prefix mode searches the E.164
    form (the raw entry keeps the operator's formatting, which no prefix would find)."""
    if mode == "contains":
        pattern = f"%{like_escape(fold(word, dialect))}%"
        return [(_folded(table_name, c), "like", (pattern,)) for c in columns]
    folded = fold(word, dialect)
    phone_like = is_phone_word(word)
    either: list[Alternative] = []
    for column in columns:
        if column in phones:
            if phone_like:
                either += [_prefix(phones[column], p) for p in phone_prefixes(word, region)]
        elif column == "email":  # stored lower-cased
            either.append(_prefix("email", folded))
        else:
            either.append(_prefix(search_key_name(column), folded))
    return either


def alternative_condition(
    table: Table, reference: str, comparison: str, values: Sequence[Any], dialect: str
) -> ColumnElement[bool]:
    """The SQL of one alternative; `values` are its values or bind parameters standing in."""
    expression: Any
    if reference.startswith("lower:"):
        expression = func.lower(table.c[reference[6:]])
    else:
        expression = table.c[reference]
    if comparison == "like":
        return expression.like(values[0], escape="\\")  # type: ignore[no-any-return]
    return _starts_with(expression, values[0], values[1] if comparison == "range" else None,
                        dialect)  # fmt: skip
