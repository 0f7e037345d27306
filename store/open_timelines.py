"""The timelines of the calls this process has open, kept beside the database.

While the database is away, closing a call still has to give its caller the
call's summary, which is folded from the whole timeline: the part written
before the outage is out of reach then. So the records keep, in memory, the
events of every call they opened until it closes (a few dozen small events a
call). Calls closed elsewhere (another node sweeping this one's) would stay:
beyond `limit` calls, the oldest are dropped.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from dialplan.timeline import CallSummary, TimelineEvent, summarize


class SummaryUnavailable(LookupError):
    """The call was closed while the database was away, and its timeline is not known here."""

    def __init__(self, call_id: str) -> None:
        super().__init__(f"call {call_id!r} is closed (buffered), but its timeline is not known to this process")
        self.call_id = call_id


@dataclass
class _Open:
    worker: int | None
    node: str
    events: list[TimelineEvent] = field(default_factory=list)


class OpenTimelines:
    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._calls: dict[str, _Open] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def opened(self, call_id: str, worker: int | None, node: str, events: Sequence[TimelineEvent]) -> None:
        self._calls[call_id] = _Open(worker, node, list(events))
        while len(self._calls) > self.limit:
            del self._calls[next(iter(self._calls))]

    def appended(self, call_id: str, events: Sequence[TimelineEvent]) -> None:
        call = self._calls.get(call_id)
        if call is not None:
            call.events.extend(events)

    def closing(self, call_id: str, events: Sequence[TimelineEvent]) -> list[TimelineEvent] | None:
        """The whole timeline once `events` close it (None if unknown); the call is forgotten."""
        call = self._calls.pop(call_id, None)
        return None if call is None else [*call.events, *events]

    def interrupted(self, call_ids: Collection[str] | None, worker: int | None, node: str | None) -> list[str]:
        """Forget the open calls matching every given filter; their ids, sorted like the database's."""
        wanted = None if call_ids is None else set(call_ids)
        matching = sorted(
            call_id
            for call_id, call in self._calls.items()
            if (wanted is None or call_id in wanted)
            and (worker is None or call.worker == worker)
            and (node is None or call.node == node)
        )
        for call_id in matching:
            del self._calls[call_id]
        return matching


def summary_of(call_id: str, timeline: list[TimelineEvent] | None) -> CallSummary:
    if timeline is None:
        raise SummaryUnavailable(call_id)
    return summarize(timeline)
