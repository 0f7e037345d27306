"""Live state that outlives a Redis restart: served from memory meanwhile, written back after."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from store.live_memory import MemoryLiveState
from store.live_mirror import MirroredLiveState
from store.live_state import AgentLive, QueueEntry

T0 = datetime(2026, 11, 23, 9, tzinfo=UTC)


class FlakyRedis:
    """A LiveState that can go down (every call raises) and come back empty, as Redis restarted."""

    def __init__(self) -> None:
        self.inner = MemoryLiveState()
        self.down = False

    def restart(self) -> None:
        self.inner = MemoryLiveState()
        self.down = False

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target) or name == "describe":
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise ConnectionError("Connection refused")
            return await target(*args, **kwargs)

        return call


def entry(call_id: str, minutes: int, node: str = "n1") -> QueueEntry:
    return QueueEntry(
        call_id=call_id, client_id="acme", enqueued_at=T0 + timedelta(minutes=minutes), data={"node": node}
    )


async def settle(mirror: MirroredLiveState) -> None:
    for _ in range(100):
        if mirror.degraded_since is None:
            return
        await asyncio.sleep(0.01)


async def test_a_redis_restart_loses_nothing_this_node_holds() -> None:
    redis = FlakyRedis()
    mirror = MirroredLiveState(redis, node="n1", retry_every_s=0.01)  # type: ignore[arg-type]
    await mirror.set_agent(AgentLive(login="alice", state="available", since=T0, connected=True))
    await mirror.enqueue("acme", entry("c1", 0))
    await mirror.enqueue("acme", entry("c2", 1))
    await redis.inner.enqueue("acme", entry("other", 2, node="n2"))

    redis.down = True
    # Served meanwhile, from memory: a new caller queues, one leaves, a reservation is made.
    assert await mirror.enqueue("acme", entry("c3", 3)) == 3
    assert mirror.degraded_since is not None
    with pytest.raises(ConnectionError):
        await mirror.ping()
    assert "degraded since" in mirror.describe()
    assert await mirror.remove("acme", "c1")
    assert await mirror.reserve_agent("alice", "c2", at=T0)
    assert [e.call_id for e in await mirror.entries("acme")] == ["c2", "c3"]

    redis.restart()  # comes back with nothing
    await redis.inner.enqueue("acme", entry("stale", 0))  # an entry of ours the outage made stale
    await settle(mirror)

    assert mirror.degraded_since is None
    assert [e.call_id for e in await redis.inner.entries("acme")] == ["c2", "c3"]
    alice = await redis.inner.get_agent("alice")
    assert alice is not None
    assert (alice.state, alice.reserved_by) == ("ringing", "c2")
    await mirror.ping()
    await mirror.close()


async def test_other_nodes_entries_survive_a_blip_and_reads_come_from_redis_when_it_answers() -> None:
    redis = FlakyRedis()
    mirror = MirroredLiveState(redis, node="n1", retry_every_s=0.01)  # type: ignore[arg-type]
    await redis.inner.enqueue("acme", entry("theirs", 0, node="n2"))
    await mirror.enqueue("acme", entry("mine", 1))
    assert [e.call_id for e in await mirror.entries("acme")] == ["theirs", "mine"], "Redis is the shared view"
    redis.down = True
    assert [e.call_id for e in await mirror.entries("acme")] == ["mine"], "only what this node holds"
    redis.down = False  # a blip: Redis kept everything
    await settle(mirror)
    assert [e.call_id for e in await redis.inner.entries("acme")] == ["theirs", "mine"]
    await mirror.close()
