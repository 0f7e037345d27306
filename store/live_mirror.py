"""Shared live state that survives Redis going away: this node's own writes are also kept in memory.

Redis keeps nothing on disk here, so a restart empties it, and a network
fault can hide it for a while. Either way the bridge keeps serving: every
write also goes to a local copy, reads fall back to it, and once Redis
answers again this node writes its agents and queue entries back (and
drops the entries it no longer has). Meanwhile `ping` fails, so /healthz
says the state is degraded, and `describe` says since when.

While degraded, reservations are local: two nodes could ring the same
agent. That is the price of serving at all; it ends with the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from redis.exceptions import RedisError

from store.live_memory import MemoryLiveState
from store.live_state import AgentLive, LiveState, QueueEntry

log = structlog.get_logger("store.live_mirror")

T = TypeVar("T")
# A Redis that neither answers nor refuses must not hold up a call: give up on it this soon.
OPERATION_TIMEOUT_S = 0.5
RETRY_EVERY_S = 1.0
_FAULTS = (RedisError, OSError, TimeoutError)


class MirroredLiveState:
    def __init__(
        self,
        shared: LiveState,
        *,
        node: str,
        timeout_s: float = OPERATION_TIMEOUT_S,
        retry_every_s: float = RETRY_EVERY_S,
    ) -> None:
        self.shared = shared
        self.local = MemoryLiveState()
        self.node = node
        self.timeout_s = timeout_s
        self.retry_every_s = retry_every_s
        self.degraded_since: datetime | None = None
        self._healer: asyncio.Task[None] | None = None

    # ---- the two paths -------------------------------------------------------------------------

    async def _shared(self, operation: Callable[[LiveState], Awaitable[T]]) -> T | None:
        """The operation on Redis; None (and degraded from now) if Redis can't do it."""
        if self.degraded_since is not None:
            return None
        try:
            async with asyncio.timeout(self.timeout_s):
                return await operation(self.shared)
        except _FAULTS as exc:
            self._degrade(exc)
            return None

    def _degrade(self, exc: BaseException) -> None:
        if self.degraded_since is None:
            self.degraded_since = datetime.now(UTC)
            log.error("live_state_degraded", error=repr(exc), serving="this node's memory")
        if self._healer is None or self._healer.done():
            self._healer = asyncio.create_task(self._heal())

    async def _heal(self) -> None:
        while self.degraded_since is not None:
            await asyncio.sleep(self.retry_every_s)
            try:
                async with asyncio.timeout(self.timeout_s * 20):
                    await self.shared.ping()
                    written = await self._write_back()
            except _FAULTS:
                continue
            log.warning("live_state_restored", since=self.degraded_since.isoformat(), **written)
            self.degraded_since = None

    async def _write_back(self) -> dict[str, int]:
        """Redis again holds what this node holds: its agents, its queue entries in their order."""
        agents = await self.local.agents()
        for agent in agents:
            await self.shared.set_agent(agent)
        entries = 0
        for queue_id in await self.local.queue_ids():
            for entry in await self.local.entries(queue_id):
                await self.shared.enqueue(queue_id, entry)
                entries += 1
        dropped = 0
        for queue_id in await self.shared.queue_ids():
            mine = {e.call_id for e in await self.local.entries(queue_id)}
            for entry in await self.shared.entries(queue_id):
                if entry.data.get("node") == self.node and entry.call_id not in mine:
                    dropped += await self.shared.remove(queue_id, entry.call_id)
        return {"agents": len(agents), "entries": entries, "dropped": dropped}

    # ---- queues ----------------------------------------------------------------------------------

    async def enqueue(self, queue_id: str, entry: QueueEntry) -> int:
        position = await self.local.enqueue(queue_id, entry)
        shared = await self._shared(lambda s: s.enqueue(queue_id, entry))
        return position if shared is None else shared

    async def remove(self, queue_id: str, call_id: str) -> bool:
        removed = await self.local.remove(queue_id, call_id)
        shared = await self._shared(lambda s: s.remove(queue_id, call_id))
        return removed if shared is None else shared

    async def position(self, queue_id: str, call_id: str) -> int | None:
        shared = await self._shared(lambda s: s.position(queue_id, call_id))
        return await self.local.position(queue_id, call_id) if self.degraded_since is not None else shared

    async def entries(self, queue_id: str) -> list[QueueEntry]:
        shared = await self._shared(lambda s: s.entries(queue_id))
        return await self.local.entries(queue_id) if shared is None else shared

    async def queue_ids(self) -> list[str]:
        shared = await self._shared(lambda s: s.queue_ids())
        return await self.local.queue_ids() if shared is None else shared

    # ---- agents ----------------------------------------------------------------------------------

    async def set_agent(self, agent: AgentLive) -> None:
        await self.local.set_agent(agent)
        await self._shared(lambda s: s.set_agent(agent))

    async def get_agent(self, login: str) -> AgentLive | None:
        shared = await self._shared(lambda s: s.get_agent(login))
        return await self.local.get_agent(login) if self.degraded_since is not None else shared

    async def agents(self) -> list[AgentLive]:
        shared = await self._shared(lambda s: s.agents())
        return await self.local.agents() if shared is None else shared

    async def reserve_agent(
        self, login: str, call_id: str, expect_state: str = "available", *, at: datetime | None = None
    ) -> bool:
        shared = await self._shared(lambda s: s.reserve_agent(login, call_id, expect_state, at=at))
        if shared is None:
            return await self.local.reserve_agent(login, call_id, expect_state, at=at)
        if shared:
            # Redis decided (against every node); the local copy follows it.
            agent = await self._shared(lambda s: s.get_agent(login))
            if agent is not None:
                await self.local.set_agent(agent)
        return shared

    async def release_agent(self, login: str, call_id: str, new_state: str, *, at: datetime | None = None) -> bool:
        released = await self.local.release_agent(login, call_id, new_state, at=at)
        shared = await self._shared(lambda s: s.release_agent(login, call_id, new_state, at=at))
        return released if shared is None else shared

    # ---- lifecycle -------------------------------------------------------------------------------

    async def ping(self) -> float:
        """Redis's round trip; raises while Redis is away (the state is then degraded)."""
        if self.degraded_since is not None:
            raise ConnectionError(f"Redis unreachable since {self.degraded_since.isoformat()}")
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self.shared.ping()
        except _FAULTS as exc:
            # Found by /healthz before any call needed Redis: write back as soon as it answers.
            self._degrade(exc)
            raise

    async def close(self) -> None:
        if self._healer is not None:
            self._healer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._healer
        await self.shared.close()

    def describe(self) -> str:
        where = self.shared.describe()
        if self.degraded_since is None:
            return where
        return f"{where} (degraded since {self.degraded_since.isoformat()}: serving from this node's memory)"
