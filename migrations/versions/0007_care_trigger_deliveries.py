"""care_trigger_deliveries: the durable outbox of C.A.R.E. workflow triggers (guide 13.6).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from aisha_server.db.base import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "care_trigger_deliveries"


def _app_role() -> str:
    role = context.config.attributes.get("app_role") if context.config else None
    return str(role or "aisha_app")


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("trigger_type", sa.String(length=64), nullable=True),
        sa.Column("entity_type", sa.String(length=50), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("action_origin", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rounds", sa.Integer(), server_default="0", nullable=False),
        sa.Column("replays", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_http_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"],
            name=op.f("fk_care_trigger_deliveries_tenant_id_tenants"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_trigger_deliveries")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_care_trigger_deliveries_status_next_attempt_at"), TABLE,
        ["status", "next_attempt_at"],
    )  # fmt: skip
    op.create_index(
        op.f("ix_care_trigger_deliveries_tenant_id_created_at_id"), TABLE,
        ["tenant_id", "created_at", "id"],
    )  # fmt: skip
    op.create_index(op.f("ix_care_trigger_deliveries_created_at_id"), TABLE, ["created_at", "id"])
    if op.get_bind().dialect.name == "postgresql":
        role = _app_role()
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{TABLE}" TO "{role}"')
        op.execute(f'ALTER TABLE "{TABLE}" ENABLE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{TABLE}" FORCE ROW LEVEL SECURITY')
        op.execute(
            f"""CREATE POLICY tenant_isolation ON "{TABLE}" FOR ALL
            USING (app_bypass_rls() OR tenant_id = current_tenant_id())
            WITH CHECK (app_bypass_rls() OR tenant_id = current_tenant_id())"""
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f'REVOKE ALL ON "{TABLE}" FROM "{_app_role()}"')
    op.drop_table(TABLE)
