"""fencing tokens for the notifier's, the log channel's, the health notice's and the conversation checks' leases;
a lease for retention's pass

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 00:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# (table, column, type): tokens start at 0, lease ends empty (bot.platform.leases).
_COLUMNS = [
    ("retry_batches", "announce_token", "token"),
    ("retry_batches", "summary_token", "token"),
    ("retry_requests", "report_token", "token"),
    ("retry_requests", "log_lease_until", "until"),
    ("retry_requests", "log_token", "token"),
    ("webhook_watch", "notice_token", "token"),
    ("alerts", "check_token", "token"),
]


def upgrade() -> None:
    # Plain ADD COLUMN, with a constant default: no table rebuild on SQLite, instant on PostgreSQL.
    for table, column, kind in _COLUMNS:
        if kind == "token":
            op.add_column(table, sa.Column(column, sa.Integer(), nullable=False, server_default="0"))
        else:
            op.add_column(table, sa.Column(column, sa.Double(), nullable=True))
    leases = op.create_table(
        "loop_leases",
        sa.Column("name", sa.String(length=32), primary_key=True),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.Column("lease_token", sa.Integer(), nullable=False, server_default="0"),
    )
    op.bulk_insert(leases, [{"name": "retention", "lease_until": None, "lease_token": 0}])


def downgrade() -> None:
    op.drop_table("loop_leases")
    for table, column, _kind in reversed(_COLUMNS):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
