"""A client's queues and agent timers, as configured: plain frozen values.

Each client has one or more queues. A queue says how its callers are
ordered and offered (the strategy), when callers may join or must leave
it, its limits and what happens to a caller past them (the fallback),
and what callers hear while they wait. The per-client agent timers follow
mod_callcenter's: how long an agent wraps up, and how long an agent is
left alone after declining, missing or being busy for an offer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Strategy(StrEnum):
    # The agent idle the longest (since their last call, or since going available).
    LONGEST_IDLE = "longest_idle"
    # The agent who answered the fewest calls today.
    FEWEST_CALLS = "fewest_calls"
    # The agent with the least talk time today.
    LEAST_TALK_TIME = "least_talk_time"
    # The agents in configured order, starting after the one offered last.
    ROUND_ROBIN = "round_robin"
    # Every eligible agent at once; the first to answer takes the call.
    RING_ALL = "ring_all"
    # The agents in configured order, always from the first.
    TOP_DOWN = "top_down"
    # Any eligible agent, drawn from the router's seeded generator.
    RANDOM = "random"
    # The agent who has earned the least today, so agents on one shift earn evenly.
    FAIR_EARNINGS = "fair_earnings"


class FallbackKind(StrEnum):
    QUEUE = "queue"  # target: another queue's id
    VOICEMAIL = "voicemail"  # target: the mailbox, or None for the client's
    NUMBER = "number"  # target: the client's own number, dialled out
    HANGUP = "hangup"  # message: played before hanging up


@dataclass(frozen=True)
class Fallback:
    kind: FallbackKind = FallbackKind.HANGUP
    target: str | None = None
    message: str | None = None


class Absence(StrEnum):
    """Why an agent of a queue can't take its calls now; app_queue's joinempty/leavewhenempty conditions."""

    OFF_SHIFT = "off_shift"  # no running slot covers the queue's client
    UNAVAILABLE = "unavailable"  # signed out or not connected
    PAUSED = "paused"
    WRAP_UP = "wrap_up"
    IN_USE = "in_use"  # ringing or on a call


@dataclass(frozen=True)
class Announcements:
    """What waiting callers hear besides the music. Nothing unless configured, as in app_queue."""

    # Position and estimated wait: on joining, then every `position_every_s` (None: only on joining).
    position: bool = False
    position_every_s: float | None = 30.0
    # A recorded message every `periodic_every_s` (None: never).
    periodic_message: str | None = None
    periodic_every_s: float | None = None
    # Played to the agent only, on answer, before the caller is connected ("Acme Furniture").
    agent_whisper: str | None = None


@dataclass(frozen=True)
class QueueConfig:
    id: str
    client_id: str
    strategy: Strategy = Strategy.LONGEST_IDLE
    # Weighs this queue's waiting time against other queues' when an agent frees up.
    weight: float = 1.0
    max_length: int | None = None
    max_wait_s: float | None = None
    fallback: Fallback = Fallback()
    # A caller can't join when every agent of the queue is absent for one of these reasons
    # (empty: always join); callers waiting leave, to the fallback, on the same test with `leave_when`.
    join_unless: frozenset[Absence] = frozenset()
    leave_when: frozenset[Absence] = frozenset()
    # Agents serving the client at level n are offered a call once it has waited (n - 1) * tier_delay_s.
    tier_delay_s: float = 15.0
    ring_timeout_s: float = 15.0
    announcements: Announcements = Announcements()
    # For round_robin and top_down: logins in order; agents not listed come after, by login.
    agent_order: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentTimers:
    """mod_callcenter's per-agent timers, set per client."""

    wrap_up_s: float = 10.0
    # After this many offers missed in a row, the agent is paused ("missed calls"); 0: never.
    max_no_answer: int = 3
    # How long an agent is not offered calls after declining one, missing one, or being found busy.
    reject_delay_s: float = 10.0
    no_answer_delay_s: float = 10.0
    busy_delay_s: float = 10.0


@dataclass(frozen=True)
class ShiftRules:
    """How booked slots drive availability."""

    # No new offers this close to the end of the agent's slot.
    last_offer_before_end_s: float = 120.0
    # A slot is a no-show when its agent hasn't connected this long after it started.
    no_show_after_s: float = 600.0
