"""Tenant files: the TOML that describes one tenant, read into `dialplan.tenant`.

A tenant file is checked completely before anything is built: every problem
is collected and reported at once as a `ConfigError`, one complete line per
problem, of the form ``<file name>: <key path>: <what was wrong>``::

    tenants.toml: clients[1].timezone: unknown time zone 'Europe/Pariss'
    tenants.toml: lines[1].dids[0]: DID '1001' is already used by line 'acme-main'
    tenants.toml: line 3, column 5: Invalid value

Key paths are ``table.key`` and ``array[index]`` (0-based). Unknown keys are
problems too, so a typo never passes silently. Secrets (password hashes,
digest passwords and HA1s) are never echoed back in a message.

The schema (docs/tenant-file.md has a complete, commented example)::

    [tenant]
    id = "demo"                       # an id: [a-z0-9][a-z0-9_-]{0,31}
    name = "Demo tenant"

    [[clients]]                       # one or more
    id = "acme"                       # an id, unique among clients
    name = "Acme Furniture"
    timezone = "Europe/Paris"         # an IANA time zone
    greeting = { text = "Thank you for calling." }   # or { wav = "greetings/acme.wav" }
    hold_music = "music/acme.wav"     # optional
    knowledge_base_url = "https://kb.example.com/acme"   # optional, http(s)
    recording = "off"                 # off (default) | always | on_demand (started by agent or supervisor)
    recording_retention_days = 90     # recordings are purged this many days after the call; default 90
    recordings_for_client_admin = false   # the client's admins may play its recordings; default false
    max_concurrent_calls = 30         # optional: calls up at once on all its lines; above, 503 + Retry-After
    mask_caller_number = false        # default false
    live_listening = true             # supervisors may listen, whisper and barge; default true
    agent_sees_supervisor = false     # the agent is shown who listens; default false
    wrap_up_s = 10                    # seconds after a call before the agent's next offer; default 10
    max_no_answer = 3                 # missed offers in a row before the agent is paused; 0 never
    reject_delay_s = 10               # no offers this long after a decline (and no_answer_delay_s,
                                      # busy_delay_s after a missed or busy offer)

    [[lines]]                         # one or more
    id = "acme-main"                  # an id, unique among lines
    client = "acme"
    dids = ["1001"]                   # digits, optional leading '+'; unique across lines
    trunk_sources = ["127.0.0.1/32"]  # addresses or networks (no host bits) trusted without auth
    digest = { username = "acme-pbx", realm = "hotline", password = "..." }  # or ha1 = "<32 hex>"
    max_concurrent_calls = 10         # optional: calls up at once on this line (trunk); above, 503 + Retry-After
    service_window = { kind = "always" }                 # the default
    # service_window = { kind = "calendar", weekly = [...], holidays = ["2026-12-25"] }

    [[agents]]
    login = "alice"                   # a login, unique across agents, supervisors,
    name = "Alice Martin"             # client admins and admins
    password_hash = "$argon2id$..."
    serves = [{ client = "acme", level = 1 }]            # level >= 1, default 1

    [[shifts]]
    agent = "alice"
    timezone = "Europe/Paris"         # required: the zone the slots are written in
    clients = ["acme"]                # optional subset of the agent's clients; default all
    weekly = [{ days = ["mon", "tue"], from = "07:00", to = "13:00" }]
    dated = [{ start = "2026-11-23T07:00", end = "2026-11-23T13:00" }]

    [[supervisors]]                   # login, name and password_hash as for agents, and:
    clients = ["acme"]

    [[client_admins]]                 # login, name and password_hash as for agents, and:
    client = "acme"

    [[admins]]                        # login, name and password_hash as for agents

    [[queues]]                        # optional; a client without one gets a queue named after it
    id = "acme-vip"
    client = "acme"
    strategy = "fair_earnings"        # see dialplan.queues.Strategy
    max_wait_s = 300                  # optional, as max_length
    fallback = { kind = "queue", target = "acme" }       # queue | voicemail | number | hangup
    join_unless = ["off_shift"]       # see dialplan.queues.Absence; leave_when likewise
    announcements = { position_every_s = 30, agent_whisper = "Acme VIP" }

    [[rate_cards]]                    # at most one per client
    client = "acme"
    currency = "EUR"                  # ISO 4217, capitals
    tiers = [{ min_s = 0, max_s = 60, rate = "0.40" }, { min_s = 60, rate = "1.10" }]

Weekly entries (service windows and shifts) are either ``days`` with plain
``from``/``to`` times ("HH:MM"; ``to`` may be "24:00"; a ``to`` at or before
``from`` ends the next day), one span per day; or ``from``/``to`` with a day
each ("fri 18:00" to "mon 08:00"), one span. Pay tiers start at 0 s, each
starts where the previous one ends (min inclusive, max exclusive) and only
the last may leave out ``max_s``. Rates are decimal strings or whole
numbers; floats are refused, floating-point money being inexact. Relative
WAV paths are read against the tenant file's directory and must name an
existing RIFF/WAVE file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import argon2

from config.errors import ConfigError
from dialplan.overflow import EndPolicy, Overflow, OverflowSchedule, Registrar, Takeover
from dialplan.pay_rules import Premiums, QualityRule
from dialplan.queues import (
    Absence,
    AgentTimers,
    Announcements,
    Fallback,
    FallbackKind,
    QueueConfig,
    ShiftRules,
    Strategy,
)
from dialplan.schedule import WEEKDAYS, DatedSpan, ServiceWindow, WeeklyCalendar, WeeklySpan
from dialplan.tenant import (
    DEFAULT_WRAP_UP_S,
    Admin,
    Agent,
    Client,
    ClientAdmin,
    DigestCredentials,
    Greeting,
    IPNetwork,
    Line,
    PayTier,
    RateCard,
    RecordingPolicy,
    ServedClient,
    Shift,
    Supervisor,
    Tenant,
)

__all__ = ["demo_tenant_path", "load_tenant", "load_tenant_text"]

T = TypeVar("T")

DEFAULT_REALM = "hotline"


def demo_tenant_path() -> Path:
    """The demo tenant shipped with the package, which the embedded default loads."""
    return Path(__file__).with_name("demo.toml")


def load_tenant(path: Path) -> Tenant:
    """Read the tenant file at `path`; relative WAV paths are read against its directory."""
    name = path.name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read file: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise ConfigError([f"{name}: line {line}, column {column}: not UTF-8 text"]) from None
    return load_tenant_text(text, name, path.parent)


def load_tenant_text(text: str, name: str = "tenant.toml", base_dir: Path | None = None) -> Tenant:
    """Read a tenant file's text. `name` prefixes problems; relative WAV paths resolve against
    `base_dir` (default: the current directory)."""
    try:
        data: Mapping[str, object] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{name}: {_syntax_error(text, str(exc))}"]) from None
    report = _Report(name)
    tenant = _Loader(report, base_dir or Path.cwd()).tenant(_Node(data, "", report))
    if report.lines or tenant is None:
        raise ConfigError(report.lines or [f"{name}: unusable tenant file"])
    return tenant


def _syntax_error(text: str, message: str) -> str:
    """tomllib's "<what> (at line L, column C)" as "line L, column C: <what>"."""
    match = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.DOTALL)
    if match:
        return f"line {match[2]}, column {match[3]}: {match[1]}"
    match = re.fullmatch(r"(.*) \(at end of document\)", message, re.DOTALL)
    if match:
        line = text.count("\n") + 1
        column = len(text) - text.rfind("\n")
        return f"line {line}, column {column}: {match[1]}"
    return message


