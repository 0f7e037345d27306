"""Plain values that cross from the pjsua2 thread to asyncio.

No pj object ever leaves the adapter's thread: what the rest of the worker
sees is these snapshots, and a leg number of our own (pjsua reuses its call
ids, ours are never reused within a process).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


@dataclass(frozen=True)
class AdapterSettings:
    sip_host: str
    sip_port: int
    public_host: str
    rtp_port: int
    rtp_port_range: int
    capacity: int
    pjsip_log_level: int = 2
    user_agent: str = "hotline-bridge"
    # Seconds a caller is told to wait before retrying when we are full or draining.
    retry_after_s: int = 5
    # Connect each call's RTP/RTCP sockets to the SDP-declared peer (telephony/rtp_strict_source.py).
    strict_rtp_source: bool = True


@dataclass(frozen=True)
class InviteInfo:
    leg: int
    sip_call_id: str
    source: str
    message: str
    received_mono: float
    received_wall: float


class LegState(StrEnum):
    EARLY = "early"
    CONNECTING = "connecting"
    CONFIRMED = "confirmed"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class InviteReceived:
    invite: InviteInfo


@dataclass(frozen=True)
class InviteRefused:
    """Refused inside the adapter, before asyncio saw it (full, draining, or pjsua's own limit)."""

    status: int
    reason: str
    sip_call_id: str
    source: str
    message: str
    at_mono: float
    at_wall: float


@dataclass(frozen=True)
class LegChanged:
    leg: int
    state: LegState
    status: int
    reason: str
    at_mono: float
    at_wall: float
    # Who ended the leg, once disconnected: "remote" (BYE, CANCEL) or "local".
    ended_by: str | None = None


@dataclass(frozen=True)
class PlaybackStarted:
    leg: int
    what: str
    at_mono: float
    at_wall: float


@dataclass(frozen=True)
class RegistrationSpec:
    """Register as a client's line with its registrar (a registration takeover)."""

    key: str
    registrar_uri: str
    aor: str
    username: str
    password: str = field(repr=False)
    realm: str | None = None
    expires_s: int = 300


@dataclass(frozen=True)
class RegistrationChanged:
    key: str
    registered: bool
    # The registrar's last answer (200, 401, 403, 408 for no answer, 423...), and its reason phrase.
    status: int
    reason: str
    expires_s: int
    at_mono: float
    at_wall: float


AdapterEvent = InviteReceived | InviteRefused | LegChanged | PlaybackStarted | RegistrationChanged


@dataclass(frozen=True)
class Refusal:
    """An INVITE refused before the control process could decide on it."""

    status: int
    reason: str
    sip_call_id: str
    source: str
    did: str
    caller: str
    at_mono: float
    at_wall: float
    caller_display: str | None = None
    # None: refused by the SIP front, not by a worker.
    worker: int | None = None


@dataclass(frozen=True)
class PlayPlan:
    """What a leg hears once its media is up: a greeting once, then music in a loop."""

    greeting: Path | None = None
    music: Path | None = None


@dataclass(frozen=True)
class AdapterStats:
    legs: int
    conference_ports: int
    players: int
    music_players: int
    threads: int
    draining: bool
    capacity: int
    leg_ids: tuple[int, ...] = field(default_factory=tuple)
    # Agent legs' conference ports: in use, and idle in the pool (ports are
    # reused, never destroyed while pjsua runs).
    agent_ports: int = 0
    agent_ports_pooled: int = 0
    agent_port_errors: int = 0
    agent_port_error: str | None = None  # the first one, with where it happened
    # Media sockets connected to their declared peer since start, and the pins that failed.
    rtp_pins: int = 0
    rtp_pin_failures: int = 0
    # False when this pjsua2 build's frame layout forced the slow SWIG copy.
    fast_frame_copy: bool = False


class AdapterError(Exception):
    """A pjsua2 operation failed; the message is pjsip's own explanation."""


class LegGone(AdapterError):
    """The leg ended before the command reached it."""
