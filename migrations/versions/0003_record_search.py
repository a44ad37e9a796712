"""records: prefix-search indexes and lower-cased e-mails.

`q` on record lists (services/search.py) matches the start of names, companies, subjects and
titles through (tenant_id, lower(column)) indexes — `text_pattern_ops` on PostgreSQL, so a
left-anchored LIKE uses them under any collation — and the start of e-mail addresses through
the (tenant_id, email) indexes, which needs every stored address lower-cased: addresses
written before the service normalised them are lower-cased here.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (tenant_id, column) indexes that prefix search reads besides equality look-ups: on
# PostgreSQL they become text_pattern_ops (which serves = and left-anchored LIKE alike)
PATTERN_INDEXES: dict[str, tuple[str, ...]] = {
    "accounts": ("email", "phone_e164"),
    "contacts": ("email", "phone_e164", "mobile_e164"),
    "leads": ("email", "phone_e164"),
}
SEARCH_INDEXES: dict[str, tuple[str, ...]] = {
    "accounts": ("name",),
    "contacts": ("first_name", "last_name", "company"),
    "leads": ("first_name", "last_name", "company"),
    "opportunities": ("name",),
    "activities": ("subject",),
    "notes": ("title",),
}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, columns in SEARCH_INDEXES.items():
        for column in columns:
            name = f"ix_{table}_search_{column}"
            if postgres:
                op.execute(
                    f"CREATE INDEX {name} ON {table} (tenant_id, lower({column}) text_pattern_ops)"
                )
            else:
                op.create_index(name, table, ["tenant_id", sa.text(f"lower({column})")])
    if postgres:
        for table, columns in PATTERN_INDEXES.items():
            for column in columns:
                name = f"ix_{table}_tenant_id_{column}"
                op.execute(f"DROP INDEX {name}")
                op.execute(f"CREATE INDEX {name} ON {table} (tenant_id, {column} text_pattern_ops)")
    for table in ("accounts", "contacts", "leads"):
        op.execute(
            f"UPDATE {table} SET email = lower(trim(email))"
            " WHERE email IS NOT NULL AND email <> lower(trim(email))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, columns in PATTERN_INDEXES.items():
            for column in columns:
                name = f"ix_{table}_tenant_id_{column}"
                op.execute(f"DROP INDEX {name}")
                op.execute(f"CREATE INDEX {name} ON {table} (tenant_id, {column})")
    for table, columns in SEARCH_INDEXES.items():
        for column in columns:
            op.drop_index(f"ix_{table}_search_{column}", table_name=table)