# --- Values -----------------------------------------------------------------------------------


class _Invalid(Exception):
    """A value that can't be used. `message` follows the key path; None means the kind's
    "expected ..., got ..." message."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class _Kind(Generic[T]):
    """What a key holds: `expected` describes it, `convert` checks and converts a value."""

    expected: str
    convert: Callable[[object], T]
    secret: bool = False

    def read(self, value: object) -> T:
        try:
            return self.convert(value)
        except _Invalid as exc:
            if exc.message is not None:
                raise
            raise _Invalid(f"expected {self.expected}, got {_describe(value, self.secret)}") from None


def _string_kind(expected: str, parse: Callable[[str], T], *, secret: bool = False) -> _Kind[T]:
    def convert(value: object) -> T:
        if not isinstance(value, str):
            raise _Invalid
        return parse(value)

    return _Kind(expected, convert, secret)


def _matching(pattern: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def parse(value: str) -> str:
        if not compiled.fullmatch(value):
            raise _Invalid
        return value

    return parse


def _describe(value: object, secret: bool = False) -> str:
    """How a problem names the value it got."""
    if isinstance(value, str):
        return "a string (not shown)" if secret else repr(value)
    if isinstance(value, list):
        return "an array" if value else "an empty array"
    if isinstance(value, dict):
        return "a table"
    shown: str
    if isinstance(value, bool):
        kind, shown = "boolean", "true" if value else "false"
    elif isinstance(value, int):
        kind, shown = "integer", str(value)
    elif isinstance(value, float):
        kind, shown = "float", repr(value)
    elif isinstance(value, datetime):
        kind, shown = "date-time", value.isoformat()
    elif isinstance(value, date):
        kind, shown = "date", value.isoformat()
    elif isinstance(value, time):
        kind, shown = "time", value.isoformat()
    else:
        kind, shown = type(value).__name__, repr(value)
    return f"a value of type {kind} (not shown)" if secret else f"{kind} {shown}"


def _whole(minimum: int) -> Callable[[object], int]:
    def convert(value: object) -> int:
        # bool is an int to Python, not to TOML.
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _Invalid
        return value

    return convert


E = TypeVar("E", bound=StrEnum)


def _member(enum: type[E]) -> Callable[[str], E]:
    def parse(value: str) -> E:
        try:
            return enum(value)
        except ValueError:
            raise _Invalid from None

    return parse


def _positive_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise _Invalid
    return float(value)


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid
    return value


def _nonblank(value: str) -> str:
    if not value.strip():
        raise _Invalid(f"expected a non-empty string, got {value!r}")
    return value


def _zone(value: str) -> ZoneInfo:
    try:
        return ZoneInfo(value)
    except (ValueError, KeyError, OSError):
        raise _Invalid(f"unknown time zone {value!r}") from None


def _url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        raise _Invalid from None
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", value):
        raise _Invalid
    return value


def _recording(value: str) -> RecordingPolicy:
    try:
        return RecordingPolicy(value)
    except ValueError:
        raise _Invalid from None


def _network(value: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise _Invalid from None
    raise _Invalid(f"{value!r} has host bits set; did you mean '{loose}'?")


_ARGON2 = r"\$argon2(id|i|d)\$v=[0-9]+\$m=[0-9]+,t=[0-9]+,p=[0-9]+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+"


def _password_hash(value: str) -> str:
    if not re.fullmatch(_ARGON2, value):
        raise _Invalid
    try:
        argon2.extract_parameters(value)
    except argon2.exceptions.InvalidHashError:
        raise _Invalid from None
    return value


def _rate(value: object) -> Decimal:
    if isinstance(value, float):
        raise _Invalid(
            f"expected {RATE.expected}, got float {value!r} (floating-point money is inexact: quote it, '{value!r}')"
        )
    if isinstance(value, str) and re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
        return Decimal(value)
    return Decimal(_whole(0)(value))


def _decimal_between(low: Decimal, high: Decimal | None, expected: str) -> Callable[[object], Decimal]:
    def convert(value: object) -> Decimal:
        if isinstance(value, float):
            raise _Invalid(f"expected {expected}, got float {value!r} (quote it, '{value!r}': floats are inexact)")
        decimal_text = isinstance(value, str) and re.fullmatch(r"[0-9]+(\.[0-9]+)?", value) is not None
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not (decimal_text or whole):
            raise _Invalid
        number = Decimal(str(value))
        if number < low or (high is not None and number > high):
            raise _Invalid
        return number

    return convert


def _whole_between(low: int, high: int) -> Callable[[object], int]:
    def convert(value: object) -> int:
        number = _whole(low)(value)
        if number > high:
            raise _Invalid
        return number

    return convert


_TIME = r"([01][0-9]|2[0-3]):([0-5][0-9])"


def _day(value: str) -> int:
    if value not in WEEKDAYS:
        raise _Invalid
    return WEEKDAYS.index(value)


def _clock(value: str, *, with_day: bool, end: bool) -> tuple[int, time]:
    """A time, or a day and time, as (day offset or day index, time); an end may be 24:00."""
    day_part = f"({'|'.join(WEEKDAYS)}) " if with_day else "()"
    match = re.fullmatch(f"{day_part}(?:{_TIME}|(24:00))", value)
    if not match or (match[4] and not end):
        raise _Invalid
    day = WEEKDAYS.index(match[1]) if with_day else 0
    if match[4]:
        return (day + 1) % 7 if with_day else 1, time()
    return day, time(int(match[2]), int(match[3]))


def _date(value: object) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise _Invalid
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _Invalid from None


_LOCAL_DATETIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?"


def _local_datetime(value: object) -> datetime:
    if isinstance(value, str) and re.fullmatch(_LOCAL_DATETIME, value):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _Invalid from None
    if not isinstance(value, datetime) or value.tzinfo is not None:
        raise _Invalid
    return value


def _wav(base_dir: Path) -> Callable[[str], str]:
    def parse(value: str) -> str:
        path = (base_dir / value).resolve()
        try:
            with path.open("rb") as wav:
                header = wav.read(12)
        except FileNotFoundError:
            raise _Invalid(f"no such file: {path}") from None
        except OSError as exc:
            raise _Invalid(f"cannot read {path}: {exc.strerror or exc}") from None
        if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            raise _Invalid(f"not a WAV file (no RIFF/WAVE header): {path}")
        return str(path)

    return parse


_ID_RULE = "of 1-32 characters a-z, 0-9, '_' or '-', starting with a letter or digit"
_ID_PATTERN = r"[a-z0-9][a-z0-9_-]{0,31}"

TEXT = _string_kind("a string", _nonblank)
ID = _string_kind(f"an id {_ID_RULE}, such as 'acme'", _matching(_ID_PATTERN))
LOGIN = _string_kind(f"a login {_ID_RULE}, such as 'alice'", _matching(_ID_PATTERN))
CLIENT_REF = _string_kind("the id of a client, such as 'acme'", _nonblank)
AGENT_REF = _string_kind("the login of an agent, such as 'alice'", _nonblank)
ZONE = _string_kind("an IANA time zone such as 'Europe/Paris'", _zone)
URL = _string_kind("an http(s) URL such as 'https://kb.example.com/acme'", _url)
RECORDING = _string_kind("one of: off, always, on_demand", _recording)
BOOLEAN = _Kind("true or false", _boolean)
DID = _string_kind("a DID as a string of digits such as '1001', optionally after a '+'", _matching(r"\+?[0-9]{1,32}"))
NETWORK = _string_kind("an IP address or network such as '192.0.2.0/24'", _network)
DIGEST_NAME = _string_kind("a non-empty string without ':' or '\"'", _matching(r"[^:\"\\\x00-\x1f]+"))
DIGEST_PASSWORD = _string_kind("a non-empty string", _nonblank, secret=True)
HA1 = _string_kind(
    "32 hexadecimal digits: MD5(username:realm:password)",
    lambda value: _matching("[0-9a-fA-F]{32}")(value).lower(),
    secret=True,
)
PASSWORD_HASH = _string_kind(
    "an argon2 hash such as '$argon2id$v=19$m=65536,t=3,p=4$...' (argon2.PasswordHasher().hash(password) makes one)",
    _password_hash,
    secret=True,
)
LEVEL = _Kind("a whole number, 1 or more", _whole(1))
COUNT = _Kind("a whole number, 0 or more", _whole(0))
SECONDS = _Kind("a whole number of seconds, 0 or more", _whole(0))
RATE = _Kind("a decimal string such as '0.50' or a whole number", _rate)
CURRENCY = _string_kind("a 3-letter ISO 4217 code in capitals such as 'EUR'", _matching("[A-Z]{3}"))
WINDOW_KIND = _string_kind("always or calendar", _matching("always|calendar"))
DAY = _string_kind("a day: mon, tue, wed, thu, fri, sat or sun", _day)
TIME = _string_kind(
    "a time such as '08:00' (with days, from and to are plain times)",
    lambda value: _clock(value, with_day=False, end=False)[1],
)
END_TIME = _string_kind(
    "a time such as '18:00', or '24:00' for the end of the day",
    lambda value: _clock(value, with_day=False, end=True),
)
DAY_TIME = _string_kind(
    "a day and time such as 'fri 18:00' (or give days and plain times)",
    lambda value: _clock(value, with_day=True, end=False),
)
DAY_END_TIME = _string_kind(
    "a day and time such as 'mon 08:00' (or give days and plain times)",
    lambda value: _clock(value, with_day=True, end=True),
)
DATE = _Kind("a date such as '2026-12-25'", _date)
STRATEGY = _string_kind(f"one of: {', '.join(s.value for s in Strategy)}", _member(Strategy))
FALLBACK_KIND = _string_kind(f"one of: {', '.join(k.value for k in FallbackKind)}", _member(FallbackKind))
ABSENCE = _string_kind(f"one of: {', '.join(a.value for a in Absence)}", _member(Absence))
WEIGHT = _Kind("a number above 0 such as 1 or 2.5", _positive_number)
QUEUE_REF = _string_kind("the id of a queue, such as 'acme-vip'", _nonblank)
_MULTIPLIER = "a decimal string of 1 or more such as '1.25'"
MULTIPLIER = _Kind(_MULTIPLIER, _decimal_between(Decimal(1), None, _MULTIPLIER))
_SHARE = "a decimal string from 0 to 1 such as '0.10'"
SHARE = _Kind(_SHARE, _decimal_between(Decimal(0), Decimal(1), _SHARE))
SCORE = _Kind("a whole score from 1 to 4", _whole_between(1, 4))
TAKEOVER = _string_kind(f"one of: {', '.join(t.value for t in Takeover)}", _member(Takeover))
END_POLICY = _string_kind(f"one of: {', '.join(p.value for p in EndPolicy)}", _member(EndPolicy))
HOST = _string_kind("a host name or IP address such as '192.0.2.10'", _matching(r"[A-Za-z0-9.:\[\]-]{1,253}"))
PORT = _Kind("a port number, 1-65535", _whole(1))
SIP_URI = _string_kind(
    "a SIP URI such as 'sip:+33140000000@pbx.example.com'", _matching(r"(sips?|tel):[^\s<>\"]{1,250}")
)
LOCAL_DATETIME = _Kind(
    "a local date-time such as '2026-11-23T07:00', without offset (it is read in the shift's timezone)",
    _local_datetime,
)


# --- The cursor -------------------------------------------------------------------------------


class _Report:
    """The problems found so far, each a complete line."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{self.name}: {path}: {message}" if path else f"{self.name}: {message}")


