"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC instant in, a timezone-aware UTC instant out.

    PostgreSQL keeps the offset (timestamptz); SQLite keeps none, so values are
    stored there as naive UTC and marked UTC again when read. Naive input is
    refused: its meaning depends on the host's zone, and these stamps feed pay.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: give a timezone-aware instant")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_document() -> TypeEngine[Any]:
    return JSON().with_variant(JSONB(), "postgresql")


def big_serial() -> TypeEngine[int]:
    # SQLite only auto-numbers an INTEGER PRIMARY KEY (a rowid alias), never BIGINT.
    return BigInteger().with_variant(Integer(), "sqlite")
