"""Recordings (one compressed file per call, with its retention) and the audit of every access.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("call_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("file", sa.String(), nullable=False),
        sa.Column("media_type", sa.String(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("started_by", sa.String(), nullable=False),
        sa.Column("stored_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("purged_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name="fk_recordings_call_id_calls"),
        sa.PrimaryKeyConstraint("call_id", name="pk_recordings"),
    )
    op.create_index("ix_recordings_client_id", "recordings", ["client_id"])
    op.create_index("ix_recordings_expires_at_purged_at", "recordings", ["expires_at", "purged_at"])
    op.create_table(
        "recording_access",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("call_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(), nullable=True),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recording_access"),
    )
    op.create_index("ix_recording_access_call_id_at", "recording_access", ["call_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_recording_access_call_id_at", table_name="recording_access")
    op.drop_table("recording_access")
    op.drop_index("ix_recordings_expires_at_purged_at", table_name="recordings")
    op.drop_index("ix_recordings_client_id", table_name="recordings")
    op.drop_table("recordings")
