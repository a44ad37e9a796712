"""records: lower-cased search copies, so prefix search uses its indexes under RLS.

The (tenant_id, lower(column)) expression indexes of 0003 were never used on PostgreSQL by
the server: it works as the application role under FORCE ROW LEVEL SECURITY, the tenant
policy acts as a security barrier, and a user condition is applied at an index only when every
function in it is LEAKPROOF.  `lower()` and LIKE are not, so every search read the tenant's
rows one by one.  Here each searched column gets a lower-cased copy the database maintains
(a generated column: STORED on PostgreSQL, VIRTUAL on SQLite, which cannot add a STORED column
to an existing table; there only the index holds the value), and the search indexes move to
(tenant_id, copy) - `text_pattern_ops` on PostgreSQL, whose `~>=~` / `~<~` operators are
leakproof - under the same names.  Nothing that writes records changes: inserts (ORM, bulk
INSERT, COPY) never name the copies.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> searched column -> its varchar length (as the column itself)
SEARCHED: dict[str, dict[str, int]] = {
    "accounts": {"name": 300},
    "contacts": {"first_name": 100, "last_name": 100, "company": 300},
    "leads": {"first_name": 100, "last_name": 100, "company": 300},
    "opportunities": {"name": 300},
    "activities": {"subject": 500},
    "notes": {"title": 500},
}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, columns in SEARCHED.items():
        added = [
            f"ADD COLUMN {column}_lower VARCHAR({length})"
            f" GENERATED ALWAYS AS (lower({column})) {'STORED' if postgres else 'VIRTUAL'}"
            for column, length in columns.items()
        ]
        if postgres:  # one rewrite of the table for all its copies
            op.execute(f"ALTER TABLE {table} {', '.join(added)}")
        else:  # SQLite adds one column per statement (and rewrites nothing)
            for clause in added:
                op.execute(f"ALTER TABLE {table} {clause}")
        for column in columns:
            name = f"ix_{table}_search_{column}"
            ops = " text_pattern_ops" if postgres else ""
            op.execute(f"DROP INDEX {name}")
            op.execute(f"CREATE INDEX {name} ON {table} (tenant_id, {column}_lower{ops})")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, columns in SEARCHED.items():
        for column in columns:
            name = f"ix_{table}_search_{column}"
            ops = " text_pattern_ops" if postgres else ""
            op.execute(f"DROP INDEX {name}")
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}_lower")
            op.execute(f"CREATE INDEX {name} ON {table} (tenant_id, lower({column}){ops})")
