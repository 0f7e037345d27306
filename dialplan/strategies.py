"""In what order a queue offers a call to the agents eligible for it.

Every strategy is a total order with the login as the last tie-breaker, so
the same inputs always give the same offers (the simulator and the tests
rely on it); `random` draws from the generator it is given.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from dialplan.queues import QueueConfig, Strategy


@dataclass(frozen=True)
class Standing:
    """What the strategies know of an eligible agent."""

    login: str
    # Since the end of their last wrap-up, or since they went available, whichever is later.
    idle_since: datetime
    calls_today: int = 0
    talk_s_today: float = 0.0
    earned_today: Decimal = Decimal(0)


def _in_configured_order(queue: QueueConfig, logins: Sequence[str]) -> list[str]:
    position = {login: i for i, login in enumerate(queue.agent_order)}
    unlisted = len(position)
    return sorted(logins, key=lambda login: (position.get(login, unlisted), login))


def rank(
    queue: QueueConfig,
    agents: Sequence[Standing],
    *,
    last_offered: str | None = None,
    rng: random.Random | None = None,
) -> list[tuple[str, ...]]:
    """The offers to make in turn: each a group of logins rung together (one login, except for ring_all).

    `last_offered` is the agent this queue offered a call to last (round_robin starts after them).
    """
    if not agents:
        return []
    strategy = queue.strategy
    if strategy is Strategy.RING_ALL:
        return [tuple(sorted(a.login for a in agents))]
    order: list[str]
    if strategy is Strategy.LONGEST_IDLE:
        order = [a.login for a in sorted(agents, key=lambda a: (a.idle_since, a.login))]
    elif strategy is Strategy.FEWEST_CALLS:
        order = [a.login for a in sorted(agents, key=lambda a: (a.calls_today, a.idle_since, a.login))]
    elif strategy is Strategy.LEAST_TALK_TIME:
        order = [a.login for a in sorted(agents, key=lambda a: (a.talk_s_today, a.idle_since, a.login))]
    elif strategy is Strategy.FAIR_EARNINGS:
        # Ties (everyone at zero at the start of a day) go to the longest idle.
        order = [a.login for a in sorted(agents, key=lambda a: (a.earned_today, a.idle_since, a.login))]
    elif strategy is Strategy.TOP_DOWN:
        order = _in_configured_order(queue, [a.login for a in agents])
    elif strategy is Strategy.ROUND_ROBIN:
        # The ring holds the configured agents and the last one offered even when they
        # are not eligible now (typically: on the call they were offered), so the
        # rotation carries on after them instead of starting over.
        members = {*queue.agent_order, *(a.login for a in agents)}
        if last_offered is not None:
            members.add(last_offered)
        ring = _in_configured_order(queue, sorted(members))
        eligible = {a.login for a in agents}
        start = ring.index(last_offered) + 1 if last_offered in ring else 0
        order = [login for login in ring[start:] + ring[:start] if login in eligible]
    elif strategy is Strategy.RANDOM:
        order = sorted(a.login for a in agents)
        (rng or random.Random(0)).shuffle(order)  # noqa: S311 (reproducible, not secret)
    else:  # pragma: no cover - every Strategy member is handled above
        raise AssertionError(f"unhandled strategy {strategy!r}")
    return [(login,) for login in order]
