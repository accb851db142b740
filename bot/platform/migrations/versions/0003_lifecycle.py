"""lifecycle: alert phases, fencing tokens for leases and post claims, Slack post errors, retry generations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 20:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("retry_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_token", sa.Integer(), server_default="0", nullable=False))

    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retry_generation", sa.Integer(), server_default="0", nullable=False))

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phase", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("retry_source", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("sending_since", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("not_confirmed_at", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("post_claim", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("post_error", sa.String(length=64), nullable=True))

    with op.batch_alter_table("alert_digests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("post_claim", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("post_error", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_digests", schema=None) as batch_op:
        batch_op.drop_column("post_error")
        batch_op.drop_column("post_claim")

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("post_error")
        batch_op.drop_column("post_claim")
        batch_op.drop_column("not_confirmed_at")
        batch_op.drop_column("sending_since")
        batch_op.drop_column("retry_source")
        batch_op.drop_column("phase")

    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_column("retry_generation")

    with op.batch_alter_table("retry_requests", schema=None) as batch_op:
        batch_op.drop_column("lease_token")
