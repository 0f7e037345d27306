"""The control/worker channel over a real socketpair, in one process."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from telephony.ipc import Body, Channel, ChannelClosed, ProtocolError, RemoteError, decode, encode


async def pair(
    on_request_a=None,
    on_request_b=None,  # type: ignore[no-untyped-def]
) -> tuple[Channel, Channel, list[tuple[str, Body]], list[tuple[str, Body]]]:
    sa, sb = socket.socketpair()
    events_a: list[tuple[str, Body]] = []
    events_b: list[tuple[str, Body]] = []

    async def refuse(kind: str, body: Body) -> Body:
        raise ValueError(f"no handler for {kind}")

    ra, wa = await asyncio.open_unix_connection(sock=sa)
    rb, wb = await asyncio.open_unix_connection(sock=sb)
    a = Channel(ra, wa, on_request=on_request_a or refuse, on_event=lambda k, b: events_a.append((k, b)), name="a")
    b = Channel(rb, wb, on_request=on_request_b or refuse, on_event=lambda k, b: events_b.append((k, b)), name="b")
    return a, b, events_a, events_b


async def test_request_reply_and_ordered_events() -> None:
    async def echo(kind: str, body: Body) -> Body:
        await asyncio.sleep(0.01)
        return {"kind": kind, **body}

    a, b, _, events_b = await pair(on_request_b=echo)
    tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    for i in range(100):
        a.notify("leg", {"n": i})
    reply = await a.request("invite", {"leg": 7}, timeout=2)
    assert reply == {"kind": "invite", "leg": 7}
    assert [body["n"] for _, body in events_b] == list(range(100))
    await a.close()
    await asyncio.gather(*tasks)


async def test_remote_handler_error_comes_back_as_remote_error() -> None:
    a, b, _, _ = await pair()
    tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    with pytest.raises(RemoteError, match="no handler for stats"):
        await a.request("stats", {}, timeout=2)
    await a.close()
    await asyncio.gather(*tasks)


async def test_peer_death_fails_pending_requests_at_once() -> None:
    async def never(kind: str, body: Body) -> Body:
        await asyncio.sleep(3600)
        return {}

    a, b, _, _ = await pair(on_request_b=never)
    tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    pending = asyncio.create_task(a.request("invite", {}, timeout=30))
    await asyncio.sleep(0.05)
    await b.close()
    with pytest.raises(ChannelClosed):
        await asyncio.wait_for(pending, 2)
    await asyncio.gather(*tasks)
    with pytest.raises(ChannelClosed):
        a.notify("leg", {})


async def test_oversized_frame_is_a_protocol_error() -> None:
    sa, sb = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=sa)
    channel = Channel(reader, writer, on_request=None, on_event=lambda k, b: None, name="x", max_frame=64)  # type: ignore[arg-type]
    sb.sendall(struct.pack(">I", 1000) + b"x" * 10)
    with pytest.raises(ProtocolError, match="exceeds the 64-byte limit"):
        await channel.run()
    sb.close()


def test_frame_codec_rejects_other_versions_and_garbage() -> None:
    frame = encode({"v": 1, "t": "evt", "k": "leg", "b": {"x": "é"}})
    assert decode(frame[4:]) == {"v": 1, "t": "evt", "k": "leg", "b": {"x": "é"}}
    with pytest.raises(ProtocolError):
        decode(b'{"v": 2, "t": "evt"}')
    with pytest.raises(ProtocolError):
        decode(b"\xff\xfe")
