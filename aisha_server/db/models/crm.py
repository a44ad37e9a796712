"""The relationship records operators live in.  Columns follow the guide's SQL (9.6, 3.3, 4.3).

Every record carries owner/assignee/department for data scope, a `metadata` JSON document,
`custom_fields` values, and the sync columns of `Versioned`.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Computed, ForeignKey, Index, String, Table, text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from aisha_server.db.base import Base, Versioned, pk


class Record(Versioned):
    """Columns shared by every CRM record."""

    id: Mapped[uuid.UUID] = pk()

    @declared_attr
    @classmethod
    def tenant_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))

    @declared_attr
    @classmethod
    def owner_id(cls) -> Mapped[uuid.UUID | None]:
        return mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)

    @declared_attr
    @classmethod
    def assigned_to(cls) -> Mapped[uuid.UUID | None]:
        return mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)

    department: Mapped[str | None] = mapped_column(String(100), default=None)
    status: Mapped[str | None] = mapped_column(String(50), default=None)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", default=dict, server_default=text("'{}'")
    )


# What a search index holds after the searched value: the list's sort key, tie-break and
# tombstone, so the first step of a search page (services/records._select) reads the index
# alone, never the table (migration 0009; on SQLite a search page 1.6 -> 0.9 ms of SQL).
SEARCH_INDEX_TAIL = ("updated_at", "id", "deleted_at")


def _search_index(table: str, column: str) -> Index:
    """A searched column's index: (tenant_id, column, SEARCH_INDEX_TAIL), under the name it had
    when it held (tenant_id, column) alone; `text_pattern_ops` on PostgreSQL (leakproof prefix
    ranges under RLS: services/search.py)."""
    return Index(
        f"ix_{table}_tenant_id_{column}",
        "tenant_id",
        column,
        *SEARCH_INDEX_TAIL,
        postgresql_ops={column: "text_pattern_ops"},
    )


def _scope_indexes(table: str) -> tuple[Index, ...]:
    return (
        # lists: in order, keyset cursor, tombstones - all from the index (migration 0009)
        Index(f"ix_{table}_tenant_updated", "tenant_id", "updated_at", "id", "deleted_at"),
        Index(f"ix_{table}_tenant_owner", "tenant_id", "owner_id"),
        Index(f"ix_{table}_tenant_assigned", "tenant_id", "assigned_to"),
        Index(f"ix_{table}_tenant_department", "tenant_id", "department"),
        # keyset walks by id inside a tenant: exports, sync snapshots
        Index(f"ix_{table}_tenant_id_id", "tenant_id", "id"),
    )


class Account(Record, Base):
    __tablename__ = "accounts"
    __table_args__ = (
        *_scope_indexes("accounts"),
        Index(None, "tenant_id", "name"),
        _search_index("accounts", "email"),
        _search_index("accounts", "phone_e164"),
    )

    name: Mapped[str] = mapped_column(String(300))
    type: Mapped[str | None] = mapped_column(String(50), default=None)
    industry: Mapped[str | None] = mapped_column(String(100), default=None)
    website: Mapped[str | None] = mapped_column(String(500), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    phone: Mapped[str | None] = mapped_column(String(50), default=None)
    # derived from `phone` with the tenant's default region (duplicate detection, dialling)
    phone_e164: Mapped[str | None] = mapped_column(String(20), default=None)
    annual_revenue: Mapped[Decimal | None] = mapped_column(default=None)
    employee_count: Mapped[int | None] = mapped_column(default=None)
    address_1: Mapped[str | None] = mapped_column(String(300), default=None)
    address_2: Mapped[str | None] = mapped_column(String(300), default=None)
    city: Mapped[str | None] = mapped_column(String(100), default=None)
    state: Mapped[str | None] = mapped_column(String(100), default=None)
    zip: Mapped[str | None] = mapped_column(String(20), default=None)
    country: Mapped[str | None] = mapped_column(String(100), default=None)
    description: Mapped[str | None] = mapped_column(default=None)
    tags: Mapped[list[str]] = mapped_column(default=list, server_default=text("'[]'"))


class Contact(Record, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        *_scope_indexes("contacts"),
        _search_index("contacts", "email"),
        Index(None, "tenant_id", "account_id"),
        Index(None, "tenant_id", "last_name", "first_name"),
        _search_index("contacts", "phone_e164"),
        _search_index("contacts", "mobile_e164"),
    )

    first_name: Mapped[str | None] = mapped_column(String(100), default=None)
    last_name: Mapped[str | None] = mapped_column(String(100), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    phone: Mapped[str | None] = mapped_column(String(50), default=None)
    mobile: Mapped[str | None] = mapped_column(String(50), default=None)
    phone_e164: Mapped[str | None] = mapped_column(String(20), default=None)
    mobile_e164: Mapped[str | None] = mapped_column(String(20), default=None)
    title: Mapped[str | None] = mapped_column(String(200), default=None)
    company: Mapped[str | None] = mapped_column(String(300), default=None)
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    lead_source: Mapped[str | None] = mapped_column(String(100), default=None)
    description: Mapped[str | None] = mapped_column(default=None)
    tags: Mapped[list[str]] = mapped_column(default=list, server_default=text("'[]'"))


class Lead(Record, Base):
    __tablename__ = "leads"
    __table_args__ = (
        *_scope_indexes("leads"),
        _search_index("leads", "email"),
        Index(None, "tenant_id", "status", "updated_at"),
        _search_index("leads", "phone_e164"),
    )

    first_name: Mapped[str | None] = mapped_column(String(100), default=None)
    last_name: Mapped[str | None] = mapped_column(String(100), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    phone: Mapped[str | None] = mapped_column(String(50), default=None)
    phone_e164: Mapped[str | None] = mapped_column(String(20), default=None)
    company: Mapped[str | None] = mapped_column(String(300), default=None)
    title: Mapped[str | None] = mapped_column(String(200), default=None)
    source: Mapped[str | None] = mapped_column(String(100), default=None)
    value: Mapped[Decimal | None] = mapped_column(default=None)
    score: Mapped[int | None] = mapped_column(default=None)
    description: Mapped[str | None] = mapped_column(default=None)
    converted_at: Mapped[datetime | None] = mapped_column(default=None)
    converted_contact_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), default=None
    )
    converted_account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    tags: Mapped[list[str]] = mapped_column(default=list, server_default=text("'[]'"))


class Opportunity(Record, Base):
    __tablename__ = "opportunities"
    __table_args__ = (
        *_scope_indexes("opportunities"),
        Index(None, "tenant_id", "stage", "updated_at"),
        Index(None, "tenant_id", "close_date"),
        Index(None, "tenant_id", "account_id"),
    )

    name: Mapped[str] = mapped_column(String(300))
    stage: Mapped[str | None] = mapped_column(String(50), default=None)
    amount: Mapped[Decimal | None] = mapped_column(default=None)
    probability: Mapped[int | None] = mapped_column(default=None)
    close_date: Mapped[date | None] = mapped_column(default=None)
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), default=None
    )
    lead_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("leads.id", ondelete="SET NULL"), default=None
    )
    description: Mapped[str | None] = mapped_column(default=None)


class Activity(Record, Base):
    __tablename__ = "activities"
    __table_args__ = (
        *_scope_indexes("activities"),
        Index(None, "tenant_id", "related_type", "related_id"),
        Index(None, "tenant_id", "status", "due_date"),
        Index(None, "tenant_id", "type", "created_at"),
    )

    type: Mapped[str] = mapped_column(String(50), default="task", server_default="task")
    subject: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(default=None)
    due_date: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    related_type: Mapped[str | None] = mapped_column(String(50), default=None)
    related_id: Mapped[uuid.UUID | None] = mapped_column(default=None)


class Note(Record, Base):
    __tablename__ = "notes"
    __table_args__ = (
        *_scope_indexes("notes"),
        Index(None, "tenant_id", "related_type", "related_id"),
        Index(None, "related_id", "created_at"),
    )

    title: Mapped[str | None] = mapped_column(String(500), default=None)
    content: Mapped[str]
    related_type: Mapped[str | None] = mapped_column(String(50), default=None)
    related_id: Mapped[uuid.UUID | None] = mapped_column(default=None)


# Prefix search (`q`, services/search.py).  Each searched text column has a lower-cased copy
# that the database keeps itself (a generated column: STORED on PostgreSQL; VIRTUAL on SQLite,
# where only the index holds the value - SQLite cannot add a STORED column to an existing
# table, and autogenerate compares the expression, not the storage), indexed as
# (tenant_id, copy); on PostgreSQL with
# text_pattern_ops so a bytewise range (`~>=~` / `~<~`) uses it whatever the collation.
#
# Why copies and not (tenant_id, lower(column)) expression indexes (migration 0003): under
# FORCE ROW LEVEL SECURITY PostgreSQL evaluates the tenant policy first and applies a user
# condition at an index only if every function in it is LEAKPROOF; lower() and LIKE are not,
# text_pattern_ge/text_pattern_lt are, so `copy ~>=~ 'smi' AND copy ~<~ 'smj'` is answered from
# the index while `lower(column) LIKE 'smi%'` read the whole tenant (migration 0006).
#
# The copies are in the tables but not mapped: the ORM never reads or writes them (records,
# their API views and the sync change log stay as they were), every insert path - ORM, bulk
# INSERT, COPY - leaves them to the database.  E-mails (stored lower-cased) and phones (E.164)
# are searched through the (tenant_id, column) indexes above.
SEARCH_INDEXES: dict[str, tuple[str, ...]] = {
    "accounts": ("name",),
    "contacts": ("first_name", "last_name", "company"),
    "leads": ("first_name", "last_name", "company"),
    "opportunities": ("name",),
    "activities": ("subject",),
    "notes": ("title",),
}


def search_key_name(column: str) -> str:
    """The name of `column`'s lower-cased copy."""
    return f"{column}_lower"


def search_key(model: type[Any], column: str) -> Column[Any]:
    """The lower-cased copy of `model`'s text `column` (a table column, not a mapped one)."""
    table: Table = model.__table__
    return table.c[search_key_name(column)]


def _add_search_key(model: type[Any], column: str) -> None:
    table: Table = model.__table__
    source = table.c[column]
    name = search_key_name(column)
    key = Column(name, source.type, Computed(f"lower({column})", persisted=True))
    table.append_column(key)
    Index(
        f"ix_{table.name}_search_{column}",
        table.c.tenant_id,
        key,
        *(table.c[tail] for tail in SEARCH_INDEX_TAIL),
        postgresql_ops={name: "text_pattern_ops"},
    )


for _model in (Account, Contact, Lead, Opportunity, Activity, Note):
    for _column in SEARCH_INDEXES[_model.__tablename__]:
        _add_search_key(_model, _column)
