"""retry log, queue and pace

Revision ID: 0001
Revises:
Create Date: 2026-11-26 16:55:02.678994
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partoo_pace",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("next_slot_at", sa.Double(), nullable=False),
        sa.Column("paused_until", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_partoo_pace")),
    )
    op.create_table(
        "retry_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("response_url", sa.Text(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("correlation_id", sa.String(length=32), nullable=False),
        sa.Column("root_channel", sa.String(length=32), nullable=True),
        sa.Column("root_ts", sa.String(length=32), nullable=True),
        sa.Column("announced_at", sa.Double(), nullable=True),
        sa.Column("announce_lease_until", sa.Double(), nullable=True),
        sa.Column("uses_response_url", sa.Boolean(), nullable=False),
        sa.Column("progress_shown", sa.Integer(), nullable=False),
        sa.Column("progress_shown_at", sa.Double(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("summary_lease_until", sa.Double(), nullable=True),
        sa.Column("summarized_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retry_batches")),
    )
    op.create_table(
        "retry_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(length=32), nullable=False),
        sa.Column("requested_at", sa.Double(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("next_attempt_at", sa.Double(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.Column("in_flight_since", sa.Double(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_attempt_at", sa.Double(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("report_lease_until", sa.Double(), nullable=True),
        sa.Column("reported_at", sa.Double(), nullable=True),
        sa.Column("logged_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["retry_batches.id"], name=op.f("fk_retry_requests_batch_id_retry_batches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retry_requests")),
    )
    with op.batch_alter_table("retry_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_retry_requests_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index("ix_retry_requests_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_retry_requests_finished", ["finished_at"], unique=False)
        batch_op.create_index("ix_retry_requests_message", ["message_id", "requested_at"], unique=False)
        batch_op.create_index(
            "uq_retry_requests_active_message",
            ["message_id"],
            unique=True,
            sqlite_where=sa.text("state IN ('queued', 'running')"),
            postgresql_where=sa.text("state IN ('queued', 'running')"),
        )

    op.create_table(
        "retry_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"], ["retry_requests.id"], name=op.f("fk_retry_attempts_request_id_retry_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retry_attempts")),
    )
    with op.batch_alter_table("retry_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_retry_attempts_request_id"), ["request_id"], unique=False)

    # The pace row exists from the start so that reserving a call slot is a single UPDATE.
    pace = sa.table("partoo_pace", sa.column("name"), sa.column("next_slot_at"), sa.column("paused_until"))
    op.bulk_insert(pace, [{"name": "partoo", "next_slot_at": 0.0, "paused_until": 0.0}])


def downgrade() -> None:
    with op.batch_alter_table("retry_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retry_attempts_request_id"))

    op.drop_table("retry_attempts")
    with op.batch_alter_table("retry_requests", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_retry_requests_active_message",
            sqlite_where=sa.text("state IN ('queued', 'running')"),
            postgresql_where=sa.text("state IN ('queued', 'running')"),
        )
        batch_op.drop_index("ix_retry_requests_message")
        batch_op.drop_index("ix_retry_requests_finished")
        batch_op.drop_index("ix_retry_requests_due")
        batch_op.drop_index(batch_op.f("ix_retry_requests_batch_id"))

    op.drop_table("retry_requests")
    op.drop_table("retry_batches")
    op.drop_table("partoo_pace")