_ABSENT = object()


class _Node:
    """A table of the file at `path`, read through typed accessors.

    Every accessor marks its key as known, reports a bad value under the key's
    full path and then returns None (or skips the item), so reading carries on
    and every problem is found. `finish` reports the keys nobody asked for.
    """

    def __init__(self, data: Mapping[str, object], path: str, report: _Report) -> None:
        self._data = data
        self.path = path
        self._report = report
        self._known: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def problem(self, message: str, key: str | None = None) -> None:
        self._report.add(self.path if key is None else self.at(key), message)

    def has(self, key: str) -> bool:
        self._known.add(key)
        return key in self._data

    def peek(self, key: str) -> object:
        """The raw value under `key` (None if absent), without checking it."""
        return self._data.get(key)

    def peek_str(self, key: str) -> str | None:
        """The raw string under `key`, valid or not: what other entries may refer to."""
        value = self._data.get(key)
        return value if isinstance(value, str) else None

    def _take(self, key: str, expected: str, required: bool) -> object:
        self._known.add(key)
        if key in self._data:
            return self._data[key]
        if required:
            self.problem(f"missing; expected {expected}", key)
        return _ABSENT

    def _read(self, path: str, kind: _Kind[T], value: object) -> T | None:
        try:
            return kind.read(value)
        except _Invalid as exc:
            self._report.add(path, exc.message or kind.expected)
            return None

    def get(self, key: str, kind: _Kind[T]) -> T | None:
        """A required value."""
        value = self._take(key, kind.expected, required=True)
        return None if value is _ABSENT else self._read(self.at(key), kind, value)

    def opt(self, key: str, kind: _Kind[T]) -> T | None:
        value = self._take(key, kind.expected, required=False)
        return None if value is _ABSENT else self._read(self.at(key), kind, value)

    def get_or(self, key: str, kind: _Kind[T], default: T) -> T:
        value = self.opt(key, kind)
        return default if value is None else value

    def items(
        self, key: str, kind: _Kind[T], expected: str, *, required: bool = True, non_empty: bool = True
    ) -> list[tuple[str, T]]:
        """An array's usable elements, each with its path; duplicates are problems."""
        value = self._take(key, expected, required)
        if value is _ABSENT:
            return []
        path = self.at(key)
        if not isinstance(value, list) or (non_empty and not value):
            self._report.add(path, f"expected {expected}, got {_describe(value)}")
            return []
        result: list[tuple[str, T]] = []
        seen: set[object] = set()
        for index, element in enumerate(value):
            item_path = f"{path}[{index}]"
            item = self._read(item_path, kind, element)
            if item is None:
                continue
            if item in seen:
                self._report.add(item_path, f"{_describe(element)} is listed twice")
                continue
            seen.add(item)
            result.append((item_path, item))
        return result

    def table(self, key: str, expected: str, *, required: bool = True) -> _Node | None:
        value = self._take(key, expected, required)
        if value is _ABSENT:
            return None
        if not isinstance(value, dict):
            self.problem(f"expected {expected}, got {_describe(value)}", key)
            return None
        return _Node(value, self.at(key), self._report)

    def tables(self, key: str, expected: str, *, required: bool = True) -> list[_Node]:
        """An array of tables, `[[key]]` or inline; when given it must not be empty."""
        value = self._take(key, expected, required)
        if value is _ABSENT:
            return []
        if not isinstance(value, list) or not value:
            self.problem(f"expected {expected}, got {_describe(value)}", key)
            return []
        nodes: list[_Node] = []
        for index, element in enumerate(value):
            item_path = f"{self.at(key)}[{index}]"
            if isinstance(element, dict):
                nodes.append(_Node(element, item_path, self._report))
            else:
                self._report.add(item_path, f"expected a table, got {_describe(element)}")
        return nodes

    def finish(self) -> None:
        expected = ", ".join(sorted(self._known))
        for key in self._data:
            if key not in self._known:
                self.problem(f"unknown key; expected one of: {expected}", key)


