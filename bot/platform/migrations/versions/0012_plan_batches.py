"""retry_batches.plan_filter and plan_changed: a plan's batch says its filter and what changed since the plan

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, nullable: no table rebuild on SQLite, nothing to backfill (NULL: not a plan's batch).
    op.add_column("retry_batches", sa.Column("plan_filter", sa.Text(), nullable=True))
    op.add_column("retry_batches", sa.Column("plan_changed", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("retry_batches") as batch:
        batch.drop_column("plan_changed")
        batch.drop_column("plan_filter")
