"""RTP bleed: may a stranger who sends RTP to a call's port take the audio meant for the caller?

A caller (raw SIP from this test) is answered and hears hold music on the
RTP port its SDP declared; it sends no RTP itself (silence suppression, or
a one-way stream), the case RTP-bleed attacks aim at. A second socket on
another loopback address then sends well-formed RTP to the bridge's port.
The music must keep going to the declared port, and none to the stranger;
the stranger's packets must not even reach pjmedia (the port answers it as
a closed one). A re-INVITE that moves the caller's media must move the
music with it, and the old address must then be a stranger too.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from front.caller import Call, Caller
from front.sip import SDP, SipMessage
from harness.bridge import BridgeProcess
from harness.tenants import E2E_TENANT

pytestmark = [pytest.mark.peers]

STRANGER = "127.0.0.99"


def udp(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def drain(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            sock.recv(2048)
        except BlockingIOError:
            return count
        except ConnectionRefusedError:
            continue
        count += 1


@dataclass
class Injection:
    sent: int = 0
    # Audio that came back to the stranger's socket.
    received: int = 0
    # ICMP port-unreachable answers: the bridge's kernel had no socket willing to take the packet.
    refused: int = 0


def inject(sock: socket.socket, target: tuple[str, int], seconds: float) -> Injection:
    """Well-formed PCMU RTP from a stranger's socket (connected, so ICMP answers are reported),
    50 packets a second as a phone sends them."""
    sock.connect(target)
    ssrc = int.from_bytes(os.urandom(4), "big")
    result = Injection()
    for n in range(int(seconds * 50)):
        header = struct.pack("!BBHII", 0x80, 0, n & 0xFFFF, n * 160, ssrc)
        try:
            sock.send(header + b"\xff" * 160)
            result.sent += 1
        except ConnectionRefusedError:
            result.refused += 1
        time.sleep(0.02)
        while True:
            try:
                sock.recv(2048)
                result.received += 1
            except BlockingIOError:
                break
            except ConnectionRefusedError:
                result.refused += 1
    return result


def offer(port: int, host: str = "127.0.0.1", version: int = 1) -> str:
    return (
        SDP.replace("m=audio 40000", f"m=audio {port}")
        .replace("c=IN IP4 127.0.0.1", f"c=IN IP4 {host}")
        .replace("o=fake 1 1", f"o=fake 1 {version}")
    )


def media_of(answer: SipMessage) -> tuple[str, int]:
    media = re.search(r"^m=audio (\d+)", answer.body, re.MULTILINE)
    address = re.search(r"^c=IN IP4 (\S+)", answer.body, re.MULTILINE)
    assert media is not None
    assert address is not None
    return address.group(1), int(media.group(1))


@asynccontextmanager
async def answered_call(tmp_path: Path, heard: socket.socket) -> AsyncIterator[tuple[Caller, Call, tuple[str, int]]]:
    async with BridgeProcess.configured(tmp_path, tenant=E2E_TENANT) as bridge:
        await bridge.wait_ready()
        async with Caller(("127.0.0.1", bridge.sip_port)) as caller:
            call = caller.new_invite(user="1001")
            call.invite.body = offer(heard.getsockname()[1])
            caller.send(call.invite)
            call.final = await caller.final_reply(call, "INVITE", 10.0)
            caller.ack(call)
            assert call.final.status == 200
            yield caller, call, media_of(call.final)


async def test_rtp_from_a_stranger_does_not_take_the_caller_s_audio(tmp_path: Path) -> None:
    heard = udp("127.0.0.1")
    stranger = udp(STRANGER)
    async with answered_call(tmp_path, heard) as (_, _, bridge_rtp):
        await asyncio.sleep(1.5)
        before = drain(heard)
        # The stranger's packets, meanwhile whatever the bridge sends: to the caller or to it.
        injection = await asyncio.to_thread(inject, stranger, bridge_rtp, 3.0)
        await asyncio.sleep(0.5)
        during_caller = drain(heard)
        injection.received += drain(stranger)
    heard.close()
    stranger.close()
    print(
        f"\nbefore: the caller got {before} packets in 1.5 s; the stranger sent {injection.sent} to {bridge_rtp},"
        f" {injection.refused} answered port-unreachable; then the caller got {during_caller}"
        f" and the stranger {injection.received}"
    )
    assert before > 50, "the hold music reached the caller's declared port"
    assert injection.received == 0, "the bridge sent the call's audio to a stranger (RTP bleed)"
    assert during_caller > 100, "the caller kept its audio"
    # Refused by the kernel before pjmedia read them: a stranger can't put its audio into the call either.
    assert injection.refused > 0.8 * injection.sent


async def test_a_reinvite_moves_the_media_and_the_old_address_becomes_a_stranger(tmp_path: Path) -> None:
    first = udp("127.0.0.1")
    moved = udp("127.0.0.2")
    async with answered_call(tmp_path, first) as (caller, call, bridge_rtp):
        await asyncio.sleep(1.0)
        assert drain(first) > 30, "the music reached the first declared port"
        reply = await caller.reinvite(call, offer(moved.getsockname()[1], "127.0.0.2", version=2))
        assert reply.status == 200
        await asyncio.sleep(1.0)
        drain(first)
        drain(moved)
        # Now the first address is a stranger: it sends RTP, as a caller that moved away might.
        injection = await asyncio.to_thread(inject, first, bridge_rtp, 2.0)
        at_new, at_old = drain(moved), injection.received + drain(first)
    first.close()
    moved.close()
    print(f"\nafter the re-INVITE: the new port got {at_new} packets in 2 s, the old one {at_old}")
    assert at_new > 70, "the music followed the caller to the address its re-INVITE declared"
    assert at_old == 0, "nothing went back to the address the caller left"
    assert injection.refused > 0.8 * injection.sent
