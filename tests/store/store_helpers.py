"""Shared by the store tests (imported as a plain module: tests/ is not a package)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dialplan.timeline import TimelineEvent

T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
MONO0 = 5000.0


def event(kind: str, after_s: float, *, start: datetime = T0, mono0: float = MONO0, **data: Any) -> TimelineEvent:
    """An event `after_s` seconds into a call that arrived at (`start`, `mono0`)."""
    return TimelineEvent(kind=kind, at=start + timedelta(seconds=after_s), mono=mono0 + after_s, data=data)
