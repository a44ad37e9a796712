"""sync: change log + counter, pushed mutations, conflicts (issue 4).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from aisha_server.db.base import JSONType, UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("sync_counters", "sync_changes", "sync_mutations", "sync_conflicts")


def _app_role() -> str:
    role = context.config.attributes.get("app_role") if context.config else None
    return str(role or "aisha_app")


def upgrade() -> None:
    op.create_table(
        "sync_counters",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("pruned_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_sync_counters_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_sync_counters")),
    )  # fmt: skip
    op.create_table(
        "sync_changes",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("entity", sa.String(length=50), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("op", sa.String(length=10), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changes", JSONType, nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("assigned_to", sa.Uuid(), nullable=True),
        sa.Column("department", sa.String(length=100), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("client_id", sa.String(length=100), nullable=True),
        sa.Column("mutation_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_sync_changes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "seq", name=op.f("pk_sync_changes")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_sync_changes_tenant_id_entity_record_id_seq"), "sync_changes",
        ["tenant_id", "entity", "record_id", "seq"],
    )  # fmt: skip
    op.create_index(
        op.f("ix_sync_changes_tenant_id_created_at"), "sync_changes", ["tenant_id", "created_at"]
    )
    op.create_table(
        "sync_mutations",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("mutation_id", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("result", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_sync_mutations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "client_id", "mutation_id", name=op.f("pk_sync_mutations")
        ),
    )  # fmt: skip
    op.create_index(op.f("ix_sync_mutations_created_at"), "sync_mutations", ["created_at"])
    op.create_table(
        "sync_conflicts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("entity", sa.String(length=50), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=False),
        sa.Column("server_version", sa.Integer(), nullable=False),
        sa.Column("server_value", JSONType, nullable=True),
        sa.Column("client_value", JSONType, nullable=True),
        sa.Column("server_actor_id", sa.Uuid(), nullable=True),
        sa.Column("server_changed_at", UTCDateTime(), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("mutation_id", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolution", sa.String(length=20), nullable=True),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.Column("resolved_value", JSONType, nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_sync_conflicts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_conflicts")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_sync_conflicts_tenant_id_user_id_resolved_at"), "sync_conflicts",
        ["tenant_id", "user_id", "resolved_at"],
    )  # fmt: skip
    op.create_index(
        op.f("ix_sync_conflicts_tenant_id_entity_record_id"), "sync_conflicts",
        ["tenant_id", "entity", "record_id"],
    )  # fmt: skip
    if op.get_bind().dialect.name == "postgresql":
        role = _app_role()
        for table in TABLES:
            op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{table}" TO "{role}"')
            op.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
            op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
            op.execute(
                f"""CREATE POLICY tenant_isolation ON "{table}" FOR ALL
                USING (app_bypass_rls() OR tenant_id = current_tenant_id())
                WITH CHECK (app_bypass_rls() OR tenant_id = current_tenant_id())"""
            )
        op.execute("ALTER TABLE sync_conflicts ALTER COLUMN id SET DEFAULT gen_random_uuid()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        role = _app_role()
        for table in TABLES:
            op.execute(f'REVOKE ALL ON "{table}" FROM "{role}"')
    op.drop_table("sync_conflicts")
    op.drop_table("sync_mutations")
    op.drop_table("sync_changes")
    op.drop_table("sync_counters")
