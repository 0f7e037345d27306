"""Free loopback ports for test peers (never 5060: the bridge may own it).

The kernel picks the ports (bind to port 0), so two tests running at once do
not collide; a port is only "probably" free between this check and its use,
which is good enough on a test machine.
"""

from __future__ import annotations

import random
import socket
from contextlib import ExitStack
from pathlib import Path

LOOPBACK = "127.0.0.1"
RESERVED = frozenset({5060, 5061, 5070, 5080})  # SIP defaults that a bridge under test may bind
_RANGE_LOW = 10000


def _ephemeral_low() -> int:
    """Start of the kernel's ephemeral port range (ports handed out for bind(0))."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return low


def free_udp_port(host: str = LOOPBACK) -> int:
    """A UDP port on ``host`` that nothing is bound to right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in RESERVED:
            return port


def free_tcp_port(host: str = LOOPBACK) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in RESERVED:
            return port


def free_port_range(n: int, *, host: str = LOOPBACK, even: bool = True, attempts: int = 200) -> int:
    """First port of ``n`` consecutive free UDP ports (even first port by default: RTP convention).

    Ranges are drawn below the kernel's ephemeral range (10000..32767 by default),
    so ports that peers later bind with port 0 never land inside them. All ``n``
    ports are bound at once to check, then released.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    high = _ephemeral_low()
    if high - _RANGE_LOW < n + 100:
        high = 65000  # unusual kernel setting: fall back to the whole unprivileged range
    rng = random.Random()
    for _ in range(attempts):
        start = rng.randrange(_RANGE_LOW, high - n)
        if even:
            start &= ~1
        if any(p in RESERVED for p in range(start, start + n)):
            continue
        try:
            with ExitStack() as stack:
                for port in range(start, start + n):
                    s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                    s.bind((host, port))
        except OSError:
            continue
        return start
    raise RuntimeError(f"no {n} consecutive free UDP ports found on {host}")
