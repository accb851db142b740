"""bulk_plans: what `/partoo-retry failed …` showed, so that its buttons carry only an id

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new table: nothing to rebuild, nothing to backfill (plans live ten minutes).
    op.create_table(
        "bulk_plans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("requested_by", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("filter_text", sa.Text(), nullable=False),
        sa.Column("message_ids", sa.Text(), nullable=False),
        sa.Column("anyway_ids", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("anyway_requested_by", sa.String(length=32), nullable=True),
        sa.Column("anyway_batch_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_plans")),
    )
    op.create_index("ix_bulk_plans_expires_at", "bulk_plans", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_bulk_plans_expires_at", table_name="bulk_plans")
    op.drop_table("bulk_plans")
