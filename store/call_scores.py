"""Supervisors' scores of calls: the quality share's input. Each score is committed before it is acknowledged.

A score is a supervisor's own request: while the database is away it is not buffered but refused
(DatabaseUnavailable, a 503 the supervisor can retry), as are the reads.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from store.db import writer
from store.models import CallScoreRow
from store.unreachable import needs_database

MAX_COMMENT = 2000


@dataclass(frozen=True)
class CallScore:
    call_id: str
    supervisor: str
    score: int
    comment: str
    at: datetime


class CallScores:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, score: CallScore) -> None:
        if not 1 <= score.score <= 5:
            raise ValueError(f"a score is 1 to 5, not {score.score}")
        with needs_database(f"score of call {score.call_id}"):
            async with writer(self.engine).begin() as connection:
                await connection.execute(
                    insert(CallScoreRow).values(
                        call_id=score.call_id,
                        supervisor=score.supervisor,
                        score=score.score,
                        comment=score.comment[:MAX_COMMENT],
                        at=score.at,
                    )
                )

    async def latest(self, call_ids: Collection[str]) -> dict[str, int]:
        """Each call's latest score: a supervisor may revise theirs, and the newest counts."""
        if not call_ids:
            return {}
        row = CallScoreRow
        query = select(row.call_id, row.score).where(row.call_id.in_(sorted(call_ids))).order_by(row.at, row.id)
        with needs_database("call scores"):
            async with self.engine.connect() as connection:
                return {call_id: score for call_id, score in await connection.execute(query)}

    async def of_call(self, call_id: str) -> list[CallScore]:
        row = CallScoreRow
        query = select(row.call_id, row.supervisor, row.score, row.comment, row.at).where(row.call_id == call_id)
        with needs_database(f"scores of call {call_id}"):
            async with self.engine.connect() as connection:
                return [CallScore(*r) for r in await connection.execute(query.order_by(row.at, row.id))]
