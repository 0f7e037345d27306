"""Strict RTP source: a call's RTP and RTCP sockets take datagrams only from the peer its SDP declared.

pjmedia sends a call's RTP to whoever has been sending it RTP once the declared
peer goes quiet (the RTP-bleed class of bugs), and pjproject can only turn that
off when it is compiled (``PJMEDIA_TRANSPORT_SWITCH_REMOTE_ADDR``). Connecting
the call's UDP sockets to the declared addresses makes the kernel drop every
datagram from elsewhere before pjmedia reads it: pjmedia never sees a stranger,
so there is nothing to switch to, and a stranger can neither take the call's
audio nor put its own into the call. pjmedia keeps sending with ``sendto()``,
which a connected UDP socket accepts.

The sockets belong to pjmedia; they are found by their local port and connected
through a duplicate descriptor (connecting acts on the socket, not on the
descriptor). Everything here is called on the pjsua thread, which is also the
only thread that creates and closes those sockets.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

Address = tuple[str, int]

_FD_DIR = Path("/proc/self/fd")
_NET_DIR = Path("/proc/self/net")


class PinError(Exception):
    """A call's media socket could not be pinned to its declared peer."""


def parse_address(text: str) -> Address | None:
    """``"192.0.2.1:4000"`` or ``"[2001:db8::1]:4000"`` as pjsua prints them; None when there is no peer
    (an unspecified address or port: a call on hold the RFC 2543 way, or media not negotiated)."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit():
        return None
    host = host.removeprefix("[").removesuffix("]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    port = int(port_text)
    if ip.is_unspecified or not 0 < port < 65536:
        return None
    return str(ip), port


@dataclass(frozen=True)
class _Seen:
    port: int
    peer: Address | None


def _inspect(fd: int) -> _Seen | None:
    """The UDP socket behind ``fd``: its local port and the peer it is connected to, if any."""
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            if sock.type != socket.SOCK_DGRAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
                return None
            port = int(sock.getsockname()[1])
            try:
                host, peer_port = sock.getpeername()[:2]
            except OSError:
                return _Seen(port, None)
            return _Seen(port, (str(ipaddress.ip_address(host)), int(peer_port)))
    except OSError:
        return None


def _udp_inodes(ports: set[int]) -> dict[int, int]:
    """Inode to port, for the namespace's UDP sockets bound to one of ``ports`` (/proc/net/udp and udp6)."""
    inodes = {}
    for table in ("udp", "udp6"):
        try:
            lines = (_NET_DIR / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and (port := int(fields[1].rpartition(":")[2], 16)) in ports:
                inodes[int(fields[9])] = port
    return inodes


def find_udp_sockets(ports: set[int]) -> dict[int, int]:
    """Port to descriptor, for this process's UDP sockets bound to one of ``ports``.

    The kernel's socket table names each socket's inode, and a descriptor's
    fstat() gives its inode: one pass over the descriptors, without opening
    any of them (asking every socket its port costs ten times as much).
    """
    inodes = _udp_inodes(ports)
    found: dict[int, int] = {}
    if not inodes:
        return found
    for name in os.listdir(_FD_DIR):
        fd = int(name)
        try:
            port = inodes.get(os.fstat(fd).st_ino)
        except OSError:
            continue  # closed since the listing
        if port is not None:
            seen = _inspect(fd)
            if seen is not None and seen.port == port:
                found[port] = fd
    return found


def find_udp_socket(port: int) -> int | None:
    """The descriptor of this process's UDP socket bound to ``port``, if there is one."""
    return find_udp_sockets({port}).get(port)


def connected_peer(fd: int) -> Address | None:
    seen = _inspect(fd)
    return None if seen is None else seen.peer


def connect(fd: int, peer: Address) -> None:
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.connect(peer)
    except OSError as exc:
        raise PinError(f"connecting the socket of fd {fd} to {peer[0]}:{peer[1]}: {exc}") from exc


@dataclass(frozen=True)
class MediaPin:
    """One media socket of a call (RTP, or RTCP on its own port) and the peer it may hear."""

    local_port: int
    peer: Address


def pins_for(local_rtp: str, remote_rtp: str, local_rtcp: str, remote_rtcp: str) -> list[MediaPin]:
    """What to pin for one negotiated audio stream, from pjsua's printed addresses.

    Nothing when the SDP declares no peer. RTCP multiplexed on the RTP port
    (RFC 5761) shares the RTP socket and pin.
    """
    local = parse_address(local_rtp)
    peer = parse_address(remote_rtp)
    if local is None or peer is None:
        return []
    pins = [MediaPin(local[1], peer)]
    local_c = parse_address(local_rtcp)
    peer_c = parse_address(remote_rtcp)
    if local_c is not None and peer_c is not None and local_c[1] != local[1]:
        pins.append(MediaPin(local_c[1], peer_c))
    return pins


class Pinner:
    """Pins media sockets, remembering which descriptor holds which port.

    Finding a socket means reading every descriptor of the process; the
    remembered one is checked instead (is it still a UDP socket on that
    port?), so the once-a-second check costs one system call per socket.
    """

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}

    def locate(self, pins: list[MediaPin]) -> None:
        """Find the sockets of pins not yet located, in one pass (a call's RTP and RTCP together)."""
        missing = {pin.local_port for pin in pins if pin.local_port not in self._fds}
        if missing:
            self._fds.update(find_udp_sockets(missing))

    def apply(self, pin: MediaPin) -> bool:
        """Connect the socket to its peer unless it already is; True when this call connected it.

        Idempotent, so it is also the check that pjmedia has not replaced the
        socket (it re-creates one after repeated receive errors).
        """
        fd = self._fds.get(pin.local_port)
        seen = None if fd is None else _inspect(fd)
        if fd is None or seen is None or seen.port != pin.local_port:
            fd = find_udp_socket(pin.local_port)
            if fd is None:
                self._fds.pop(pin.local_port, None)
                raise PinError(f"no UDP socket of this process is bound to port {pin.local_port}")
            self._fds[pin.local_port] = fd
            seen = _inspect(fd)
        if seen is not None and seen.peer == pin.peer:
            return False
        connect(fd, pin.peer)
        return True

    def forget(self, pins: list[MediaPin]) -> None:
        for pin in pins:
            self._fds.pop(pin.local_port, None)
