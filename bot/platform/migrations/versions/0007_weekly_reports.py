"""weekly reports: one row an occurrence, posted once across replicas

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 01:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new table: nothing to rebuild, nothing to backfill (the first occurrence after the upgrade is skipped).
    op.create_table(
        "weekly_reports",
        sa.Column("due_at", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("claim", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.Column("posted_at", sa.Double(), nullable=True),
        sa.Column("ts", sa.String(length=32), nullable=True),
        sa.Column("skipped", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("due_at", name=op.f("pk_weekly_reports")),
    )


def downgrade() -> None:
    op.drop_table("weekly_reports")
