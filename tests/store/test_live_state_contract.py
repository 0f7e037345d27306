"""One contract, every live-state backend: memory always, Redis at 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest
import redis.asyncio as redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.services import REDIS_URL, delete_prefix, ensure_redis, new_redis_prefix
from store.live_memory import MemoryLiveState
from store.live_redis import RedisLiveState
from store.live_state import AgentLive, LiveState, QueueEntry, open_live_state

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

# A factory of fresh, empty states. Two states from one factory call's `peer` share data.
NewState = Callable[[], Awaitable["Views"]]


@dataclass
class Views:
    """The same live state seen through two clients (two Redis connections; one memory object)."""

    main: LiveState
    peer: LiveState


@pytest.fixture(params=["memory", "redis"])
async def new_state(request: pytest.FixtureRequest) -> AsyncIterator[NewState]:
    opened: list[LiveState] = []
    prefixes: list[str] = []

    if request.param == "redis":
        await ensure_redis()

    async def make() -> Views:
        if request.param == "memory":
            state = MemoryLiveState()
            return Views(state, state)
        prefix = new_redis_prefix()
        prefixes.append(prefix)
        views = Views(
            RedisLiveState.from_url(REDIS_URL, prefix=prefix), RedisLiveState.from_url(REDIS_URL, prefix=prefix)
        )
        opened.extend([views.main, views.peer])
        return views

    yield make
    for state in opened:
        await state.close()
    for prefix in prefixes:
        await delete_prefix(prefix)


@pytest.fixture
async def views(new_state: NewState) -> Views:
    return await new_state()


@pytest.fixture
def live(views: Views) -> LiveState:
    return views.main


def entry(call_id: str, after_s: float = 0, priority: int = 0, **data: str) -> QueueEntry:
    return QueueEntry(
        call_id=call_id, client_id="acme", enqueued_at=T0 + timedelta(seconds=after_s), priority=priority, data=data
    )


def agent(login: str, state: str = "available", connected: bool = True, **more: str | None) -> AgentLive:
    return AgentLive(login=login, state=state, since=T0, connected=connected, **more)


async def order(live: LiveState, queue_id: str = "q") -> list[str]:
    return [e.call_id for e in await live.entries(queue_id)]


# --- queues --------------------------------------------------------------------------------------


async def test_queue_order_is_priority_then_arrival_then_enqueue_order(live: LiveState) -> None:
    assert await live.enqueue("q", entry("late", after_s=5)) == 1
    assert await live.enqueue("q", entry("early", after_s=1)) == 1
    assert await live.enqueue("q", entry("tie-first", after_s=3)) == 2
    assert await live.enqueue("q", entry("tie-second", after_s=3)) == 3
    assert await live.enqueue("q", entry("vip", after_s=9, priority=5)) == 1
    assert await live.enqueue("q", entry("low", after_s=0, priority=-1)) == 6
    assert await order(live) == ["vip", "early", "tie-first", "tie-second", "late", "low"]


async def test_positions_follow_removals(live: LiveState) -> None:
    for n in range(5):
        await live.enqueue("q", entry(f"c{n}", after_s=n))
    assert await live.remove("q", "c1") is True
    assert await live.remove("q", "c1") is False
    assert await live.remove("other", "c2") is False
    assert [await live.position("q", f"c{n}") for n in range(5)] == [1, None, 2, 3, 4]
    assert await live.remove("q", "c0") is True
    assert [await live.position("q", f"c{n}") for n in range(5)] == [None, None, 1, 2, 3]
    assert await live.position("elsewhere", "c2") is None


async def test_enqueue_again_replaces_the_entry_and_keeps_its_place_among_equals(live: LiveState) -> None:
    await live.enqueue("q", entry("a"))
    await live.enqueue("q", entry("b"))
    assert await live.enqueue("q", entry("a", note="retry")) == 1
    assert [(e.call_id, dict(e.data)) for e in await live.entries("q")] == [("a", {"note": "retry"}), ("b", {})]
    assert await live.enqueue("q", entry("b", priority=3)) == 1


async def test_entries_round_trip(live: LiveState) -> None:
    paris = timezone(timedelta(hours=1))
    original = QueueEntry(
        call_id="x",
        client_id="acme",
        priority=2,
        enqueued_at=datetime(2026, 3, 1, 10, 0, 0, 654321, tzinfo=paris),
        data={"line": "sales", "lang": "fr"},
    )
    await live.enqueue("q", original)
    (stored,) = await live.entries("q")
    assert stored == original
    assert stored.enqueued_at.utcoffset() == timedelta(0)


async def test_queue_ids_lists_queues_holding_calls(live: LiveState) -> None:
    assert await live.queue_ids() == []
    await live.enqueue("sales", entry("a"))
    await live.enqueue("billing", entry("b"))
    await live.enqueue("billing", entry("c"))
    assert await live.queue_ids() == ["billing", "sales"]
    await live.remove("sales", "a")
    assert await live.queue_ids() == ["billing"]
    assert await live.entries("sales") == []


async def test_queue_ids_cannot_collide_with_internal_keys(live: LiveState) -> None:
    await live.enqueue("q", entry("a"))
    await live.enqueue("q:e:q", entry("b"))
    await live.enqueue("e", entry("c"))
    assert await order(live, "q") == ["a"]
    assert await order(live, "q:e:q") == ["b"]


def test_entries_are_validated() -> None:
    with pytest.raises(ValueError, match="naive"):
        QueueEntry(call_id="a", client_id="c", enqueued_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="priority"):
        QueueEntry(call_id="a", client_id="c", enqueued_at=T0, priority=10**10)


# --- agents --------------------------------------------------------------------------------------


async def test_agents_are_stored_as_given(live: LiveState) -> None:
    assert await live.get_agent("zoe") is None
    zoe = agent("zoe", state="paused", reason="lunch")
    await live.set_agent(zoe)
    await live.set_agent(agent("ana", connected=False))
    assert await live.get_agent("zoe") == zoe
    assert [a.login for a in await live.agents()] == ["ana", "zoe"]
    await live.set_agent(agent("zoe"))
    assert await live.get_agent("zoe") == agent("zoe")


async def test_exactly_one_of_many_concurrent_reservations_wins(views: Views) -> None:
    await views.main.set_agent(agent("ana"))
    attempts = [
        (views.main if n % 2 else views.peer).reserve_agent("ana", f"call-{n}", at=T0 + timedelta(seconds=1))
        for n in range(50)
    ]
    results = await asyncio.gather(*attempts)
    assert results.count(True) == 1
    winner = f"call-{results.index(True)}"
    reserved = await views.peer.get_agent("ana")
    assert reserved is not None
    assert (reserved.state, reserved.reserved_by, reserved.since) == ("ringing", winner, T0 + timedelta(seconds=1))


async def test_many_agents_reserved_concurrently_each_once(views: Views) -> None:
    for n in range(10):
        await views.main.set_agent(agent(f"agent{n}"))
    attempts = [(views.main if n % 2 else views.peer).reserve_agent(f"agent{n % 10}", f"call-{n}") for n in range(100)]
    results = await asyncio.gather(*attempts)
    assert results.count(True) == 10
    assert {a.reserved_by for a in await views.main.agents()} == {f"call-{n}" for n, won in enumerate(results) if won}


@pytest.mark.parametrize(
    "who",
    [
        agent("ana", connected=False),
        agent("ana", state="paused"),
        agent("ana", state="on_call"),
        agent("ana", reserved_by="other-call"),
    ],
)
async def test_reservation_needs_an_available_connected_unreserved_agent(live: LiveState, who: AgentLive) -> None:
    await live.set_agent(who)
    assert await live.reserve_agent("ana", "call-1") is False
    assert await live.get_agent("ana") == who
    assert await live.reserve_agent("nobody", "call-1") is False


async def test_reservation_from_another_expected_state(live: LiveState) -> None:
    await live.set_agent(agent("ana", state="wrap_up", reason="notes"))
    assert await live.reserve_agent("ana", "call-1") is False
    assert await live.reserve_agent("ana", "call-1", expect_state="wrap_up") is True
    reserved = await live.get_agent("ana")
    assert reserved is not None
    assert (reserved.state, reserved.reason, reserved.reserved_by) == ("ringing", None, "call-1")


async def test_only_the_reserving_call_releases(live: LiveState) -> None:
    await live.set_agent(agent("ana"))
    assert await live.reserve_agent("ana", "call-1")
    assert await live.release_agent("ana", "call-2", "available") is False
    assert await live.release_agent("nobody", "call-1", "available") is False
    later = T0 + timedelta(seconds=20)
    assert await live.release_agent("ana", "call-1", "on_call", at=later) is True
    released = await live.get_agent("ana")
    assert released is not None
    assert (released.state, released.reserved_by, released.since) == ("on_call", None, later)
    assert await live.release_agent("ana", "call-1", "available") is False
    assert await live.reserve_agent("ana", "call-3") is False  # on a call, not available
    await live.set_agent(agent("ana"))
    assert await live.reserve_agent("ana", "call-3") is True


async def test_states_are_checked(live: LiveState) -> None:
    with pytest.raises(ValueError, match="agent state"):
        agent("ana", state="sleeping")
    await live.set_agent(agent("ana"))
    assert await live.reserve_agent("ana", "call-1")
    with pytest.raises(ValueError, match="agent state"):
        await live.release_agent("ana", "call-1", "gone")
    with pytest.raises(ValueError, match="call id"):
        await live.reserve_agent("ana", "")


# --- connection ----------------------------------------------------------------------------------


async def test_ping_and_describe(live: LiveState) -> None:
    assert 0 <= await live.ping() < 5
    assert live.describe() == "memory" or live.describe().startswith("redis://")


def test_describe_names_the_server_without_secrets() -> None:
    state = RedisLiveState.from_url("redis://:hunter2@10.1.2.3:6380/4")
    assert state.describe() == "redis://10.1.2.3:6380/4"


async def test_open_live_state_picks_the_backend(redis_prefix: str) -> None:
    memory = await open_live_state(None)
    assert memory.describe() == "memory"
    shared = await open_live_state(REDIS_URL, prefix=redis_prefix)
    try:
        assert shared.describe().startswith("redis://")
        await shared.enqueue("q", entry("a"))
        assert await shared.position("q", "a") == 1
    finally:
        await shared.close()


async def test_open_live_state_fails_fast_when_redis_is_unreachable() -> None:
    with pytest.raises(redis.ConnectionError):
        await open_live_state("redis://127.0.0.1:1/0")


# --- against a model -----------------------------------------------------------------------------


@dataclass
class QueueModel:
    """What queue order means, written as plainly as possible."""

    queues: dict[str, dict[str, tuple[int, float, int]]] = field(default_factory=dict)
    counter: int = 0

    def enqueue(self, queue_id: str, call_id: str, priority: int, after_s: float) -> int:
        queue = self.queues.setdefault(queue_id, {})
        if call_id in queue:
            seq = queue[call_id][2]
        else:
            seq, self.counter = self.counter, self.counter + 1
        queue[call_id] = (-priority, after_s, seq)
        return self.order(queue_id).index(call_id) + 1

    def remove(self, queue_id: str, call_id: str) -> bool:
        queue = self.queues.get(queue_id, {})
        found = queue.pop(call_id, None) is not None
        if not queue:
            self.queues.pop(queue_id, None)
        return found

    def order(self, queue_id: str) -> list[str]:
        queue = self.queues.get(queue_id, {})
        return sorted(queue, key=queue.__getitem__)


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("enqueue"),
            st.sampled_from(["q1", "q2"]),
            st.sampled_from([f"c{n}" for n in range(8)]),
            st.integers(-2, 2),
            # Few distinct instants, so equal (priority, instant) ties are common.
            st.sampled_from([0.0, 0.5, 1.0, 0.000001]),
        ),
        st.tuples(
            st.just("remove"),
            st.sampled_from(["q1", "q2"]),
            st.sampled_from([f"c{n}" for n in range(8)]),
            st.just(0),
            st.just(0.0),
        ),
    ),
    max_size=40,
)


@settings(
    max_examples=60,
    deadline=None,
    # The fixture is a factory: every example builds its own empty state.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=operations)
async def test_queues_behave_like_the_model(new_state: NewState, ops: list[tuple[str, str, str, int, float]]) -> None:
    live = (await new_state()).main
    model = QueueModel()
    for kind, queue_id, call_id, priority, after_s in ops:
        if kind == "enqueue":
            got = await live.enqueue(queue_id, entry(call_id, after_s=after_s, priority=priority))
            assert got == model.enqueue(queue_id, call_id, priority, after_s)
        else:
            assert await live.remove(queue_id, call_id) == model.remove(queue_id, call_id)
        for queue in ("q1", "q2"):
            expected = model.order(queue)
            assert await order(live, queue) == expected
            assert [await live.position(queue, c) for c in expected] == list(range(1, len(expected) + 1))
        assert await live.queue_ids() == sorted(model.queues)
