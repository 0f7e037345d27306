"""Two bridge nodes sharing one Redis never ring the same agent for two calls.

Two processes, each running the real dispatcher and queue engine on the
same Redis key space, see the same agents connected and available, and at
the same instant each queue more calls than there are agents. Every agent
must be rung exactly once, by one node, and Redis must hold each agent for
the call that node rang it for.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from harness.services import REDIS_URL
from store.live_redis import RedisLiveState

CHILD = Path(__file__).with_name("race_child.py")
AGENTS = 60
CALLS_PER_NODE = 60


async def test_two_nodes_racing_for_the_same_agents_ring_each_agent_once(redis_prefix: str, tmp_path: Path) -> None:
    start_at = time.time() + 4.0
    outs = [tmp_path / f"node{n}.json" for n in (1, 2)]
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            REDIS_URL,
            redis_prefix,
            f"node{n}",
            str(start_at),
            str(AGENTS),
            str(CALLS_PER_NODE),
            str(out),
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        for n, out in zip((1, 2), outs, strict=True)
    ]
    for child in children:
        _, err = await asyncio.wait_for(child.communicate(), 60)
        assert child.returncode == 0, err.decode()[-2000:]
    results = [json.loads(out.read_text()) for out in outs]

    offers = [tuple(offer) for result in results for offer in result["offers"]]
    rung = [agent for agent, _ in offers]
    assert sorted(rung) == sorted(f"agent{n:02d}" for n in range(AGENTS)), "every agent rung, and only once"
    assert len({call for _, call in offers}) == len(offers), "no call rang two agents"
    wins = [len(result["offers"]) for result in results]
    print(f"\nagents won by node1, node2: {wins}; calls left waiting: {[len(r['waiting']) for r in results]}")
    assert sum(len(r["waiting"]) for r in results) == 2 * CALLS_PER_NODE - AGENTS

    live = RedisLiveState.from_url(REDIS_URL, prefix=redis_prefix)
    try:
        held = {a.login: (a.state, a.reserved_by) for a in await live.agents()}
    finally:
        await live.close()
    assert held == {agent: ("ringing", call) for agent, call in offers}
