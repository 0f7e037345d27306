"""A recording's row, written by the call records' journal (and buffered with them while the database is away)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select

from store.models import RecordingRow

COLUMNS = (
    "call_id",
    "client_id",
    "file",
    "media_type",
    "duration_ms",
    "size",
    "started_by",
    "stored_at",
    "expires_at",
    "purged_at",
)
# The instants among them (ISO 8601 in the disk journal).
INSTANTS = ("stored_at", "expires_at", "purged_at")

_INSERT = insert(RecordingRow)
_EXISTS = select(RecordingRow.call_id).where(RecordingRow.call_id == bindparam("call_id"))


def add(connection: Connection, values: Mapping[str, Any]) -> None:
    connection.execute(_INSERT, [dict(values)])


def replay_add(connection: Connection, values: Mapping[str, Any]) -> None:
    """Replayed, a row that committed though its connection broke is not inserted twice."""
    if connection.execute(_EXISTS, {"call_id": values["call_id"]}).first() is None:
        add(connection, values)
