"""Supervisors' scores of calls, for the quality share.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_scores",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("call_id", sa.String(length=32), nullable=False),
        sa.Column("supervisor", sa.String(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name="fk_call_scores_call_id_calls"),
        sa.PrimaryKeyConstraint("id", name="pk_call_scores"),
    )
    op.create_index("ix_call_scores_call_id", "call_scores", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_call_scores_call_id", table_name="call_scores")
    op.drop_table("call_scores")
