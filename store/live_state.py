"""Live state shared by the bridge's processes: call queues and agents' presence.

Nothing here is a record: it is rebuilt from reality after a restart. Two
backends keep the same contract (tests/store/test_live_state_contract.py):
in-process memory for a single process, Redis for several.

Queue order: higher priority first, then earlier ``enqueued_at``, then the
order in which calls were enqueued.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

AGENT_STATES = frozenset({"logged_out", "available", "ringing", "on_call", "wrap_up", "paused"})

# Bounded so every backend can encode the sort order in fixed-width text.
PRIORITY_MIN = -(10**9)
PRIORITY_MAX = 10**9
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(name: str, instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name}: naive datetime {instant!r}, give a timezone-aware instant")
    return instant.astimezone(UTC)


@dataclass(frozen=True, kw_only=True)
class QueueEntry:
    call_id: str
    client_id: str
    enqueued_at: datetime
    priority: int = 0
    data: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        at = _utc("enqueued_at", self.enqueued_at)
        if at < _EPOCH:
            raise ValueError(f"enqueued_at {at!r} is before 1970")
        if not PRIORITY_MIN <= self.priority <= PRIORITY_MAX:
            raise ValueError(f"priority {self.priority} outside [{PRIORITY_MIN}, {PRIORITY_MAX}]")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.data.items()):
            raise ValueError("queue entry data maps strings to strings")
        object.__setattr__(self, "enqueued_at", at)
        object.__setattr__(self, "data", dict(self.data))


@dataclass(frozen=True, kw_only=True)
class AgentLive:
    login: str
    state: str
    since: datetime
    connected: bool
    reason: str | None = None
    reserved_by: str | None = None

    def __post_init__(self) -> None:
        check_agent_state(self.state)
        if self.reserved_by is not None:
            check_call_id(self.reserved_by)
        object.__setattr__(self, "since", _utc("since", self.since))


def check_agent_state(state: str) -> str:
    if state not in AGENT_STATES:
        raise ValueError(f"agent state {state!r}: expected one of {sorted(AGENT_STATES)}")
    return state


def check_call_id(call_id: str) -> str:
    if not call_id:
        raise ValueError("a call id is a non-empty string")
    return call_id


def moment(at: datetime | None) -> datetime:
    """`at`, or now when not given: when an agent's new state began."""
    return datetime.now(UTC) if at is None else _utc("at", at)


class LiveState(Protocol):
    async def enqueue(self, queue_id: str, entry: QueueEntry) -> int:
        """Add the call, or replace its entry (keeping its place among equals); return its position.

        Positions are 1-based."""

    async def remove(self, queue_id: str, call_id: str) -> bool:
        """Take the call out of the queue; False if it was not there."""

    async def position(self, queue_id: str, call_id: str) -> int | None:
        """1-based position, None if the call is not in that queue."""

    async def entries(self, queue_id: str) -> list[QueueEntry]:
        """The queue in order, first to be served first."""

    async def queue_ids(self) -> list[str]:
        """Queues holding at least one call, sorted."""

    async def set_agent(self, agent: AgentLive) -> None:
        """Store the agent's state as given, reservation included."""

    async def get_agent(self, login: str) -> AgentLive | None: ...

    async def agents(self) -> list[AgentLive]:
        """Every known agent, sorted by login."""

    async def reserve_agent(
        self, login: str, call_id: str, expect_state: str = "available", *, at: datetime | None = None
    ) -> bool:
        """Atomically: if the agent is in `expect_state`, connected and not reserved,
        reserve it for `call_id` and make it "ringing". False otherwise."""

    async def release_agent(self, login: str, call_id: str, new_state: str, *, at: datetime | None = None) -> bool:
        """Atomically: if `call_id` holds the agent's reservation, drop it and set `new_state`."""

    async def ping(self) -> float:
        """Seconds for one round trip."""

    async def close(self) -> None: ...

    def describe(self) -> str:
        """Where the state lives, without secrets: "memory" or "redis://host:port/db"."""


async def open_live_state(redis_url: str | None, prefix: str = "hotline:") -> LiveState:
    """Memory when no Redis URL is given; otherwise Redis, checked reachable now."""
    if redis_url is None:
        from store.live_memory import MemoryLiveState

        return MemoryLiveState()
    from store.live_redis import RedisLiveState

    state = RedisLiveState.from_url(redis_url, prefix=prefix)
    try:
        await state.ping()
    except BaseException:
        await state.close()
        raise
    return state
