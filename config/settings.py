"""Process settings from HOTLINE_* environment variables.

Every variable has a default that runs the embedded demo on loopback. A bad
value is reported with the variable's name, what was expected and what was
given; all bad values are reported at once.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from config.errors import ConfigError

LogFormat = Literal["console", "json"]
RtcCodec = Literal["PCMU", "opus"]
KamailioMode = Literal["auto", "external"]
SipFrontMode = Literal["auto", "always", "never"]

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None
    # Keys of this bridge's live state in Redis start with this: several
    # bridges (tenants, test runs) can share one Redis.
    redis_prefix: str
    sip_host: str
    sip_port: int
    # The address peers reach us at (SDP, Contact); differs from sip_host when binding 0.0.0.0.
    public_host: str
    http_host: str
    http_port: int
    log_format: LogFormat
    log_level: str
    var_dir: Path
    tenant_file: Path | None
    workers: int
    worker_capacity: int
    # Behind the SIP front (see sip_fronted), worker k listens on worker_base_port + k.
    worker_base_port: int
    kamailio: KamailioMode
    kamailio_binary: str
    # None: the template shipped under deploy/kamailio/.
    kamailio_template: Path | None
    # RTP ports: worker k takes [rtp_port_min + k * rtp_ports_per_worker, ...).
    rtp_port_min: int
    rtp_ports_per_worker: int
    drain_timeout_s: float
    pjsip_log_level: int
    # How long a worker waits for the control process to decide on an INVITE.
    decision_timeout_s: float
    # WebRTC for the agents' browsers: STUN/TURN servers handed to both ends
    # (empty: host candidates only, fine on a LAN or loopback), and the codec.
    ice_servers: tuple[Mapping[str, Any], ...]
    rtc_codec: RtcCodec
    # Addresses the workers offer browsers as ICE host candidates; empty: the public host.
    rtc_host_addresses: tuple[str, ...]
    # Seconds an offer rings before it goes to the next agent; None: each queue's own `ring_timeout_s`.
    ring_timeout_s: float | None
    # Seconds an agent whose page dropped mid-call has to come back.
    agent_grace_s: float
    # The SIP front's flood guard (Kamailio pike): more than pike_requests from one source IP in
    # pike_window_s bans it for pike_ban_s; trunks and the workers are never limited.
    pike_requests: int = 14
    pike_window_s: int = 2
    pike_ban_s: int = 300
    # Each call's RTP/RTCP sockets take packets only from the address its SDP declared (RTP-bleed
    # defence, telephony/rtp_strict_source.py). Off only for peers that send from elsewhere than they declare.
    strict_rtp_source: bool = True
    # Whether Kamailio fronts the workers: "always", "never" (one worker only), or "auto" (see sip_fronted).
    sip_front: SipFrontMode = "auto"
    # HTTPS on the web port: a PEM certificate (chain) and its unencrypted PEM key; None: plain HTTP.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # A TLS-terminating reverse proxy is in front: cookies are Secure and its
    # X-Forwarded-Proto / X-Forwarded-For are believed (never otherwise).
    behind_tls_proxy: bool = False
    # Browser sessions end this long after sign-in, or after this long without a request or an open page.
    session_lifetime_s: float = 12 * 3600.0
    session_idle_s: float = 3600.0
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def cache_dir(self) -> Path:
        return self.var_dir / "cache"

    @property
    def run_dir(self) -> Path:
        return self.var_dir / "run"


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.errors: list[str] = []

    def get(self, name: str, default: T, parse: Callable[[str], T], expected: str) -> T:
        raw = self.env.get(name)
        if raw is None or raw == "":
            return default
        try:
            return parse(raw)
        except ValueError:
            self.errors.append(f"{name}: expected {expected}, got {raw!r}")
            return default


def _int(raw: str) -> int:
    # int() also takes " 80", "1_000" and non-ASCII digits; settings don't.
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError(raw)
    return int(raw)


def _port(raw: str) -> int:
    value = _int(raw)
    if not 1 <= value <= 65535:
        raise ValueError(raw)
    return value


def _positive_int(raw: str) -> int:
    value = _int(raw)
    if value < 1:
        raise ValueError(raw)
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(raw)
    return value


def _address_list(raw: str) -> tuple[str, ...]:
    return tuple(_host(part.strip()) for part in raw.split(",") if part.strip())


def _ice_servers(raw: str) -> tuple[Mapping[str, Any], ...]:
    servers = json.loads(raw)
    if not isinstance(servers, list):
        raise ValueError(raw)
    for server in servers:
        urls = server.get("urls") if isinstance(server, dict) else None
        urls_list = [urls] if isinstance(urls, str) else urls
        if not isinstance(urls_list, list) or not urls_list:
            raise ValueError(raw)
        if not all(isinstance(u, str) and u.split(":", 1)[0] in ("stun", "stuns", "turn", "turns") for u in urls_list):
            raise ValueError(raw)
    return tuple(servers)


def _redis_prefix(raw: str) -> str:
    if not (1 <= len(raw) <= 64 and raw.isprintable() and " " not in raw):
        raise ValueError(raw)
    return raw


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(raw)
    return raw


def _host(raw: str) -> str:
    # Hosts are addresses: name resolution at bind time fails late and vaguely.
    ipaddress.ip_address(raw)
    return raw


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(raw)
        return raw

    return parse


def _database_url(raw: str) -> str:
    if "://" not in raw:
        raise ValueError(raw)
    return raw


def _optional_path(base: Path, raw: str) -> Path | None:
    return (base / raw) if raw else None


def _flag(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _tls_problems(cert: Path | None, key: Path | None) -> list[str]:
    """What is wrong with the HTTPS pair, if anything, checked now rather than when the web starts."""
    if cert is None and key is None:
        return []
    if cert is None or key is None:
        missing, given = (
            ("HOTLINE_TLS_CERT", "HOTLINE_TLS_KEY") if cert is None else ("HOTLINE_TLS_KEY", "HOTLINE_TLS_CERT")
        )
        return [f"{missing}: required with {given}: HTTPS needs both the certificate and its key"]
    problems = []
    for name, path in (("HOTLINE_TLS_CERT", cert), ("HOTLINE_TLS_KEY", key)):
        try:
            with path.open("rb") as file:
                file.read(1)
        except FileNotFoundError:
            problems.append(f"{name}: no such file: {path}")
        except IsADirectoryError:
            problems.append(f"{name}: expected a PEM file, got a directory: {path}")
        except OSError as exc:
            problems.append(f"{name}: cannot read {path}: {exc.strerror or exc}")
    if problems:
        return problems
    try:
        tls_context(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        return [f"HOTLINE_TLS_CERT, HOTLINE_TLS_KEY: not a PEM certificate and its unencrypted key: {exc}"]
    return []


def sip_fronted(settings: Settings) -> bool:
    """Whether Kamailio is the public SIP front, the workers behind it on worker_base_port + k.

    "auto" fronts whenever the SIP edge needs what only the front has: several
    workers to spread calls over, or an address off this machine (0.0.0.0, ::
    or a real interface), where INVITE floods arrive and pike must ban them
    before pjsua sees them. A lone worker on loopback (the demo, most tests)
    binds the SIP address itself.
    """
    if settings.sip_front == "always":
        return True
    if settings.sip_front == "never":
        return False
    return settings.workers > 1 or not ipaddress.ip_address(settings.sip_host).is_loopback


def sip_front_problems(settings: Settings) -> list[str]:
    """What is wrong with HOTLINE_SIP_FRONT for these settings (checked again at start: --workers overrides)."""
    if settings.sip_front == "never" and settings.workers > 1:
        return [
            f"HOTLINE_SIP_FRONT: 'never' needs exactly one worker, got {settings.workers}: "
            "several workers share the SIP address through the Kamailio front; use auto or always"
        ]
    return []


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The web port's server context: TLS 1.2 at least, Python's default (modern) ciphers."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # An encrypted key would make OpenSSL prompt on the terminal; refuse it instead.
    context.load_cert_chain(cert, key, password=lambda: b"")
    return context


def load_settings(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Read settings from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    base = cwd or Path.cwd()
    r = _Reader(env)
    var_dir = Path(r.get("HOTLINE_VAR_DIR", str(base / "var"), str, "a directory path"))
    if not var_dir.is_absolute():
        var_dir = base / var_dir
    sip_port = r.get("HOTLINE_SIP_PORT", 5060, _port, "a port number 1-65535")
    tenant_raw = r.get("HOTLINE_TENANT_FILE", "", str, "a file path")
    settings = Settings(
        database_url=r.get(
            "HOTLINE_DATABASE_URL",
            f"sqlite:///{var_dir / 'hotline.db'}",
            _database_url,
            "a database URL such as sqlite:///var/hotline.db or postgresql://user@host/db",
        ),
        redis_url=r.get("HOTLINE_REDIS_URL", None, _redis_url, "a redis://, rediss:// or unix:// URL"),
        redis_prefix=r.get(
            "HOTLINE_REDIS_PREFIX", "hotline:", _redis_prefix, "a key prefix of 1-64 printable characters"
        ),
        sip_host=r.get("HOTLINE_SIP_HOST", "127.0.0.1", _host, "an IP address"),
        sip_port=sip_port,
        public_host=r.get("HOTLINE_PUBLIC_HOST", "", _host, "an IP address"),
        http_host=r.get("HOTLINE_HTTP_HOST", "127.0.0.1", _host, "an IP address"),
        http_port=r.get("HOTLINE_HTTP_PORT", 8080, _port, "a port number 1-65535"),
        log_format=cast(
            LogFormat, r.get("HOTLINE_LOG_FORMAT", "console", _choice("console", "json"), "console or json")
        ),
        log_level=r.get(
            "HOTLINE_LOG_LEVEL",
            "info",
            _choice("debug", "info", "warning", "error"),
            "debug, info, warning or error",
        ),
        var_dir=var_dir,
        tenant_file=_optional_path(base, tenant_raw),
        workers=r.get("HOTLINE_WORKERS", 1, _positive_int, "a whole number of workers, at least 1"),
        worker_capacity=r.get("HOTLINE_WORKER_CAPACITY", 4, _positive_int, "a whole number of calls, at least 1"),
        worker_base_port=r.get("HOTLINE_WORKER_BASE_PORT", sip_port + 1, _port, "a port number 1-65535"),
        kamailio=cast(KamailioMode, r.get("HOTLINE_KAMAILIO", "auto", _choice("auto", "external"), "auto or external")),
        kamailio_binary=r.get("HOTLINE_KAMAILIO_BIN", "kamailio", str, "a program name or path"),
        kamailio_template=_optional_path(base, r.get("HOTLINE_KAMAILIO_TEMPLATE", "", str, "a file path")),
        sip_front=cast(
            SipFrontMode,
            r.get("HOTLINE_SIP_FRONT", "auto", _choice("auto", "always", "never"), "auto, always or never"),
        ),
        pike_requests=r.get("HOTLINE_PIKE_REQUESTS", 14, _positive_int, "a whole number of requests, at least 1"),
        pike_window_s=r.get("HOTLINE_PIKE_WINDOW_S", 2, _positive_int, "a whole number of seconds, at least 1"),
        pike_ban_s=r.get("HOTLINE_PIKE_BAN_S", 300, _positive_int, "a whole number of seconds, at least 1"),
        strict_rtp_source=r.get("HOTLINE_RTP_STRICT_SOURCE", True, _flag, "true or false"),
        rtp_port_min=r.get("HOTLINE_RTP_PORT_MIN", 20000, _port, "a port number 1-65535"),
        rtp_ports_per_worker=r.get("HOTLINE_RTP_PORTS_PER_WORKER", 200, _positive_int, "a whole number of ports"),
        drain_timeout_s=r.get("HOTLINE_DRAIN_TIMEOUT", 30.0, _positive_float, "a number of seconds"),
        pjsip_log_level=r.get(
            "HOTLINE_PJSIP_LOG_LEVEL",
            2,
            lambda s: int(_choice("0", "1", "2", "3", "4", "5", "6")(s)),
            "a pjsip log level 0-6",
        ),
        decision_timeout_s=r.get("HOTLINE_DECISION_TIMEOUT", 3.0, _positive_float, "a number of seconds"),
        ice_servers=r.get(
            "HOTLINE_ICE_SERVERS",
            (),
            _ice_servers,
            'a JSON list such as [{"urls": "turn:turn.example.com:3478", "username": "u", "credential": "p"}]',
        ),
        rtc_codec=cast(RtcCodec, r.get("HOTLINE_RTC_CODEC", "PCMU", _choice("PCMU", "opus"), "PCMU or opus")),
        rtc_host_addresses=r.get(
            "HOTLINE_RTC_HOST_ADDRESSES", (), _address_list, "comma-separated IP addresses such as 192.0.2.10,::1"
        ),
        ring_timeout_s=r.get("HOTLINE_RING_TIMEOUT", None, _positive_float, "a number of seconds"),
        agent_grace_s=r.get("HOTLINE_AGENT_GRACE", 10.0, _positive_float, "a number of seconds"),
        tls_cert=_optional_path(base, r.get("HOTLINE_TLS_CERT", "", str, "a file path")),
        tls_key=_optional_path(base, r.get("HOTLINE_TLS_KEY", "", str, "a file path")),
        behind_tls_proxy=r.get("HOTLINE_BEHIND_TLS_PROXY", False, _flag, "true or false"),
        session_lifetime_s=r.get("HOTLINE_SESSION_LIFETIME", 12 * 3600.0, _positive_float, "a number of seconds"),
        session_idle_s=r.get("HOTLINE_SESSION_IDLE", 3600.0, _positive_float, "a number of seconds"),
    )
    r.errors.extend(_tls_problems(settings.tls_cert, settings.tls_key))
    if not settings.public_host:
        if ipaddress.ip_address(settings.sip_host).is_unspecified:
            r.errors.append(
                f"HOTLINE_PUBLIC_HOST: required when HOTLINE_SIP_HOST is {settings.sip_host!r}: "
                "it is the address callers' media must reach"
            )
        settings = replace(settings, public_host=settings.sip_host)
    r.errors.extend(sip_front_problems(settings))
    last_worker_port = settings.worker_base_port + settings.workers - 1
    if sip_fronted(settings) and last_worker_port > 65535:
        r.errors.append(
            f"HOTLINE_WORKER_BASE_PORT: {settings.workers} workers from port {settings.worker_base_port} "
            f"would need port {last_worker_port}; expected a base port up to {65536 - settings.workers}"
        )
    last_rtp_port = settings.rtp_port_min + settings.workers * settings.rtp_ports_per_worker - 1
    if last_rtp_port > 65535:
        r.errors.append(
            f"HOTLINE_RTP_PORT_MIN: {settings.workers} workers x {settings.rtp_ports_per_worker} RTP ports "
            f"from {settings.rtp_port_min} would need port {last_rtp_port}"
        )
    if r.errors:
        raise ConfigError(r.errors)
    return settings
