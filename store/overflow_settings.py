"""Each line's overflow as its client admin left it, and the audit of every change.

A change and its audit row are one transaction, committed before the client
admin is answered: a switch that was acknowledged survives a crash, and no
change goes unaudited. While the database is away a change is refused
(DatabaseUnavailable: the admin is answered 503 and may retry), not buffered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from dialplan.clock import iso_z
from store.db import writer
from store.models import OverflowAuditRow, OverflowSettingRow
from store.unreachable import needs_database


@dataclass(frozen=True)
class SavedOverflow:
    line_id: str
    switched_on: bool
    settings: Mapping[str, Any]
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class OverflowChange:
    line_id: str
    client_id: str
    actor: str
    at: datetime
    change: str
    old: Mapping[str, Any]
    new: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "line_id": self.line_id,
            "client_id": self.client_id,
            "actor": self.actor,
            "at": iso_z(self.at),
            "change": self.change,
            "old": dict(self.old),
            "new": dict(self.new),
        }


def _saved(row: Row[Any]) -> SavedOverflow:
    return SavedOverflow(row.line_id, row.switched_on, row.settings, row.updated_at, row.updated_by)


class OverflowSettings:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def load(self) -> dict[str, SavedOverflow]:
        with needs_database("overflow settings"):
            async with self.engine.connect() as connection:
                rows = await connection.execute(select(*OverflowSettingRow.__table__.columns))
                return {row.line_id: _saved(row) for row in rows}

    async def save(self, saved: SavedOverflow, change: OverflowChange) -> None:
        """Store the line's new settings and the audit of the change, in one commit."""
        values = {
            "switched_on": saved.switched_on,
            "settings": dict(saved.settings),
            "updated_at": saved.updated_at,
            "updated_by": saved.updated_by,
        }
        with needs_database(f"overflow of line {saved.line_id}"):
            async with writer(self.engine).begin() as connection:
                row = OverflowSettingRow
                found = await connection.execute(select(row.line_id).where(row.line_id == saved.line_id))
                if found.first() is None:
                    await connection.execute(insert(row).values(line_id=saved.line_id, **values))
                else:
                    await connection.execute(update(row).where(row.line_id == saved.line_id).values(**values))
                await connection.execute(
                    insert(OverflowAuditRow).values(
                        line_id=change.line_id,
                        client_id=change.client_id,
                        actor=change.actor,
                        at=change.at,
                        change=change.change,
                        old=dict(change.old),
                        new=dict(change.new),
                    )
                )

    async def audit(self, client_ids: set[str], limit: int = 200) -> list[OverflowChange]:
        """The newest changes to these clients' lines first."""
        audit = OverflowAuditRow
        query = (
            select(*audit.__table__.columns)
            .where(audit.client_id.in_(sorted(client_ids)))
            .order_by(audit.at.desc(), audit.id.desc())
            .limit(limit)
        )
        with needs_database("overflow audit"):
            async with self.engine.connect() as connection:
                return [
                    OverflowChange(r.line_id, r.client_id, r.actor, r.at, r.change, r.old, r.new)
                    for r in await connection.execute(query)
                ]
