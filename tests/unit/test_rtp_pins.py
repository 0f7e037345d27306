"""What a call's media sockets are pinned to, from the addresses pjsua prints. Pure: no sockets."""

from __future__ import annotations

import pytest

from telephony.rtp_strict_source import MediaPin, parse_address, pins_for


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1:4000", ("192.0.2.1", 4000)),
        ("[2001:db8::1]:4000", ("2001:db8::1", 4000)),
        (" 127.0.0.1:65535 ", ("127.0.0.1", 65535)),
        # No peer: on hold the RFC 2543 way, or nothing negotiated.
        ("0.0.0.0:4000", None),
        ("[::]:4000", None),
        ("192.0.2.1:0", None),
        ("", None),
        ("192.0.2.1", None),
        ("example.com:4000", None),
        ("192.0.2.1:70000", None),
        ("192.0.2.1:-1", None),
    ],
)
def test_addresses_as_pjsua_prints_them(text: str, expected: tuple[str, int] | None) -> None:
    assert parse_address(text) == expected


def test_rtp_and_rtcp_on_their_own_ports_are_both_pinned() -> None:
    assert pins_for("127.0.0.1:4000", "192.0.2.1:30000", "127.0.0.1:4001", "192.0.2.1:30001") == [
        MediaPin(4000, ("192.0.2.1", 30000)),
        MediaPin(4001, ("192.0.2.1", 30001)),
    ]


def test_rtcp_multiplexed_on_the_rtp_port_shares_its_pin() -> None:
    assert pins_for("127.0.0.1:4000", "192.0.2.1:30000", "127.0.0.1:4000", "192.0.2.1:30000") == [
        MediaPin(4000, ("192.0.2.1", 30000))
    ]


def test_no_declared_peer_pins_nothing() -> None:
    assert pins_for("127.0.0.1:4000", "0.0.0.0:30000", "127.0.0.1:4001", "0.0.0.0:30001") == []


def test_the_local_port_counts_not_the_published_address() -> None:
    # pjsua prints the public address; the socket is found by its port.
    assert pins_for("203.0.113.9:4000", "192.0.2.1:30000", "", "")[0].local_port == 4000
