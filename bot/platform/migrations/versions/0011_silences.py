"""silences: failures of a business, partner or cause held back until a time, then summed up in one digest

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 02:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("until", sa.Double(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("origin_message_id", sa.BigInteger(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("ended_by", sa.String(length=32), nullable=True),
        sa.Column("summarized_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
    )
    op.create_index("ix_silences_open", "silences", ["summarized_at", "until"])
    # Plain ADD COLUMN, nullable: no table rebuild on SQLite, nothing to backfill (no alert was held yet).
    op.add_column("alerts", sa.Column("silence_id", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_alerts_silence_id"), "alerts", ["silence_id"])
    op.add_column("alert_digests", sa.Column("silence_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_digests") as batch:
        batch.drop_column("silence_id")
    op.drop_index(op.f("ix_alerts_silence_id"), table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("silence_id")
    op.drop_index("ix_silences_open", table_name="silences")
    op.drop_table("silences")