# --- The tenant -------------------------------------------------------------------------------


class _Loader:
    """Reads the sections in order, keeping what later sections refer to."""

    def __init__(self, report: _Report, base_dir: Path) -> None:
        self.report = report
        self.wav = _string_kind("a path to a WAV file, such as 'greetings/acme.wav'", _wav(base_dir))
        # Declared names (valid or not, so one bad entry doesn't cascade) -> where.
        self.client_paths: dict[str, str] = {}
        self.line_paths: dict[str, str] = {}
        self.logins: dict[str, str] = {}
        self.agent_serves: dict[str, set[str]] = {}
        self.did_owners: dict[str, str] = {}
        self.digest_owners: dict[str, str] = {}
        self.realm: tuple[str, str] | None = None
        self.rate_card_paths: dict[str, str] = {}
        self.queue_paths: dict[str, str] = {}
        # Checked once every queue is read: (path, queue id) of references to queues.
        self.queue_refs: list[tuple[str, str]] = []
        # (path, queue id, the line's client): a line's calls must wait in a queue of its own client.
        self.line_queues: list[tuple[str, str, str]] = []
        # What gets built.
        self.clients: dict[str, Client] = {}
        self.lines: list[Line] = []
        self.agents: dict[str, Agent] = {}
        self.shifts: list[Shift] = []
        self.supervisors: dict[str, Supervisor] = {}
        self.client_admins: dict[str, ClientAdmin] = {}
        self.admins: dict[str, Admin] = {}
        self.rate_cards: dict[str, RateCard] = {}
        self.queues: dict[str, QueueConfig] = {}

    def tenant(self, root: _Node) -> Tenant | None:
        head = root.table("tenant", "a [tenant] table with id and name")
        tenant_id = name = None
        if head is not None:
            tenant_id = head.get("id", ID)
            name = head.get("name", TEXT)
            head.finish()
        for node in root.tables("clients", "one or more [[clients]] tables"):
            self.client(node)
        for node in root.tables("lines", "one or more [[lines]] tables"):
            self.line(node)
        for node in root.tables("agents", "[[agents]] tables", required=False):
            self.agent(node)
        for node in root.tables("shifts", "[[shifts]] tables", required=False):
            self.shift(node)
        for node in root.tables("supervisors", "[[supervisors]] tables", required=False):
            self.supervisor(node)
        for node in root.tables("client_admins", "[[client_admins]] tables", required=False):
            self.client_admin(node)
        for node in root.tables("admins", "[[admins]] tables", required=False):
            self.admin(node)
        for node in root.tables("rate_cards", "[[rate_cards]] tables", required=False):
            self.rate_card(node)
        for node in root.tables("queues", "[[queues]] tables", required=False):
            self.queue(node)
        shift_rules = self.shift_rules(root)
        for path, queue_id in self.queue_refs:
            if queue_id not in self.queue_paths:
                self.report.add(path, f"unknown queue {queue_id!r}")
        for path, queue_id, client_id in self.line_queues:
            queue = self.queues.get(queue_id)
            if queue is not None and queue.client_id != client_id:
                self.report.add(path, f"queue {queue_id!r} is client {queue.client_id!r}'s, not {client_id!r}'s")
        root.finish()
        if tenant_id is None or name is None:
            return None
        return Tenant(
            id=tenant_id,
            name=name,
            clients=self.clients,
            lines=tuple(self.lines),
            agents=self.agents,
            shifts=tuple(self.shifts),
            supervisors=self.supervisors,
            client_admins=self.client_admins,
            admins=self.admins,
            rate_cards=self.rate_cards,
            queues=self.queues,
            shift_rules=shift_rules,
        )

    def shift_rules(self, root: _Node) -> ShiftRules:
        expected = "a [shift_rules] table such as last_offer_before_end_s = 120, no_show_after_s = 600"
        node = root.table("shift_rules", expected, required=False)
        defaults = ShiftRules()
        if node is None:
            return defaults
        last_offer = node.get_or("last_offer_before_end_s", SECONDS, int(defaults.last_offer_before_end_s))
        no_show = node.get_or("no_show_after_s", SECONDS, int(defaults.no_show_after_s))
        node.finish()
        return ShiftRules(last_offer_before_end_s=float(last_offer), no_show_after_s=float(no_show))

    # Names and references.

    def declare(self, node: _Node, key: str, kind: _Kind[str], registry: dict[str, str], what: str) -> str | None:
        value = node.get(key, kind)
        raw = node.peek_str(key)
        if raw is None:
            return None
        if raw in registry:
            node.problem(f"{what} {raw!r} is already used by {registry[raw]}", key)
            return None
        registry[raw] = node.path
        return value

    def client_ref(self, path: str, client_id: str) -> bool:
        if client_id in self.client_paths:
            return True
        self.report.add(path, f"unknown client {client_id!r}")
        return False

    def person(self, node: _Node) -> tuple[str, str, str] | None:
        login = self.declare(node, "login", LOGIN, self.logins, "login")
        name = node.get("name", TEXT)
        password_hash = node.get("password_hash", PASSWORD_HASH)
        if login is None or name is None or password_hash is None:
            return None
        return login, name, password_hash

    # Sections.

    def client(self, node: _Node) -> None:
        client_id = self.declare(node, "id", ID, self.client_paths, "id")
        name = node.get("name", TEXT)
        zone = node.get("timezone", ZONE)
        greeting = self.greeting(node)
        hold_music = node.opt("hold_music", self.wav)
        knowledge_base_url = node.opt("knowledge_base_url", URL)
        recording = node.get_or("recording", RECORDING, RecordingPolicy.OFF)
        retention_days = node.get_or("recording_retention_days", LEVEL, 90)
        for_client_admin = node.get_or("recordings_for_client_admin", BOOLEAN, False)
        client_cap = node.opt("max_concurrent_calls", LEVEL)
        mask = node.get_or("mask_caller_number", BOOLEAN, False)
        live_listening = node.get_or("live_listening", BOOLEAN, True)
        agent_sees_supervisor = node.get_or("agent_sees_supervisor", BOOLEAN, False)
        wrap_up_s = node.get_or("wrap_up_s", SECONDS, DEFAULT_WRAP_UP_S)
        defaults = AgentTimers()
        max_no_answer = node.get_or("max_no_answer", COUNT, defaults.max_no_answer)
        reject_delay_s = node.get_or("reject_delay_s", SECONDS, int(defaults.reject_delay_s))
        no_answer_delay_s = node.get_or("no_answer_delay_s", SECONDS, int(defaults.no_answer_delay_s))
        busy_delay_s = node.get_or("busy_delay_s", SECONDS, int(defaults.busy_delay_s))
        node.finish()
        if client_id is None or name is None or zone is None or greeting is None:
            return
        self.clients[client_id] = Client(
            id=client_id,
            name=name,
            timezone=zone,
            greeting=greeting,
            knowledge_base_url=knowledge_base_url,
            recording=recording,
            recording_retention_days=retention_days,
            recordings_for_client_admin=for_client_admin,
            max_concurrent_calls=client_cap,
            mask_caller_number=mask,
            live_listening=live_listening,
            agent_sees_supervisor=agent_sees_supervisor,
            hold_music=hold_music,
            wrap_up_s=wrap_up_s,
            max_no_answer=max_no_answer,
            reject_delay_s=reject_delay_s,
            no_answer_delay_s=no_answer_delay_s,
            busy_delay_s=busy_delay_s,
        )

    def greeting(self, client: _Node) -> Greeting | None:
        expected = 'a table such as { text = "Thank you for calling." } or { wav = "greetings/acme.wav" }'
        node = client.table("greeting", expected)
        if node is None:
            return None
        text = node.opt("text", TEXT)
        wav = node.opt("wav", self.wav)
        if node.has("text") == node.has("wav"):
            node.problem("expected exactly one of text or wav")
        node.finish()
        if text is None and wav is None:
            return None
        return Greeting(text=text, wav=wav)

    def line(self, node: _Node) -> None:
        line_id = self.declare(node, "id", ID, self.line_paths, "id")
        label = f"line {line_id!r}" if line_id is not None else node.path
        client_id = node.get("client", CLIENT_REF)
        if client_id is not None and not self.client_ref(node.at("client"), client_id):
            client_id = None
        dids = node.items("dids", DID, "a non-empty list of DIDs such as ['1001']")
        for path, did in dids:
            if did in self.did_owners:
                self.report.add(path, f"DID {did!r} is already used by {self.did_owners[did]}")
            else:
                self.did_owners[did] = label
        sources = node.items(
            "trunk_sources",
            NETWORK,
            "a list of addresses or networks such as ['192.0.2.0/24']",
            required=False,
            non_empty=False,
        )
        digest = self.digest(node, label)
        queue_id = node.opt("queue", QUEUE_REF)
        if queue_id is not None:
            self.queue_refs.append((node.at("queue"), queue_id))
            if client_id is not None:
                self.line_queues.append((node.at("queue"), queue_id, client_id))
        client = self.clients.get(client_id) if client_id is not None else None
        window = self.service_window(node, client.timezone if client is not None else None)
        overflow = self.overflow(node, line_id, client.timezone if client is not None else None)
        line_cap = node.opt("max_concurrent_calls", LEVEL)
        raw_sources = node.peek("trunk_sources")
        if not node.has("digest") and not (isinstance(raw_sources, list) and raw_sources):
            node.problem("expected trunk_sources and/or digest: without either no call can reach this line")
        node.finish()
        if line_id is None or client_id is None or not dids or window is None:
            return
        self.lines.append(
            Line(
                id=line_id,
                client_id=client_id,
                dids=tuple(did for _, did in dids),
                trunk_sources=tuple(net for _, net in sources),
                digest=digest,
                service_window=window,
                queue=queue_id,
                overflow=overflow,
                max_concurrent_calls=line_cap,
            )
        )

    def overflow(self, line: _Node, line_id: str | None, zone: ZoneInfo | None) -> Overflow | None:
        expected = 'a table such as { takeover = "forwarded", numbers = ["+33123456789"], weekly = [...] }'
        node = line.table("overflow", expected, required=False)
        if node is None:
            return None
        takeover = node.get("takeover", TAKEOVER)
        weekly = self.weekly(node, required=False)
        holidays = node.items(
            "holidays", DATE, "a list of dates such as ['2026-12-25']", required=False, non_empty=False
        )
        switched_on = node.get_or("switched_on", BOOLEAN, True)
        end_policy = node.get_or("end_policy", END_POLICY, EndPolicy.SERVE)
        numbers = node.items(
            "numbers", DID, "a list of the client's own numbers such as ['+33123456789']", required=False
        )
        registrar = self.registrar(node) if node.has("registrar") else None
        return_to = node.opt("return_to", SIP_URI)
        if end_policy is EndPolicy.RETURN and return_to is None and takeover is Takeover.FORWARDED:
            node.problem("end_policy = return sends callers back to the client's number: give it in return_to")
        if takeover is Takeover.FORWARDED and not numbers:
            node.problem("forwarded calls are recognised by the client's own numbers: list them in numbers")
        if takeover is Takeover.REGISTRATION and not node.has("registrar"):
            node.problem("a registration takeover needs the client's registrar: add registrar = { ... }")
        node.finish()
        if takeover is None or zone is None or line_id is None:
            return None
        schedule = OverflowSchedule(zone, tuple(weekly), frozenset(day for _, day in holidays))
        return Overflow(
            line_id,
            schedule,
            takeover,
            switched_on=switched_on,
            end_policy=end_policy,
            numbers=tuple(number for _, number in numbers),
            registrar=registrar,
            return_to=return_to,
        )

    def registrar(self, overflow: _Node) -> Registrar | None:
        expected = 'a table such as { host = "192.0.2.10", username = "acme-line", password = "..." }'
        node = overflow.table("registrar", expected)
        if node is None:
            return None
        host = node.get("host", HOST)
        port = node.get_or("port", PORT, 5060)
        username = node.get("username", DIGEST_NAME)
        password = node.get("password", DIGEST_PASSWORD)
        realm = node.opt("realm", DIGEST_NAME)
        expires_s = node.get_or("expires_s", SECONDS, 300)
        if port > 65535:
            node.problem(f"expected a port number, 1-65535, got {port}", "port")
        if expires_s < 60:
            node.problem("expected 60 seconds or more: registrars refuse shorter registrations", "expires_s")
        node.finish()
        if host is None or username is None or password is None:
            return None
        return Registrar(host, port, username, password, realm, expires_s)

    def digest(self, line: _Node, label: str) -> DigestCredentials | None:
        node = line.table("digest", 'a table such as { username = "acme-pbx", password = "..." }', required=False)
        if node is None:
            return None
        username = node.get("username", DIGEST_NAME)
        realm = node.opt("realm", DIGEST_NAME)
        if realm is None and not node.has("realm"):
            realm = DEFAULT_REALM
        password = node.opt("password", DIGEST_PASSWORD)
        ha1 = node.opt("ha1", HA1)
        if node.has("password") == node.has("ha1"):
            node.problem("expected exactly one of password or ha1")
        if username is not None:
            if username in self.digest_owners:
                node.problem(f"digest user {username!r} is already used by {self.digest_owners[username]}", "username")
            else:
                self.digest_owners[username] = label
        # A challenge is sent before the line is known, so it can only name one realm.
        if realm is None:
            pass
        elif self.realm is None:
            self.realm = (realm, label)
        elif realm != self.realm[0]:
            node.problem(
                f"expected {self.realm[0]!r}, the realm of {self.realm[1]}: a challenge carries "
                f"one realm for the whole tenant, got {realm!r}",
                "realm",
            )
        node.finish()
        if username is None or realm is None:
            return None
        if password is not None:
            ha1 = hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()
        if ha1 is None:
            return None
        return DigestCredentials(username=username, realm=realm, ha1=ha1)

    def service_window(self, line: _Node, zone: ZoneInfo | None) -> ServiceWindow | None:
        node = line.table(
            "service_window",
            'a table such as { kind = "always" } or { kind = "calendar", weekly = [...] }',
            required=False,
        )
        if node is None:
            return ServiceWindow.always()
        kind = node.get("kind", WINDOW_KIND)
        weekly: list[WeeklySpan] = []
        dated: list[DatedSpan] = []
        holidays: list[tuple[str, date]] = []
        if kind == "calendar":
            dated = self.dated(node)
            # Dated openings alone are a calendar too (a one-off campaign, a take-over).
            weekly = self.weekly(node, required=not node.has("dated"))
            holidays = node.items(
                "holidays", DATE, "a list of dates such as ['2026-12-25']", required=False, non_empty=False
            )
        else:
            for key in ("weekly", "dated", "holidays"):
                if node.has(key) and kind is not None:
                    node.problem('only allowed with kind = "calendar"', key)
        node.finish()
        if kind is None:
            return None
        if kind == "always":
            return ServiceWindow.always()
        if zone is None or not (weekly or dated):
            return None
        calendar = WeeklyCalendar(zone, tuple(weekly), tuple(dated), frozenset(day for _, day in holidays))
        return ServiceWindow(calendar)

    def weekly(self, node: _Node, *, required: bool) -> list[WeeklySpan]:
        expected = (
            'a list of tables such as [{ days = ["mon", "fri"], from = "08:00", to = "18:00" }] '
            'or [{ from = "fri 18:00", to = "mon 08:00" }]'
        )
        spans: list[WeeklySpan] = []
        for entry in node.tables("weekly", expected, required=required):
            if entry.has("days"):
                days = entry.items("days", DAY, "a non-empty list of days such as ['mon', 'tue']")
                start = entry.get("from", TIME)
                end = entry.get("to", END_TIME)
                if start is not None and end is not None:
                    next_day, end_time = end
                    if end_time <= start:
                        next_day = 1
                    spans.extend(WeeklySpan(day, start, (day + next_day) % 7, end_time) for _, day in days)
            else:
                first = entry.get("from", DAY_TIME)
                last = entry.get("to", DAY_END_TIME)
                if first is not None and last is not None:
                    spans.append(WeeklySpan(first[0], first[1], last[0], last[1]))
            entry.finish()
        return spans

    def dated(self, node: _Node) -> list[DatedSpan]:
        expected = 'a list of tables such as [{ start = "2026-11-23T07:00", end = "2026-11-23T13:00" }]'
        spans: list[DatedSpan] = []
        for entry in node.tables("dated", expected, required=False):
            start = entry.get("start", LOCAL_DATETIME)
            end = entry.get("end", LOCAL_DATETIME)
            if start is not None and end is not None:
                if end > start:
                    spans.append(DatedSpan(start, end))
                else:
                    entry.problem(f"expected a date-time after start ({_iso(start)}), got {_iso(end)}", "end")
            entry.finish()
        return spans

    def agent(self, node: _Node) -> None:
        person = self.person(node)
        raw_login = node.peek_str("login")
        serves: list[ServedClient] = []
        served_raw: set[str] = set()
        seen: dict[str, str] = {}
        expected = 'a non-empty list of tables such as [{ client = "acme", level = 1 }]'
        for entry in node.tables("serves", expected):
            client_id = entry.get("client", CLIENT_REF)
            if client_id is not None:
                served_raw.add(client_id)
                if client_id in seen:
                    entry.problem(f"client {client_id!r} is already listed by {seen[client_id]}", "client")
                    client_id = None
                elif self.client_ref(entry.at("client"), client_id):
                    seen[client_id] = entry.path
                else:
                    client_id = None
            level = entry.get_or("level", LEVEL, 1)
            entry.finish()
            if client_id is not None:
                serves.append(ServedClient(client_id, level))
        node.finish()
        if raw_login is not None and raw_login not in self.agent_serves:
            self.agent_serves[raw_login] = served_raw
        if person is not None:
            login, name, password_hash = person
            self.agents[login] = Agent(login, name, password_hash, tuple(serves))

    def shift(self, node: _Node) -> None:
        agent = node.get("agent", AGENT_REF)
        if agent is not None and agent not in self.agent_serves:
            node.problem(f"unknown agent {agent!r}", "agent")
            agent = None
        zone = node.get("timezone", ZONE)
        clients = node.items(
            "clients",
            CLIENT_REF,
            "a non-empty list of client ids such as ['acme'] (leave it out for all)",
            required=False,
        )
        for path, client_id in clients:
            known = self.client_ref(path, client_id)
            if known and agent is not None and client_id not in self.agent_serves[agent]:
                self.report.add(path, f"agent {agent!r} does not serve client {client_id!r}")
        weekly = self.weekly(node, required=False)
        dated = self.dated(node)
        if not node.has("weekly") and not node.has("dated"):
            node.problem("missing; expected weekly and/or dated slots")
        node.finish()
        if agent is None or zone is None:
            return
        calendar = WeeklyCalendar(zone, weekly=tuple(weekly), dated=tuple(dated))
        self.shifts.append(Shift(agent, calendar, frozenset(client for _, client in clients)))

    def supervisor(self, node: _Node) -> None:
        person = self.person(node)
        clients = node.items("clients", CLIENT_REF, "a non-empty list of client ids such as ['acme']")
        known = [client for path, client in clients if self.client_ref(path, client)]
        node.finish()
        if person is not None:
            login, name, password_hash = person
            self.supervisors[login] = Supervisor(login, name, password_hash, frozenset(known))

    def client_admin(self, node: _Node) -> None:
        person = self.person(node)
        client_id = node.get("client", CLIENT_REF)
        if client_id is not None and not self.client_ref(node.at("client"), client_id):
            client_id = None
        node.finish()
        if person is not None and client_id is not None:
            login, name, password_hash = person
            self.client_admins[login] = ClientAdmin(login, name, password_hash, client_id)

    def admin(self, node: _Node) -> None:
        person = self.person(node)
        node.finish()
        if person is not None:
            login, name, password_hash = person
            self.admins[login] = Admin(login, name, password_hash)

    def rate_card(self, node: _Node) -> None:
        client_id = node.get("client", CLIENT_REF)
        if client_id is not None and self.client_ref(node.at("client"), client_id):
            if client_id in self.rate_card_paths:
                earlier = self.rate_card_paths[client_id]
                node.problem(f"client {client_id!r} already has a rate card: {earlier}", "client")
                client_id = None
            else:
                self.rate_card_paths[client_id] = node.path
        else:
            client_id = None
        currency = node.get("currency", CURRENCY)
        tiers = self.tiers(node)
        premiums = self.premiums(node)
        quality = self.quality(node)
        node.finish()
        if client_id is not None and currency is not None and tiers:
            self.rate_cards[client_id] = RateCard(client_id, currency, tuple(tiers), premiums, quality)

    def premiums(self, card: _Node) -> Premiums:
        expected = 'a table such as { overflow = "1.25", night = "1.5", night_from = "22:00", night_to = "06:00" }'
        node = card.table("premiums", expected, required=False)
        defaults = Premiums()
        if node is None:
            return defaults
        overflow = node.get_or("overflow", MULTIPLIER, defaults.overflow)
        night = node.get_or("night", MULTIPLIER, defaults.night)
        night_from = node.get_or("night_from", TIME, defaults.night_from)
        night_to = node.get_or("night_to", TIME, defaults.night_to)
        node.finish()
        return Premiums(overflow, night, night_from, night_to)

    def quality(self, card: _Node) -> QualityRule:
        expected = 'a table such as { share = "0.10", floor_score = 3 }'
        node = card.table("quality", expected, required=False)
        if node is None:
            return QualityRule()
        share = node.get_or("share", SHARE, Decimal(0))
        floor = node.get_or("floor_score", SCORE, 3)
        node.finish()
        return QualityRule(share, Decimal(floor))

    def tiers(self, card: _Node) -> list[PayTier]:
        expected = (
            "a non-empty list of tables such as "
            '[{ min_s = 0, max_s = 60, rate = "0.40" }, { min_s = 60, rate = "1.10" }]'
        )
        nodes = card.tables("tiers", expected)
        tiers: list[PayTier] = []
        # Where the next tier must start; None once that is unknown.
        next_start: int | None = 0
        for index, node in enumerate(nodes):
            min_s = node.get("min_s", SECONDS)
            max_s = node.opt("max_s", SECONDS)
            rate = node.get("rate", RATE)
            if not node.has("max_s") and index < len(nodes) - 1:
                node.problem("missing; only the last tier may be open-ended", "max_s")
            if min_s is not None and max_s is not None and max_s <= min_s:
                node.problem(f"expected more than min_s ({min_s}), got {max_s}", "max_s")
            if min_s is not None and next_start is not None and min_s != next_start:
                if index == 0:
                    node.problem(f"expected 0: the first tier starts at 0 s, got {min_s}", "min_s")
                else:
                    what = "gap after" if min_s > next_start else "overlaps"
                    node.problem(
                        f"{what} tiers[{index - 1}]: it ends at {next_start} s, this tier starts at "
                        f"{min_s} s; expected min_s = {next_start}",
                        "min_s",
                    )
            next_start = max_s
            node.finish()
            if min_s is not None and rate is not None:
                tiers.append(PayTier(min_s, max_s, rate))
        return tiers

    def queue(self, node: _Node) -> None:
        queue_id = self.declare(node, "id", ID, self.queue_paths, "id")
        client_id = node.get("client", CLIENT_REF)
        if client_id is not None and not self.client_ref(node.at("client"), client_id):
            client_id = None
        defaults = QueueConfig(id="-", client_id="-")
        strategy = node.get_or("strategy", STRATEGY, defaults.strategy)
        weight = node.get_or("weight", WEIGHT, defaults.weight)
        max_length = node.opt("max_length", COUNT)
        max_wait_s = node.opt("max_wait_s", SECONDS)
        fallback = self.fallback(node)
        join_unless = self.absences(node, "join_unless")
        leave_when = self.absences(node, "leave_when")
        tier_delay_s = node.get_or("tier_delay_s", SECONDS, int(defaults.tier_delay_s))
        ring_timeout_s = node.get_or("ring_timeout_s", SECONDS, int(defaults.ring_timeout_s))
        if node.has("ring_timeout_s") and ring_timeout_s == 0:
            node.problem("expected 1 or more seconds: an agent needs time to answer", "ring_timeout_s")
        announcements = self.announcements(node)
        order = node.items(
            "agent_order", AGENT_REF, "a non-empty list of agent logins such as ['alice', 'bob']", required=False
        )
        for path, login in order:
            if login not in self.agent_serves:
                self.report.add(path, f"unknown agent {login!r}")
            elif client_id is not None and client_id not in self.agent_serves[login]:
                self.report.add(path, f"agent {login!r} does not serve client {client_id!r}")
        node.finish()
        if queue_id is None or client_id is None:
            return
        self.queues[queue_id] = QueueConfig(
            id=queue_id,
            client_id=client_id,
            strategy=strategy,
            weight=weight,
            max_length=max_length,
            max_wait_s=None if max_wait_s is None else float(max_wait_s),
            fallback=fallback,
            join_unless=join_unless,
            leave_when=leave_when,
            tier_delay_s=float(tier_delay_s),
            ring_timeout_s=float(ring_timeout_s),
            announcements=announcements,
            agent_order=tuple(login for _, login in order),
        )

    def fallback(self, queue: _Node) -> Fallback:
        expected = (
            'a table such as { kind = "queue", target = "acme-overflow" } or '
            '{ kind = "hangup", message = "We are closed." }'
        )
        node = queue.table("fallback", expected, required=False)
        if node is None:
            return Fallback()
        kind = node.get("kind", FALLBACK_KIND)
        target = node.opt("target", TEXT)
        message = node.opt("message", TEXT)
        if kind in (FallbackKind.QUEUE, FallbackKind.NUMBER) and not node.has("target"):
            node.problem(f"missing; a {kind.value} fallback needs a target", "target")
        if kind is FallbackKind.QUEUE and target is not None:
            if target == queue.peek_str("id"):
                node.problem("a queue can't fall back to itself", "target")
            else:
                self.queue_refs.append((node.at("target"), target))
        if kind is FallbackKind.NUMBER and target is not None and not re.fullmatch(r"\+?[0-9]{1,32}", target):
            node.problem(f"expected a number as a string of digits such as '+33140000000', got {target!r}", "target")
        node.finish()
        return Fallback(kind or FallbackKind.HANGUP, target, message)

    def absences(self, queue: _Node, key: str) -> frozenset[Absence]:
        expected = f"a list of conditions, each one of: {', '.join(a.value for a in Absence)}"
        return frozenset(a for _, a in queue.items(key, ABSENCE, expected, required=False, non_empty=False))

    def announcements(self, queue: _Node) -> Announcements:
        expected = 'a table such as { position_every_s = 30, agent_whisper = "Acme" }'
        node = queue.table("announcements", expected, required=False)
        defaults = Announcements()
        if node is None:
            return defaults
        # A queue given announcements says the caller's position unless told not to.
        position = node.get_or("position", BOOLEAN, True)
        position_every_s = node.opt("position_every_s", SECONDS)
        periodic_message = node.opt("periodic_message", TEXT)
        periodic_every_s = node.opt("periodic_every_s", SECONDS)
        whisper = node.opt("agent_whisper", TEXT)
        if node.has("periodic_message") != node.has("periodic_every_s"):
            node.problem("periodic_message and periodic_every_s go together")
        for key, value in (("position_every_s", position_every_s), ("periodic_every_s", periodic_every_s)):
            if value == 0:
                node.problem("expected 1 or more seconds; leave it out for never", key)
        node.finish()
        return Announcements(
            position=position,
            position_every_s=float(position_every_s) if position_every_s else None,
            periodic_message=periodic_message,
            periodic_every_s=float(periodic_every_s) if periodic_every_s else None,
            agent_whisper=whisper,
        )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes" if moment.second == moment.microsecond == 0 else "auto")
