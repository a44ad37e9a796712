"""records: the (tenant_id, updated_at) index becomes (tenant_id, updated_at, id, deleted_at).

Lists page by `updated_at` with `id` as the tie-break (`ORDER BY updated_at DESC, id DESC`,
keyset `(updated_at, id) < (?, ?)`).  With `id` in the index the rows come out in list order
and the cursor is a seek: SQLite no longer sorts each page's ties in a temporary B-tree and
PostgreSQL no longer adds an incremental sort (measured on 1M contacts: a first page's query
385 -> 276 us on SQLite).  With `deleted_at` too, SQLite finds a page's rows (live or
tombstones) from the index alone before it reads the 50 it shows (services/records._select:
419 -> 298 us).  The index keeps its name.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("accounts", "contacts", "leads", "opportunities", "activities", "notes")


def upgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_tenant_updated", table_name=table)
        op.create_index(
            f"ix_{table}_tenant_updated", table, ["tenant_id", "updated_at", "id", "deleted_at"]
        )


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_tenant_updated", table_name=table)
        op.create_index(f"ix_{table}_tenant_updated", table, ["tenant_id", "updated_at"])
