"""C.A.R.E. controls: tenant pause, custom policy rules, approval queue, escalation dedupe
keys, scan cursors, and the (tenant_id, due_date) index of the overdue-activity check.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from aisha_server.db.base import JSONType, UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "care_tenant_controls",
    "care_policy_rules",
    "care_approvals",
    "care_escalation_keys",
    "care_scan_cursors",
)


def _app_role() -> str:
    role = context.config.attributes.get("app_role") if context.config else None
    return str(role or "aisha_app")


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="CASCADE",
    )  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "care_tenant_controls",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("paused_at", UTCDateTime(), nullable=True),
        sa.Column("paused_by", sa.Uuid(), nullable=True),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        _tenant_fk("care_tenant_controls"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_care_tenant_controls")),
    )
    op.create_table(
        "care_policy_rules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("action_type", sa.String(length=50), nullable=False),
        sa.Column("states", JSONType, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("action_origin", sa.String(length=32), nullable=True),
        sa.Column("entity_type", sa.String(length=50), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), server_default="100", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        _tenant_fk("care_policy_rules"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_policy_rules")),
    )
    op.create_index(
        op.f("ix_care_policy_rules_tenant_id_priority"), "care_policy_rules",
        ["tenant_id", "priority"],
    )  # fmt: skip
    op.create_table(
        "care_approvals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("action_type", sa.String(length=50), nullable=False),
        sa.Column("entity_type", sa.String(length=50), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("action_origin", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("payload", JSONType, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        _tenant_fk("care_approvals"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_approvals")),
    )
    op.create_index(
        op.f("ix_care_approvals_tenant_id_status_created_at"), "care_approvals",
        ["tenant_id", "status", "created_at"],
    )  # fmt: skip
    op.create_table(
        "care_escalation_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("trigger_type", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=50), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        _tenant_fk("care_escalation_keys"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_escalation_keys")),
    )
    op.create_index(
        op.f("ix_care_escalation_keys_tenant_id_dedupe_key"), "care_escalation_keys",
        ["tenant_id", "dedupe_key"], unique=True,
    )  # fmt: skip
    op.create_index(
        op.f("ix_care_escalation_keys_created_at"), "care_escalation_keys", ["created_at"]
    )
    op.create_table(
        "care_scan_cursors",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("check_name", sa.String(length=64), nullable=False),
        sa.Column("position", UTCDateTime(), nullable=True),
        sa.Column("last_id", sa.Uuid(), nullable=True),
        sa.Column("scanned_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        _tenant_fk("care_scan_cursors"),
        sa.PrimaryKeyConstraint("tenant_id", "check_name", name=op.f("pk_care_scan_cursors")),
    )
    op.create_index("ix_activities_tenant_id_due_date", "activities", ["tenant_id", "due_date"])
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


def downgrade() -> None:
    op.drop_index("ix_activities_tenant_id_due_date", table_name="activities")
    if op.get_bind().dialect.name == "postgresql":
        role = _app_role()
        for table in TABLES:
            op.execute(f'REVOKE ALL ON "{table}" FROM "{role}"')
    for table in reversed(TABLES):
        op.drop_table(table)
