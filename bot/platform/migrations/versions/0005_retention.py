"""retention indexes, webhook intake counts and the silence watch

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 20:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The pruner looks rows up by age; these are the tables whose age column had no index.
    op.create_index("ix_retry_batches_created_at", "retry_batches", ["created_at"])
    op.create_index("ix_alerts_failed_at", "alerts", ["failed_at"])
    op.create_index("ix_alert_digests_created_at", "alert_digests", ["created_at"])
    # Applying an event looks for an earlier unprocessed one of the same message.
    op.create_index("ix_webhook_events_message", "webhook_events", ["message_id", "id"])
    op.create_table(
        "webhook_intake",
        sa.Column("minute", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("minute", name=op.f("pk_webhook_intake")),
    )
    op.create_table(
        "webhook_watch",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("watch_started_at", sa.Double(), nullable=False),
        sa.Column("last_delivery_at", sa.Double(), nullable=True),
        sa.Column("silent_since", sa.Double(), nullable=True),
        sa.Column("notice_due", sa.String(length=16), nullable=True),
        sa.Column("notice_lease_until", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_webhook_watch")),
    )


def downgrade() -> None:
    op.drop_table("webhook_watch")
    op.drop_table("webhook_intake")
    op.drop_index("ix_webhook_events_message", table_name="webhook_events")
    op.drop_index("ix_alert_digests_created_at", table_name="alert_digests")
    op.drop_index("ix_alerts_failed_at", table_name="alerts")
    op.drop_index("ix_retry_batches_created_at", table_name="retry_batches")
