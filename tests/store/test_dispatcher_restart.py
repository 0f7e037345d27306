"""A bridge restarted on the same Redis finds its agents as they were."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from dialplan.clock import ManualClock
from dialplan.schedule import WeeklyCalendar, WeeklySpan
from dialplan.tenant import Agent, Client, Greeting, ServedClient, Shift, Tenant
from harness.services import REDIS_URL
from store.live_redis import RedisLiveState
from telephony.dispatcher import Dispatcher, QueuedCall

MON_9 = datetime(2026, 11, 23, 9, tzinfo=UTC)


@dataclass
class Link:
    messages: list[dict[str, Any]] = field(default_factory=list)

    def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    async def close(self, reason: str) -> None:
        return None

    def state(self) -> tuple[str, str | None]:
        last = [m for m in self.messages if m["type"] == "state"][-1]
        return last["state"], last["reason"]


class Nothing:
    async def request(self, index: int, kind: str, body: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        return {"sdp": "v=0"}

    def record(self, call_id: str, events: Any) -> None:
        return None

    def end_hint(self, call_id: str, by: str) -> None:
        return None


def tenant() -> Tenant:
    utc = ZoneInfo("UTC")
    always = WeeklyCalendar(utc, weekly=tuple(WeeklySpan(d, time(0), (d + 1) % 7, time(0)) for d in range(7)))
    logins = ("alice", "bob", "carol")
    return Tenant(
        "t",
        "T",
        {"acme": Client("acme", "Acme", utc, Greeting(text="hi"), wrap_up_s=0)},
        (),
        {login: Agent(login, login, "h", (ServedClient("acme"),)) for login in logins},
        tuple(Shift(login, always) for login in logins),
    )


async def node(prefix: str, clock: ManualClock) -> Dispatcher:
    nothing = Nothing()
    live = RedisLiveState.from_url(REDIS_URL, prefix=prefix)
    return Dispatcher(tenant=tenant(), live=live, clock=clock, workers=nothing, recorder=nothing)


async def test_agents_reconnecting_after_a_restart_find_their_state(redis_prefix: str) -> None:
    clock = ManualClock(MON_9)
    before = await node(redis_prefix, clock)
    for login in ("alice", "bob", "carol"):
        await before.agent_connected(login, Link())
    await before.handle("alice", {"type": "set_state", "state": "available"})
    await before.handle("bob", {"type": "set_state", "state": "paused", "reason": "lunch"})
    # The bridge dies (no goodbye to anyone) and a new one starts on the same Redis.
    await before.stop()
    await before.live.close()
    clock.advance(30)
    after = await node(redis_prefix, clock)
    pages = {login: Link() for login in ("alice", "bob", "carol")}
    for login, page in pages.items():
        await after.agent_connected(login, page)
    assert pages["alice"].state() == ("available", None)
    assert pages["bob"].state() == ("paused", "lunch")
    assert pages["carol"].state() == ("paused", "signed in")
    # And the new node routes with that state: alice rings, bob doesn't.
    await after.call_queued(QueuedCall("c1", 0, 1, "acme", "0600000000", clock.now()))
    assert [m["call_id"] for m in pages["alice"].messages if m["type"] == "offer"] == ["c1"]
    assert not [m for m in pages["bob"].messages if m["type"] == "offer"]
    await after.stop()
    await after.live.close()


async def test_a_restarted_node_drops_only_its_own_stale_queue_entries(redis_prefix: str) -> None:
    from store.live_state import QueueEntry
    from telephony.calls import CallService
    from telephony.sip_digest import DigestAuthority

    live = RedisLiveState.from_url(REDIS_URL, prefix=redis_prefix)
    try:
        for n, node in enumerate(["b", "a", "b", "a", "b"]):
            entry = QueueEntry(
                call_id=f"{node}{n}", client_id="acme", enqueued_at=MON_9.replace(second=n), data={"node": node}
            )
            await live.enqueue("acme", entry)
        restarted = CallService(
            tenant=tenant(),
            records=None,  # type: ignore[arg-type]  # not reached: nothing is recorded here
            live=live,
            clock=ManualClock(MON_9),
            media={},
            digest=DigestAuthority(default_realm="t"),
            node="a",
        )
        assert await restarted.forget_queued_before_restart() == 2
        # Node b's callers are still connected there: their order is intact.
        assert [e.call_id for e in await live.entries("acme")] == ["b0", "b2", "b4"]
    finally:
        await live.close()
