"""Pinning a UDP socket this process owns to one peer, through the kernel: loopback sockets only."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from telephony.rtp_strict_source import MediaPin, PinError, Pinner, connected_peer, find_udp_socket


@pytest.fixture
def media() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(1.0)
    yield sock
    sock.close()


def peer(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


def test_the_socket_is_found_by_its_port(media: socket.socket) -> None:
    assert find_udp_socket(media.getsockname()[1]) == media.fileno()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", 0))
        assert find_udp_socket(tcp.getsockname()[1]) is None


def test_a_pinned_socket_hears_its_peer_only_and_still_sends_where_it_is_told(media: socket.socket) -> None:
    caller, stranger = peer("127.0.0.1"), peer("127.0.0.99")
    port = media.getsockname()[1]
    pin = MediaPin(port, caller.getsockname())
    assert Pinner().apply(pin) is True
    assert connected_peer(media.fileno()) == caller.getsockname()
    assert Pinner().apply(pin) is False, "already pinned: nothing to do"

    stranger.sendto(b"stranger", ("127.0.0.1", port))
    caller.sendto(b"caller", ("127.0.0.1", port))
    assert media.recv(64) == b"caller", "the stranger's datagram never reached the socket"
    # pjmedia sends with sendto(): a connected UDP socket still takes an explicit destination.
    media.sendto(b"to the caller", caller.getsockname())
    assert caller.recv(64) == b"to the caller"
    caller.close()
    stranger.close()


def test_a_moved_peer_is_pinned_again(media: socket.socket) -> None:
    first, moved = peer("127.0.0.1"), peer("127.0.0.2")
    port = media.getsockname()[1]
    Pinner().apply(MediaPin(port, first.getsockname()))
    assert Pinner().apply(MediaPin(port, moved.getsockname())) is True
    first.sendto(b"old", ("127.0.0.1", port))
    moved.sendto(b"new", ("127.0.0.1", port))
    assert media.recv(64) == b"new"
    first.close()
    moved.close()


def test_a_socket_that_is_gone_is_an_error_that_names_the_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PinError, match=f"port {port}"):
        Pinner().apply(MediaPin(port, ("127.0.0.1", 9)))


def test_a_socket_re_created_on_the_same_port_is_found_and_pinned_again() -> None:
    # pjmedia re-creates a media socket after repeated receive errors: the remembered descriptor goes stale.
    caller = peer("127.0.0.1")
    pinner = Pinner()
    first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    first.bind(("127.0.0.1", 0))
    port = first.getsockname()[1]
    pin = MediaPin(port, caller.getsockname())
    assert pinner.apply(pin) is True
    assert pinner.apply(pin) is False
    first.close()
    filler = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes the old descriptor number
    again = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    again.bind(("127.0.0.1", port))
    assert pinner.apply(pin) is True
    assert connected_peer(again.fileno()) == caller.getsockname()
    assert connected_peer(filler.fileno()) is None
    for sock in (caller, filler, again):
        sock.close()


def test_an_ipv6_socket_is_found_and_pinned_too() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    with (
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as media,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as caller,
    ):
        try:
            media.bind(("::1", 0))
            caller.bind(("::1", 0))
        except OSError:
            pytest.skip("no ::1 on this machine")
        assert find_udp_socket(media.getsockname()[1]) == media.fileno()
        assert Pinner().apply(MediaPin(media.getsockname()[1], ("::1", caller.getsockname()[1]))) is True
        assert connected_peer(media.fileno()) == ("::1", caller.getsockname()[1])
