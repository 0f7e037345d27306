"""Live state in this process's memory: for a single-process bridge, and the reference for Redis.

Atomicity comes from asyncio itself: no method awaits between reading and writing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import datetime

from store.live_state import AgentLive, QueueEntry, check_agent_state, check_call_id, moment

_SortKey = tuple[int, datetime, int]


@dataclass(frozen=True)
class _Slot:
    key: _SortKey
    entry: QueueEntry


class MemoryLiveState:
    def __init__(self) -> None:
        self._queues: dict[str, dict[str, _Slot]] = {}
        self._agents: dict[str, AgentLive] = {}
        self._seq = itertools.count()

    async def enqueue(self, queue_id: str, entry: QueueEntry) -> int:
        queue = self._queues.setdefault(queue_id, {})
        previous = queue.get(entry.call_id)
        seq = previous.key[2] if previous is not None else next(self._seq)
        queue[entry.call_id] = _Slot((-entry.priority, entry.enqueued_at, seq), entry)
        return self._ordered(queue).index(entry.call_id) + 1

    async def remove(self, queue_id: str, call_id: str) -> bool:
        queue = self._queues.get(queue_id)
        if queue is None or queue.pop(call_id, None) is None:
            return False
        if not queue:
            del self._queues[queue_id]
        return True

    async def position(self, queue_id: str, call_id: str) -> int | None:
        queue = self._queues.get(queue_id, {})
        if call_id not in queue:
            return None
        return self._ordered(queue).index(call_id) + 1

    async def entries(self, queue_id: str) -> list[QueueEntry]:
        queue = self._queues.get(queue_id, {})
        return [queue[call_id].entry for call_id in self._ordered(queue)]

    async def queue_ids(self) -> list[str]:
        return sorted(self._queues)

    async def set_agent(self, agent: AgentLive) -> None:
        self._agents[agent.login] = agent

    async def get_agent(self, login: str) -> AgentLive | None:
        return self._agents.get(login)

    async def agents(self) -> list[AgentLive]:
        return [self._agents[login] for login in sorted(self._agents)]

    async def reserve_agent(
        self, login: str, call_id: str, expect_state: str = "available", *, at: datetime | None = None
    ) -> bool:
        check_call_id(call_id)
        agent = self._agents.get(login)
        if agent is None or agent.state != expect_state or not agent.connected:
            return False
        if agent.reserved_by is not None:
            return False
        self._agents[login] = replace(agent, state="ringing", reserved_by=call_id, reason=None, since=moment(at))
        return True

    async def release_agent(self, login: str, call_id: str, new_state: str, *, at: datetime | None = None) -> bool:
        check_agent_state(new_state)
        agent = self._agents.get(login)
        if agent is None or agent.reserved_by != call_id:
            return False
        self._agents[login] = replace(agent, state=new_state, reserved_by=None, reason=None, since=moment(at))
        return True

    async def ping(self) -> float:
        return 0.0

    async def close(self) -> None:
        return None

    def describe(self) -> str:
        return "memory"

    @staticmethod
    def _ordered(queue: dict[str, _Slot]) -> list[str]:
        return sorted(queue, key=lambda call_id: queue[call_id].key)
