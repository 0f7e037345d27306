"""Which agent a waiting call is offered to.

This is the routing the softphone needs now: the longest-idle agent who is
available, connected, on a running slot that covers the call's client, and
serves that client. The full queue engine (strategies, tiers, timers)
replaces `choose_agent` behind the same inputs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dialplan.shifts import may_take
from dialplan.tenant import Tenant

RING_TIMEOUT_S = 15.0
# An agent who let a call go (declined, missed) is not rung for that same
# call again this soon: ringing again at once would only nag. After this,
# they are tried again, but only when nobody fresh is eligible, so a caller
# with one agent on the floor is not stranded by a mistaken decline.
REOFFER_AFTER_S = 10.0


@dataclass(frozen=True)
class AgentCandidate:
    login: str
    state: str
    # When the agent entered its current state: for an available agent, idle since.
    since: datetime
    connected: bool
    reserved: bool = False


@dataclass(frozen=True)
class WaitingCall:
    call_id: str
    client_id: str
    queued_at: datetime
    priority: int = 0
    # Agents who already let this call go (declined, missed), and when: tried last.
    passed_by: Mapping[str, datetime] = field(default_factory=dict)


def eligible(
    tenant: Tenant, call: WaitingCall, agents: Iterable[AgentCandidate], now: datetime
) -> list[AgentCandidate]:
    return [
        agent
        for agent in agents
        if agent.state == "available"
        and agent.connected
        and not agent.reserved
        and may_take(tenant, agent.login, call.client_id, now)
    ]


def choose_agent(
    tenant: Tenant, call: WaitingCall, agents: Iterable[AgentCandidate], now: datetime, *, taken: Collection[str] = ()
) -> str | None:
    """The longest-idle eligible agent; agents who passed this call only when nobody else is left.

    An agent who passed is skipped altogether for REOFFER_AFTER_S after passing.
    """
    cooled = now - timedelta(seconds=REOFFER_AFTER_S)
    candidates = [
        agent
        for agent in eligible(tenant, call, agents, now)
        if agent.login not in taken and call.passed_by.get(agent.login, cooled) <= cooled
    ]
    if not candidates:
        return None
    fresh = [agent for agent in candidates if agent.login not in call.passed_by]
    pool = fresh or candidates
    # Ties on idle time go to the login, so the choice is deterministic.
    return min(pool, key=lambda agent: (agent.since, agent.login)).login


def dispatch_order(calls: Iterable[WaitingCall]) -> list[WaitingCall]:
    """Waiting calls in the order they are served: priority, then arrival."""
    return sorted(calls, key=lambda call: (-call.priority, call.queued_at, call.call_id))


def mask_number(number: str) -> str:
    """Hide the middle of a caller number, keeping enough to recognise a repeat caller."""
    digits = [i for i, ch in enumerate(number) if ch.isdigit()]
    if len(digits) <= 4:
        return "•" * len(number)
    hidden = set(digits[2:-2])
    return "".join("•" if i in hidden else ch for i, ch in enumerate(number))
