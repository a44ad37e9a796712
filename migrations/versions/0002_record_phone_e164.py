"""records: E.164 phone columns (derived from the phones as entered) and the indexes that
duplicate detection looks up: (tenant_id, phone_e164), (tenant_id, mobile_e164) and
(tenant_id, email) on accounts (contacts and leads have theirs since 0001).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_e164", sa.String(length=20), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_accounts_tenant_id_email"), ["tenant_id", "email"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_accounts_tenant_id_phone_e164"), ["tenant_id", "phone_e164"],
            unique=False,
        )  # fmt: skip
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_e164", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("mobile_e164", sa.String(length=20), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_contacts_tenant_id_phone_e164"), ["tenant_id", "phone_e164"],
            unique=False,
        )  # fmt: skip
        batch_op.create_index(
            batch_op.f("ix_contacts_tenant_id_mobile_e164"), ["tenant_id", "mobile_e164"],
            unique=False,
        )  # fmt: skip
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_e164", sa.String(length=20), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_leads_tenant_id_phone_e164"), ["tenant_id", "phone_e164"],
            unique=False,
        )  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leads_tenant_id_phone_e164"))
        batch_op.drop_column("phone_e164")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_tenant_id_mobile_e164"))
        batch_op.drop_index(batch_op.f("ix_contacts_tenant_id_phone_e164"))
        batch_op.drop_column("mobile_e164")
        batch_op.drop_column("phone_e164")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_tenant_id_phone_e164"))
        batch_op.drop_index(batch_op.f("ix_accounts_tenant_id_email"))
        batch_op.drop_column("phone_e164")
