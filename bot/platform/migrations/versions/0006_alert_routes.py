"""retry batches answered in a message's thread (message shortcut)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 20:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable and without a default: adding it is instant on PostgreSQL and SQLite, and rows of
    # commands and clicks (which answer in their own root message or alert) keep NULL.
    with op.batch_alter_table("retry_batches") as batch:
        batch.add_column(sa.Column("thread_ts", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("retry_batches") as batch:
        batch.drop_column("thread_ts")
