"""Agents' state spans (available, ringing, on call, ...), for occupancy in reports.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agent_state_spans",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("agent", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("ended_at", _utc(), nullable=True),
        sa.Column("seen_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agent_state_spans"),
    )
    op.create_index("ix_agent_state_spans_agent_started_at", "agent_state_spans", ["agent", "started_at"])
    op.create_index("ix_agent_state_spans_ended_at_node", "agent_state_spans", ["ended_at", "node"])


def downgrade() -> None:
    op.drop_index("ix_agent_state_spans_ended_at_node", table_name="agent_state_spans")
    op.drop_index("ix_agent_state_spans_agent_started_at", table_name="agent_state_spans")
    op.drop_table("agent_state_spans")
