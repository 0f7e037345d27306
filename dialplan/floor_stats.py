"""Today's figures per queue, as a wallboard shows them, and calls waiting over the last hour.

Pure: outcomes and instants in, figures out. "Today" is the UTC day: the
counters start over at midnight UTC.

Service level is the industry's 80/20 measure: of the calls that ended
their wait today (answered or abandoned), the share answered within
`SERVICE_LEVEL_S` seconds. Callers who hang up within `SHORT_ABANDON_S`
are left out of both sides, as most contact centers do: they likely
misdialled, and no staffing would have served them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, timedelta

SERVICE_LEVEL_S = 20.0
SHORT_ABANDON_S = 5.0
HISTORY = timedelta(hours=1)
SAMPLE_EVERY = timedelta(seconds=10)


@dataclass
class QueueDay:
    answered: int = 0
    answered_in_time: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    sent_to_fallback: int = 0
    wait_s_answered: float = 0.0

    @property
    def service_level(self) -> float | None:
        """Share (0-1) of calls answered within SERVICE_LEVEL_S; None before any call."""
        handled = self.answered + self.abandoned
        return None if handled == 0 else self.answered_in_time / handled

    @property
    def abandonment(self) -> float | None:
        handled = self.answered + self.abandoned
        return None if handled == 0 else self.abandoned / handled

    @property
    def average_answer_s(self) -> float | None:
        return None if self.answered == 0 else self.wait_s_answered / self.answered


class FloorStats:
    """Per queue, today's outcomes; per client, calls waiting sampled over the last hour."""

    def __init__(self) -> None:
        self._day: date | None = None
        self._queues: dict[str, QueueDay] = {}
        self._samples: deque[tuple[datetime, dict[str, int]]] = deque()

    def queue(self, queue_id: str, now: datetime) -> QueueDay:
        self._roll(now)
        return self._queues.setdefault(queue_id, QueueDay())

    def answered(self, queue_id: str, waited_s: float, now: datetime) -> None:
        day = self.queue(queue_id, now)
        day.answered += 1
        day.wait_s_answered += waited_s
        if waited_s <= SERVICE_LEVEL_S:
            day.answered_in_time += 1

    def abandoned(self, queue_id: str, waited_s: float, now: datetime) -> None:
        day = self.queue(queue_id, now)
        if waited_s < SHORT_ABANDON_S:
            day.short_abandoned += 1
        else:
            day.abandoned += 1

    def sent_to_fallback(self, queue_id: str, now: datetime) -> None:
        self.queue(queue_id, now).sent_to_fallback += 1

    def sample(self, waiting_by_client: dict[str, int], now: datetime) -> bool:
        """Keep one sample per SAMPLE_EVERY; True when this one was kept."""
        if self._samples and now - self._samples[-1][0] < SAMPLE_EVERY:
            return False
        self._samples.append((now, dict(waiting_by_client)))
        while self._samples and now - self._samples[0][0] > HISTORY:
            self._samples.popleft()
        return True

    def history(self, client_id: str) -> list[tuple[datetime, int]]:
        """Calls waiting for the client, oldest first, over the last hour."""
        return [(at, counts.get(client_id, 0)) for at, counts in self._samples]

    def _roll(self, now: datetime) -> None:
        if self._day != now.date():
            self._day = now.date()
            self._queues.clear()
