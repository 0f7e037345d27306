"""Time as the routing code sees it: injected, so tests can hold it still."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on the host's monotonic clock."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class ManualClock:
    """A clock that only moves when told to."""

    current: datetime
    mono: float = 1000.0

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.current += timedelta(seconds=seconds)
        self.mono += seconds


def iso_z(instant: datetime | None) -> str | None:
    """ISO 8601 in UTC with a 'Z', as the bridge's JSON says instants: 2026-11-23T09:00:00Z."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z") if instant else None
