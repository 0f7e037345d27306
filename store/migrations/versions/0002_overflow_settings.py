"""Weekend overflow: each line's settings as its client admin left them, and their audit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "overflow_settings",
        sa.Column("line_id", sa.String(), nullable=False),
        sa.Column("switched_on", sa.Boolean(), nullable=False),
        sa.Column("settings", _json(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("line_id", name="pk_overflow_settings"),
    )
    op.create_table(
        "overflow_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("line_id", sa.String(), nullable=False),
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("change", sa.String(), nullable=False),
        sa.Column("old", _json(), nullable=False),
        sa.Column("new", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_overflow_audit"),
    )
    op.create_index("ix_overflow_audit_client_id_at", "overflow_audit", ["client_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_overflow_audit_client_id_at", table_name="overflow_audit")
    op.drop_table("overflow_audit")
    op.drop_table("overflow_settings")
