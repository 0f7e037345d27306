"""The tenant's domain model: clients, lines, people, shifts and rate cards.

These are plain frozen values. `config` builds them from a TOML file; every
other layer reads them. Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from zoneinfo import ZoneInfo

from dialplan.overflow import Overflow, Takeover
from dialplan.pay_rules import Premiums, QualityRule
from dialplan.queues import AgentTimers, QueueConfig, ShiftRules
from dialplan.schedule import ServiceWindow, WeeklyCalendar

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RecordingPolicy(StrEnum):
    OFF = "off"
    ALWAYS = "always"
    ON_DEMAND = "on_demand"


@dataclass(frozen=True)
class Greeting:
    """What a caller hears on answer: synthesised text, or a WAV file."""

    text: str | None = None
    wav: str | None = None


DEFAULT_WRAP_UP_S = 10


@dataclass(frozen=True)
class Client:
    id: str
    name: str
    timezone: ZoneInfo
    greeting: Greeting
    knowledge_base_url: str | None = None
    recording: RecordingPolicy = RecordingPolicy.OFF
    # Recordings are purged this many days after the call.
    recording_retention_days: int = 90
    # The client's own admins may play its recordings (supervisors in scope always may).
    recordings_for_client_admin: bool = False
    # Calls up at once across the client's lines; above it, 503 with Retry-After. None: no cap.
    max_concurrent_calls: int | None = None
    mask_caller_number: bool = False
    # Supervisors may join this client's calls (listen, whisper, barge); and whether the agent is told.
    live_listening: bool = True
    agent_sees_supervisor: bool = False
    hold_music: str | None = None
    # After a call, the agent writes up for this long before the next offer.
    wrap_up_s: int = DEFAULT_WRAP_UP_S
    # The rest of mod_callcenter's agent timers for this client's calls.
    max_no_answer: int = AgentTimers.max_no_answer
    reject_delay_s: int = int(AgentTimers.reject_delay_s)
    no_answer_delay_s: int = int(AgentTimers.no_answer_delay_s)
    busy_delay_s: int = int(AgentTimers.busy_delay_s)

    @property
    def timers(self) -> AgentTimers:
        return AgentTimers(
            wrap_up_s=float(self.wrap_up_s),
            max_no_answer=self.max_no_answer,
            reject_delay_s=float(self.reject_delay_s),
            no_answer_delay_s=float(self.no_answer_delay_s),
            busy_delay_s=float(self.busy_delay_s),
        )


@dataclass(frozen=True)
class DigestCredentials:
    """Credentials a client's PBX uses to authenticate calls it sends us.

    Only HA1 = MD5(username:realm:password) is kept, never the password.
    """

    username: str
    realm: str
    ha1: str


@dataclass(frozen=True)
class Line:
    id: str
    client_id: str
    dids: tuple[str, ...]
    trunk_sources: tuple[IPNetwork, ...] = ()
    digest: DigestCredentials | None = None
    service_window: ServiceWindow = field(default_factory=lambda: ServiceWindow.always())
    # The queue its calls join; None: the client's default queue.
    queue: str | None = None
    # When the bridge takes over the client's own line (weekend overflow); None: always ours.
    overflow: Overflow | None = None
    # Calls up at once on this line (trunk); above it, 503 with Retry-After. None: no cap.
    max_concurrent_calls: int | None = None

    def trusts(self, source: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(source in net for net in self.trunk_sources)


@dataclass(frozen=True)
class ServedClient:
    client_id: str
    # 1 is the first tier offered; higher levels are tried later.
    level: int = 1


@dataclass(frozen=True)
class Agent:
    login: str
    name: str
    password_hash: str
    serves: tuple[ServedClient, ...]

    def level_for(self, client_id: str) -> int | None:
        for served in self.serves:
            if served.client_id == client_id:
                return served.level
        return None


@dataclass(frozen=True)
class Shift:
    """An agent's booked slots: weekly recurrences and dated slots in one calendar.

    `clients` narrows the slots to some of the agent's clients; empty means
    every client the agent serves.
    """

    agent_login: str
    calendar: WeeklyCalendar
    clients: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Supervisor:
    login: str
    name: str
    password_hash: str
    clients: frozenset[str]


@dataclass(frozen=True)
class ClientAdmin:
    login: str
    name: str
    password_hash: str
    client_id: str


@dataclass(frozen=True)
class Admin:
    login: str
    name: str
    password_hash: str


@dataclass(frozen=True)
class PayTier:
    """Answered calls with `min_s <= talk < max_s` (max None: unbounded) earn `rate`."""

    min_s: int
    max_s: int | None
    rate: Decimal

    def contains(self, talk_s: float) -> bool:
        return talk_s >= self.min_s and (self.max_s is None or talk_s < self.max_s)


@dataclass(frozen=True)
class RateCard:
    client_id: str
    currency: str
    tiers: tuple[PayTier, ...]
    premiums: Premiums = field(default_factory=Premiums)
    quality: QualityRule = field(default_factory=QualityRule)

    def tier_for(self, talk_s: float) -> PayTier | None:
        for tier in self.tiers:
            if tier.contains(talk_s):
                return tier
        return None


# Compared and hashed by identity: a tenant is one loaded configuration.
@dataclass(frozen=True, eq=False)
class Tenant:
    id: str
    name: str
    clients: Mapping[str, Client]
    lines: tuple[Line, ...]
    agents: Mapping[str, Agent] = field(default_factory=dict)
    shifts: tuple[Shift, ...] = ()
    supervisors: Mapping[str, Supervisor] = field(default_factory=dict)
    client_admins: Mapping[str, ClientAdmin] = field(default_factory=dict)
    admins: Mapping[str, Admin] = field(default_factory=dict)
    rate_cards: Mapping[str, RateCard] = field(default_factory=dict)
    # Configured queues by id; a client with none gets one named after it (`all_queues`).
    queues: Mapping[str, QueueConfig] = field(default_factory=dict)
    shift_rules: ShiftRules = field(default_factory=ShiftRules)

    @cached_property
    def all_queues(self) -> Mapping[str, QueueConfig]:
        """The configured queues, plus a default queue (id = client id) for each client without one."""
        found = dict(self.queues)
        configured = {q.client_id for q in self.queues.values()}
        for client_id in sorted(self.clients):
            if client_id not in configured and client_id not in found:
                found[client_id] = QueueConfig(id=client_id, client_id=client_id)
        return found

    def queue_for_line(self, line: Line) -> QueueConfig:
        """Where the line's calls wait: its own queue, else its client's queue named after the client,
        else the client's first configured queue."""
        if line.queue is not None:
            return self.all_queues[line.queue]
        return self.client_queue(line.client_id)

    def client_queue(self, client_id: str) -> QueueConfig:
        """The client's queue named after it, else its first configured queue."""
        queues = self.all_queues
        if client_id in queues and queues[client_id].client_id == client_id:
            return queues[client_id]
        return next(q for q in queues.values() if q.client_id == client_id)

    @cached_property
    def forwarded_lines(self) -> Mapping[str, Line]:
        """Lines whose overflow takes calls forwarded by the client's PBX, by the client's own numbers."""
        return {
            number: line
            for line in self.lines
            if line.overflow is not None and line.overflow.takeover is Takeover.FORWARDED
            for number in line.overflow.numbers
        }

    @cached_property
    def shifts_by_agent(self) -> Mapping[str, tuple[Shift, ...]]:
        found: dict[str, list[Shift]] = {}
        for shift in self.shifts:
            found.setdefault(shift.agent_login, []).append(shift)
        return {login: tuple(shifts) for login, shifts in found.items()}

    @cached_property
    def lines_by_did(self) -> Mapping[str, Line]:
        return {did: line for line in self.lines for did in line.dids}

    @cached_property
    def lines_by_digest_user(self) -> Mapping[str, Line]:
        return {line.digest.username: line for line in self.lines if line.digest is not None}

    def line_for_did(self, did: str) -> Line | None:
        return self.lines_by_did.get(did)
