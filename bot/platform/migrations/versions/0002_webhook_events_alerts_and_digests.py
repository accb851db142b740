"""webhook events, alerts and digests

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 17:09:59.365531
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_digests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("retry_requested_by", sa.String(length=32), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("posted_version", sa.Integer(), nullable=False),
        sa.Column("posted_at", sa.Double(), nullable=True),
        sa.Column("post_lease_until", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_digests")),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("processed_at", sa.Double(), nullable=True),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_webhook_events_dedupe_key")),
    )
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_events_pending", ["processed_at", "id"], unique=False)

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=True),
        sa.Column("digest_id", sa.Integer(), nullable=True),
        sa.Column("failure", sa.Text(), nullable=False),
        sa.Column("failed_at", sa.Double(), nullable=False),
        sa.Column("failed_again_at", sa.Double(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("retry_requested_by", sa.String(length=32), nullable=True),
        sa.Column("retry_requested_at", sa.Double(), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("last_outcome", sa.String(length=16), nullable=True),
        sa.Column("last_detail", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.Double(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("posted_version", sa.Integer(), nullable=False),
        sa.Column("post_lease_until", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["digest_id"], ["alert_digests.id"], name=op.f("fk_alerts_digest_id_alert_digests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("message_id", name=op.f("uq_alerts_message_id")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_digest_id"), ["digest_id"], unique=False)
        batch_op.create_index("ix_alerts_unposted", ["posted_version", "version"], unique=False)

    with op.batch_alter_table("retry_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alert_message_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("digest_id", sa.Integer(), nullable=True))

    with op.batch_alter_table("retry_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivery", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("delivery_at", sa.Double(), nullable=True))

    # Posts to the alert channel share one pace across replicas, like calls to Partoo.
    pace = sa.table("partoo_pace", sa.column("name"), sa.column("next_slot_at"), sa.column("paused_until"))
    op.bulk_insert(pace, [{"name": "slack-alerts", "next_slot_at": 0.0, "paused_until": 0.0}])


def downgrade() -> None:
    with op.batch_alter_table("retry_requests", schema=None) as batch_op:
        batch_op.drop_column("delivery_at")
        batch_op.drop_column("delivery")

    with op.batch_alter_table("retry_batches", schema=None) as batch_op:
        batch_op.drop_column("digest_id")
        batch_op.drop_column("alert_message_id")

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_unposted")
        batch_op.drop_index(batch_op.f("ix_alerts_digest_id"))

    op.drop_table("alerts")
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_events_pending")

    op.drop_table("webhook_events")
    op.drop_table("alert_digests")
    op.execute("DELETE FROM partoo_pace WHERE name = 'slack-alerts'")
