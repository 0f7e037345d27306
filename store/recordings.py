"""Recordings' rows and the audit of every access to them. Each write is committed before it is acknowledged.

Given the call records' journal, a finished call's row goes through it: while
the database is away it is fsynced to the disk journal instead, and replayed
in order once the database is back (a file whose row is lost could be neither
found nor purged). Everything else needs the database there: a read, an
access's audit or a purge mark raises DatabaseUnavailable while it is away
(the web answers 503; a playback can't be checked, nor audited, without it).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from store import recording_writes
from store.db import writer
from store.journal import Journal
from store.models import RecordingAccessRow, RecordingRow
from store.record_ops import RecordWrite
from store.unreachable import needs_database


@dataclass(frozen=True)
class Recording:
    call_id: str
    client_id: str
    file: str
    media_type: str
    duration_ms: int
    size: int
    started_by: str
    stored_at: datetime
    expires_at: datetime
    purged_at: datetime | None = None


@dataclass(frozen=True)
class RecordingAccess:
    call_id: str
    client_id: str | None
    actor: str
    role: str
    at: datetime
    granted: bool
    detail: str


_RECORDING = (
    RecordingRow.call_id,
    RecordingRow.client_id,
    RecordingRow.file,
    RecordingRow.media_type,
    RecordingRow.duration_ms,
    RecordingRow.size,
    RecordingRow.started_by,
    RecordingRow.stored_at,
    RecordingRow.expires_at,
    RecordingRow.purged_at,
)
_ACCESS = (
    RecordingAccessRow.call_id,
    RecordingAccessRow.client_id,
    RecordingAccessRow.actor,
    RecordingAccessRow.role,
    RecordingAccessRow.at,
    RecordingAccessRow.granted,
    RecordingAccessRow.detail,
)


def _recording(row: RowMapping) -> Recording:
    return Recording(**row)


class Recordings:
    def __init__(self, engine: AsyncEngine, journal: Journal | None = None) -> None:
        self.engine = engine
        # The call records' journal (started and stopped by them); None: rows are written directly.
        self.journal = journal

    async def add(self, recording: Recording) -> None:
        """Store a finished call's row; with a journal, buffered to disk while the database is away."""
        values = {name: getattr(recording, name) for name in recording_writes.COLUMNS}
        if self.journal is not None:
            await self.journal.write(RecordWrite("recording", {"values": values}))
            return
        with needs_database(f"recording {recording.call_id}"):
            async with writer(self.engine).begin() as connection:
                await connection.execute(insert(RecordingRow).values(**values))

    async def get(self, call_id: str) -> Recording | None:
        query = select(*_RECORDING).where(RecordingRow.call_id == call_id)
        with needs_database(f"recording {call_id}"):
            async with self.engine.connect() as connection:
                row = (await connection.execute(query)).first()
        return None if row is None else _recording(row._mapping)

    async def of_calls(self, call_ids: Collection[str]) -> dict[str, Recording]:
        if not call_ids:
            return {}
        query = select(*_RECORDING).where(RecordingRow.call_id.in_(sorted(call_ids)))
        with needs_database("recordings"):
            async with self.engine.connect() as connection:
                return {row[0]: _recording(row._mapping) for row in await connection.execute(query)}

    async def listed(
        self, *, since: datetime, until: datetime, client_ids: Collection[str] | None, limit: int = 500
    ) -> list[Recording]:
        """Recordings stored in [since, until), newest first; None: every client's."""
        row = RecordingRow
        query = select(*_RECORDING).where(row.stored_at >= since, row.stored_at < until)
        if client_ids is not None:
            query = query.where(row.client_id.in_(sorted(client_ids)))
        with needs_database("recordings"):
            async with self.engine.connect() as connection:
                rows = await connection.execute(query.order_by(row.stored_at.desc(), row.call_id).limit(limit))
                return [_recording(r._mapping) for r in rows]

    async def expired(self, now: datetime, limit: int = 500) -> list[Recording]:
        """Recordings past their retention and not purged yet, oldest first."""
        row = RecordingRow
        query = (
            select(*_RECORDING)
            .where(row.expires_at <= now, row.purged_at.is_(None))
            .order_by(row.expires_at, row.call_id)
            .limit(limit)
        )
        with needs_database("expired recordings"):
            async with self.engine.connect() as connection:
                return [_recording(r._mapping) for r in await connection.execute(query)]

    async def mark_purged(self, call_id: str, at: datetime) -> None:
        with needs_database(f"recording {call_id}"):
            async with writer(self.engine).begin() as connection:
                await connection.execute(
                    update(RecordingRow).where(RecordingRow.call_id == call_id).values(purged_at=at)
                )

    async def audit(self, access: RecordingAccess) -> None:
        with needs_database("recording access audit"):
            async with writer(self.engine).begin() as connection:
                await connection.execute(
                    insert(RecordingAccessRow).values(
                        call_id=access.call_id[:32],
                        client_id=access.client_id,
                        actor=access.actor,
                        role=access.role,
                        at=access.at,
                        granted=access.granted,
                        detail=access.detail[:500],
                    )
                )

    async def accesses(
        self, *, call_id: str | None = None, client_ids: Collection[str] | None = None
    ) -> list[RecordingAccess]:
        """The audit, newest first: one call's, or every call of these clients (None: all)."""
        row = RecordingAccessRow
        query = select(*_ACCESS)
        if call_id is not None:
            query = query.where(row.call_id == call_id)
        if client_ids is not None:
            query = query.where(row.client_id.in_(sorted(client_ids)))
        with needs_database("recording access audit"):
            async with self.engine.connect() as connection:
                found = await connection.execute(query.order_by(row.at.desc(), row.id.desc()))
                return [RecordingAccess(*r) for r in found]
