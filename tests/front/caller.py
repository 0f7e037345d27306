"""A scriptable SIP caller (UAC) for the front tests, over UDP or TCP.

sipp carries the load; this carries the single calls whose every header the
test wants to see (503 + Retry-After, forged X-Hotline-Source, TCP source,
malformed requests, BYE from the worker side).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from front.sip import SDP, SipMessage, new_branch, new_tag, parse, response_to, tag_of, uri_of

Transport = Literal["udp", "tcp"]
_call_numbers = itertools.count(1)


@dataclass
class Call:
    call_id: str
    from_tag: str
    ruri: str
    invite: SipMessage
    final: SipMessage | None = None
    provisional: list[SipMessage] = field(default_factory=list)
    cseq: int = 1

    @property
    def to_header(self) -> str:
        return (self.final.header("To") if self.final else self.invite.header("To")) or ""

    @property
    def route_set(self) -> list[str]:
        assert self.final is not None
        return list(reversed(self.final.all("Record-Route")))

    @property
    def remote_target(self) -> str:
        assert self.final is not None
        return uri_of(self.final.header("Contact") or "")


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, sink: Callable[[SipMessage], None]) -> None:
        self.sink = sink

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sink(parse(data))


class Caller:
    def __init__(self, front: tuple[str, int], *, transport: Transport = "udp", host: str = "127.0.0.1") -> None:
        self.front = front
        self.transport = transport
        self.host = host
        self.port = 0
        self.incoming: list[SipMessage] = []
        self._inbox: asyncio.Queue[SipMessage] = asyncio.Queue()
        self._udp: asyncio.DatagramTransport | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Caller:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self._on_message), local_addr=(self.host, 0), remote_addr=self.front
            )
            self._udp = transport
            self.port = transport.get_extra_info("sockname")[1]
            return
        reader, writer = await asyncio.open_connection(*self.front, local_addr=(self.host, 0))
        self._writer = writer
        self.port = writer.get_extra_info("sockname")[1]
        self._reader_task = asyncio.create_task(self._read_tcp(reader))

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task

    async def _read_tcp(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await self._read_frames(reader)

    async def _read_frames(self, reader: asyncio.StreamReader) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            message = parse(head)
            length = int(message.header("Content-Length") or 0)
            body = await reader.readexactly(length) if length else b""
            self._on_message(parse(head + body))

    # ---- sending ---------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        if self._udp is not None:
            self._udp.sendto(data)
        elif self._writer is not None:
            self._writer.write(data)

    def send(self, message: SipMessage) -> None:
        self.send_raw(message.encode())

    def via(self, branch: str | None = None) -> str:
        return f"SIP/2.0/{self.transport.upper()} {self.host}:{self.port};branch={branch or new_branch()};rport"

    @property
    def contact(self) -> str:
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"<sip:caller@{self.host}:{self.port}{suffix}>"

    # ---- receiving -------------------------------------------------------

    def _on_message(self, message: SipMessage) -> None:
        if message.is_request:
            self.incoming.append(message)
            if message.method != "ACK":
                self.send(response_to(message, 200, "OK"))
        else:
            self._inbox.put_nowait(message)

    async def next_reply(self, call_id: str, method: str, timeout: float = 5.0) -> SipMessage:
        async with asyncio.timeout(timeout):
            while True:
                message = await self._inbox.get()
                if message.call_id == call_id and message.cseq_method == method:
                    return message

    async def any_reply(self, timeout: float) -> int | None:
        """The status of whatever reply arrives within timeout, or None."""
        try:
            async with asyncio.timeout(timeout):
                return (await self._inbox.get()).status
        except TimeoutError:
            return None

    async def final_reply(self, call: Call, method: str, timeout: float = 5.0) -> SipMessage:
        while True:
            reply = await self.next_reply(call.call_id, method, timeout)
            if reply.status >= 200:
                return reply
            if method == "INVITE":
                call.provisional.append(reply)

    # ---- a call ----------------------------------------------------------

    def new_invite(self, *, user: str = "hotline", extra: list[tuple[str, str]] | None = None) -> Call:
        host, port = self.front
        ruri = f"sip:{user}@{host}:{port}"
        call_id = f"front-test-{next(_call_numbers)}-{new_tag()}@{self.host}"
        from_tag = new_tag()
        invite = SipMessage(start=f"INVITE {ruri} SIP/2.0")
        invite.headers += [
            ("Via", self.via()),
            ("Max-Forwards", "70"),
            ("From", f"<sip:caller@{self.host}>;tag={from_tag}"),
            ("To", f"<{ruri}>"),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", self.contact),
            ("Content-Type", "application/sdp"),
        ]
        invite.headers += extra or []
        invite.body = SDP
        return Call(call_id=call_id, from_tag=from_tag, ruri=ruri, invite=invite)

    async def invite(
        self, *, user: str = "hotline", extra: list[tuple[str, str]] | None = None, timeout: float = 8.0
    ) -> Call:
        """INVITE and wait for the final answer; 2xx is ACKed, others too (hop by hop)."""
        call = self.new_invite(user=user, extra=extra)
        self.send(call.invite)
        call.final = await self.final_reply(call, "INVITE", timeout)
        self.ack(call)
        return call

    def ack(self, call: Call) -> None:
        assert call.final is not None
        if call.final.status < 300:
            ack = self._in_dialog(call, "ACK", call.cseq)
        else:
            ack = SipMessage(start=f"ACK {call.ruri} SIP/2.0")
            ack.headers += [
                ("Via", call.invite.header("Via") or ""),
                ("Max-Forwards", "70"),
                ("From", call.invite.header("From") or ""),
                ("To", call.final.header("To") or ""),
                ("Call-ID", call.call_id),
                ("CSeq", f"{call.cseq} ACK"),
            ]
        self.send(ack)

    async def bye(self, call: Call, timeout: float = 5.0) -> SipMessage:
        call.cseq += 1
        self.send(self._in_dialog(call, "BYE", call.cseq))
        return await self.final_reply(call, "BYE", timeout)

    async def reinvite(self, call: Call, sdp: str, timeout: float = 5.0) -> SipMessage:
        """A re-INVITE in the dialog with a new offer; a 2xx is ACKed."""
        call.cseq += 1
        reinvite = self._in_dialog(call, "INVITE", call.cseq)
        reinvite.headers += [("Contact", self.contact), ("Content-Type", "application/sdp")]
        reinvite.body = sdp
        self.send(reinvite)
        reply = await self.final_reply(call, "INVITE", timeout)
        if reply.status < 300:
            self.send(self._in_dialog(call, "ACK", call.cseq))
        return reply

    def cancel(self, call: Call) -> None:
        cancel = SipMessage(start=f"CANCEL {call.ruri} SIP/2.0")
        cancel.headers += [
            ("Via", call.invite.header("Via") or ""),
            ("Max-Forwards", "70"),
            ("From", call.invite.header("From") or ""),
            ("To", call.invite.header("To") or ""),
            ("Call-ID", call.call_id),
            ("CSeq", f"{call.cseq} CANCEL"),
        ]
        self.send(cancel)

    def _in_dialog(self, call: Call, method: str, cseq: int) -> SipMessage:
        message = SipMessage(start=f"{method} {call.remote_target} SIP/2.0")
        message.headers += [("Via", self.via())]
        message.headers += [("Route", r) for r in call.route_set]
        message.headers += [
            ("Max-Forwards", "70"),
            ("From", call.invite.header("From") or ""),
            ("To", call.to_header),
            ("Call-ID", call.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        return message


def to_tag(message: SipMessage) -> str | None:
    return tag_of(message.header("To") or "")
