"""conversation checks: cached verdicts, alert verdicts, "retry anyway" and "not confirmed"

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation_checks",
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("verdict", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_conversation_checks")),
    )
    op.create_index(op.f("ix_conversation_checks_checked_at"), "conversation_checks", ["checked_at"], unique=False)
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("verdict", sa.Text(), nullable=True))
        batch.add_column(sa.Column("check_lease_until", sa.Double(), nullable=True))
    with op.batch_alter_table("retry_batches") as batch:
        batch.add_column(sa.Column("retry_anyway", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    with op.batch_alter_table("retry_requests") as batch:
        batch.add_column(sa.Column("not_confirmed_at", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("retry_requests") as batch:
        batch.drop_column("not_confirmed_at")
    with op.batch_alter_table("retry_batches") as batch:
        batch.drop_column("retry_anyway")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("check_lease_until")
        batch.drop_column("verdict")
    op.drop_index(op.f("ix_conversation_checks_checked_at"), table_name="conversation_checks")
    op.drop_table("conversation_checks")
