"""One bridge node's dispatcher, on a shared Redis, racing another node for the same agents.

    python tests/store/race_child.py REDIS_URL PREFIX NODE START_AT AGENTS CALLS OUT.json

Both nodes see every agent connected and available (the worst case: in
production an agent's page is on one node only). At START_AT (epoch seconds)
each node queues CALLS calls at once; nobody answers, and rings last a
minute. OUT.json gets every offer this node rang: [agent, call_id].
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dialplan.clock import SystemClock  # noqa: E402
from dialplan.schedule import WeeklyCalendar, WeeklySpan  # noqa: E402
from dialplan.tenant import Agent, Client, Greeting, ServedClient, Shift, Tenant  # noqa: E402
from store.live_redis import RedisLiveState  # noqa: E402
from telephony.dispatcher import Dispatcher, DispatcherSettings, QueuedCall  # noqa: E402


@dataclass
class Link:
    login: str
    offers: list[list[str]]

    def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "offer":
            self.offers.append([self.login, message["call_id"]])

    async def close(self, reason: str) -> None:
        return None


@dataclass
class Worker:
    async def request(self, index: int, kind: str, body: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        return {"sdp": "v=0"}


@dataclass
class Recorder:
    events: list[Any] = field(default_factory=list)

    def record(self, call_id: str, events: Any) -> None:
        self.events.extend(events)

    def end_hint(self, call_id: str, by: str) -> None:
        return None


def tenant(agents: int) -> Tenant:
    utc = ZoneInfo("UTC")
    always = WeeklyCalendar(
        utc, weekly=tuple(WeeklySpan(d, clock_time(0), (d + 1) % 7, clock_time(0)) for d in range(7))
    )
    logins = [f"agent{n:02d}" for n in range(agents)]
    return Tenant(
        "race",
        "Race",
        {"acme": Client("acme", "Acme", utc, Greeting(text="hi"), wrap_up_s=0)},
        (),
        {login: Agent(login, login, "h", (ServedClient("acme"),)) for login in logins},
        tuple(Shift(login, always) for login in logins),
    )


async def main(url: str, prefix: str, node: str, start_at: float, agents: int, calls: int, out: str) -> None:
    live = RedisLiveState.from_url(url, prefix=prefix)
    clock = SystemClock()
    dispatcher = Dispatcher(
        tenant=tenant(agents),
        live=live,
        clock=clock,
        workers=Worker(),
        recorder=Recorder(),
        settings=DispatcherSettings(ring_timeout_s=60.0),
    )
    offers: list[list[str]] = []
    for login in dispatcher.tenant.agents:
        await dispatcher.agent_connected(login, Link(login, offers))
        await dispatcher.handle(login, {"type": "set_state", "state": "available"})
    await asyncio.sleep(max(0.0, start_at - time.time()))
    now = clock.now()
    await asyncio.gather(
        *(dispatcher.call_queued(QueuedCall(f"{node}-{n}", 0, n, "acme", "0600000000", now)) for n in range(calls))
    )
    Path(out).write_text(json.dumps({"offers": offers, "waiting": dispatcher.snapshot()["waiting"]}))
    await dispatcher.stop()
    await live.close()


if __name__ == "__main__":
    url, prefix, node, start_at, agents, calls, out = sys.argv[1:]
    asyncio.run(main(url, prefix, node, float(start_at), int(agents), int(calls), out))
