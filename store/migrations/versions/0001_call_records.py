"""Call records: one row per call and its event timeline.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Revisions are history: they spell their types out instead of importing today's models.

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("sip_call_id", sa.String(), nullable=False),
        sa.Column("caller", sa.String(), nullable=False),
        sa.Column("caller_display", sa.String(), nullable=True),
        sa.Column("did", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("client_id", sa.String(), nullable=True),
        sa.Column("line_id", sa.String(), nullable=True),
        sa.Column("worker", sa.Integer(), nullable=True),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("sip_status", sa.Integer(), nullable=True),
        sa.Column("ended_by", sa.String(), nullable=True),
        sa.Column("answered_by", sa.String(), nullable=True),
        sa.Column("arrived_at", _utc(), nullable=False),
        sa.Column("ended_at", _utc(), nullable=True),
        sa.Column("arrived_mono", sa.Double(), nullable=False),
        sa.Column("last_mono", sa.Double(), nullable=False),
        sa.Column("last_alive_at", _utc(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("queue_wait_ms", sa.BigInteger(), nullable=True),
        sa.Column("ring_ms", sa.BigInteger(), nullable=True),
        sa.Column("talk_ms", sa.BigInteger(), nullable=True),
        sa.Column("hold_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_calls"),
    )
    op.create_index("ix_calls_arrived_at", "calls", ["arrived_at"])
    op.create_index("ix_calls_client_id_arrived_at", "calls", ["client_id", "arrived_at"])
    op.create_index("ix_calls_outcome", "calls", ["outcome"])
    op.create_index("ix_calls_sip_call_id", "calls", ["sip_call_id"])

    op.create_table(
        "call_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("call_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("mono", sa.Double(), nullable=False),
        sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name="fk_call_events_call_id_calls"),
        sa.PrimaryKeyConstraint("id", name="pk_call_events"),
        sa.UniqueConstraint("call_id", "seq", name="uq_call_events_call_id_seq"),
    )


def downgrade() -> None:
    op.drop_table("call_events")
    op.drop_index("ix_calls_sip_call_id", table_name="calls")
    op.drop_index("ix_calls_outcome", table_name="calls")
    op.drop_index("ix_calls_client_id_arrived_at", table_name="calls")
    op.drop_index("ix_calls_arrived_at", table_name="calls")
    op.drop_table("calls")
