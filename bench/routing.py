"""Routing decisions per second on a big floor: 2,000 agents, 200 clients, 5,000 waiting callers.

    .venv/bin/python bench/routing.py [--agents 2000] [--clients 200] [--callers 5000] [--decisions 2000]

Builds a tenant in memory (every agent serves 5 to 10 clients, on shift all
day), queues the callers with every agent busy, then frees agents one at a
time: each freed agent is one routing decision (the router picks the caller
to offer among thousands waiting), answered at once. Reports decisions per
second for the router alone, and with the atomic reservation every offer
takes in the live state (in-process memory, then Redis at 127.0.0.1:6379)
so that two bridge processes never ring the same agent.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dialplan.queues import AgentTimers, Announcements, QueueConfig
from dialplan.router import Offer, Router
from dialplan.schedule import WeeklyCalendar, WeeklySpan
from dialplan.tenant import Agent, Client, Greeting, ServedClient, Shift, Tenant
from store.live_state import AgentLive, LiveState, open_live_state

START = datetime(2026, 11, 23, 9, tzinfo=UTC)
UTCZ = ZoneInfo("UTC")


def big_tenant(agents: int, clients: int, rng: random.Random) -> Tenant:
    client_ids = [f"c{i:03d}" for i in range(clients)]
    all_week = WeeklyCalendar(UTCZ, weekly=(WeeklySpan(0, datetime.min.time(), 0, datetime.min.time()),))
    people = {}
    shifts = []
    for i in range(agents):
        login = f"a{i:04d}"
        served = rng.sample(client_ids, rng.randint(5, 10))
        people[login] = Agent(
            login, login, "$argon2id$x", tuple(ServedClient(c, rng.choice((1, 1, 2))) for c in served)
        )
        shifts.append(Shift(login, all_week))
    return Tenant(
        "bench",
        "Bench",
        {c: Client(c, c, UTCZ, Greeting(text="hi")) for c in client_ids},
        (),
        people,
        tuple(shifts),
    )


def busy_floor(agents: int, clients: int, callers: int, seed: int) -> tuple[Router, datetime, list[str]]:
    """Every agent on a call, `callers` waiting: the state before the measured decisions."""
    rng = random.Random(seed)
    tenant = big_tenant(agents, clients, rng)
    queues = [QueueConfig(c, c, announcements=Announcements(position=False)) for c in sorted(tenant.clients)]
    router = Router(tenant, queues, timers={c: AgentTimers(wrap_up_s=0) for c in tenant.clients}, seed=seed)
    now = START
    for login in tenant.agents:
        router.connect(login, now)
        router.set_available(login, now)
    # The first callers take every agent; the rest wait.
    client_ids = sorted(tenant.clients)
    busy: list[str] = []
    for n in range(callers + agents):
        now += timedelta(milliseconds=10)
        for action in router.arrive(f"call{n}", rng.choice(client_ids), now):
            if isinstance(action, Offer):
                router.answered(action.call_id, action.agents[0], now)
                busy.append(action.call_id)
    return router, now, busy


async def measure(router: Router, now: datetime, busy: list[str], decisions: int, live: LiveState | None) -> float:
    on_call = {router.live[c].agent: c for c in busy}
    logins = sorted(on_call)
    rng = random.Random(1)
    made = 0
    started = time.perf_counter()
    while made < decisions:
        now += timedelta(milliseconds=50)
        login = rng.choice(logins)
        call_id = on_call[login]
        actions = router.call_ended(call_id, login, now, talk_s=120.0)
        if live is not None:
            # As the dispatcher does: the ended call's reservation goes first.
            await live.release_agent(login, call_id, "available", at=now)
        for action in actions:
            if not isinstance(action, Offer):
                continue
            agent = action.agents[0]
            if live is not None:
                reserved = await live.reserve_agent(agent, action.call_id, at=now)
                assert reserved, f"{agent} was free in the router but not in the live state"
            router.answered(action.call_id, agent, now)
            on_call[agent] = action.call_id
            made += 1
    return made / (time.perf_counter() - started)


async def main(agents: int, clients: int, callers: int, decisions: int) -> None:
    print(f"{agents} agents, {clients} clients, {callers} callers waiting; {decisions} decisions each")
    for backend in ("router alone", "memory", "redis"):
        built = time.perf_counter()
        router, now, busy = busy_floor(agents, clients, callers, seed=7)
        setup_s = time.perf_counter() - built
        live: LiveState | None = None
        if backend != "router alone":
            live = await open_live_state(
                "redis://127.0.0.1:6379/0" if backend == "redis" else None, prefix=f"hotline-bench-{time.time_ns()}:"
            )
            for login, agent in router.agents.items():
                await live.set_agent(AgentLive(login=login, state="available", since=now, connected=True))
                if agent.call is not None:
                    await live.reserve_agent(login, agent.call, at=now)
        if backend == "router alone":
            # The dispatcher's ticker asks this after each burst of events and at least once a second.
            timed = time.perf_counter()
            for _ in range(20):
                router.next_deadline(now)
            deadline_ms = (time.perf_counter() - timed) / 20 * 1000
            print(f"  next_deadline with {len(router.callers)} waiting: {deadline_ms:.1f} ms")
        try:
            rate = await measure(router, now, busy, decisions, live)
        finally:
            if live is not None:
                await live.close()
        waiting = len(router.callers)
        print(f"  {backend:>12}: {rate:8.0f} decisions/s  (floor built in {setup_s:.1f} s; {waiting} still waiting)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--callers", type=int, default=5000)
    parser.add_argument("--decisions", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.agents, args.clients, args.callers, args.decisions))
