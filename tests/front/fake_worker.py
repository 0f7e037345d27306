"""A media worker stand-in: a UDP SIP UAS that behaves like one pjsua worker.

It answers INVITE with 100 + 200/SDP (echoing Record-Route so ACK and BYE come
back through the front), or with pjsua's stateless 486 once `capacity` calls
are up, or 503 + Retry-After when draining. It records every request so a
test can assert which worker got which call and with which headers.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Literal, cast

from front.sip import SDP, SipMessage, hostport_of, new_branch, new_tag, parse, response_to, uri_of

Mode = Literal["normal", "busy", "draining", "decline", "silent"]


@dataclass
class Dialog:
    invite: SipMessage
    to_tag: str
    source: tuple[str, int]
    answered: bool = False
    acked: bool = False
    ended: bool = False
    answer_task: asyncio.Task[None] | None = None

    @property
    def call_id(self) -> str:
        return self.invite.call_id


@dataclass
class FakeWorker(asyncio.DatagramProtocol):
    port: int
    host: str = "127.0.0.1"
    capacity: int = 4
    mode: Mode = "normal"
    answer_delay: float = 0.0
    retry_after: int = 7
    received: list[SipMessage] = field(default_factory=list)
    dialogs: dict[str, Dialog] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    _transport: asyncio.DatagramTransport | None = None
    _waiters: list[asyncio.Future[SipMessage]] = field(default_factory=list)

    # ---- lifecycle ---------------------------------------------------

    async def start(self) -> FakeWorker:
        loop = asyncio.get_running_loop()
        for _ in range(40):
            try:
                await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, self.port))
                return self
            except OSError:  # a stopped predecessor's socket closes on the next loop turn
                await asyncio.sleep(0.025)
        raise OSError(f"port {self.port} stays busy")

    def stop(self) -> None:
        for dialog in self.dialogs.values():
            if dialog.answer_task:
                dialog.answer_task.cancel()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    @property
    def running(self) -> bool:
        return self._transport is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    # ---- what the tests look at --------------------------------------

    def requests(self, method: str) -> list[SipMessage]:
        return [m for m in self.received if m.is_request and m.method == method]

    @property
    def invites(self) -> list[SipMessage]:
        return self.requests("INVITE")

    @property
    def active_calls(self) -> int:
        return sum(1 for d in self.dialogs.values() if not d.ended)

    @property
    def answered_call_ids(self) -> set[str]:
        return {cid for cid, d in self.dialogs.items() if d.answered}

    # ---- SIP ---------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse(data)
        self.received.append(message)
        if not message.is_request:
            self._wake(message)
            return
        handler = {
            "INVITE": self._on_invite,
            "ACK": self._on_ack,
            "BYE": self._on_bye,
            "CANCEL": self._on_cancel,
            "OPTIONS": self._on_options,
        }.get(message.method)
        if handler is not None:
            handler(message, addr)

    def _send(self, message: SipMessage, addr: tuple[str, int]) -> None:
        if self._transport is not None:
            self._transport.sendto(message.encode(), addr)

    def _on_options(self, request: SipMessage, addr: tuple[str, int]) -> None:
        if self.mode == "silent":
            return
        self._send(response_to(request, 200, "OK", to_tag=new_tag()), addr)

    def _on_invite(self, request: SipMessage, addr: tuple[str, int]) -> None:
        existing = self.dialogs.get(request.call_id)
        if existing is not None:  # retransmission
            if existing.answered:
                self._send(self._ok(existing), addr)
            return
        if self.mode == "silent":
            return
        if self.mode == "draining":
            extra = [("Retry-After", str(self.retry_after))]
            self._reject(request, addr, 503, "Service Unavailable", extra)
            return
        if self.mode == "decline":
            self._reject(request, addr, 603, "Decline", [])
            return
        if self.mode == "busy" or self.active_calls >= self.capacity:
            self._reject(request, addr, 486, "Busy Here", [])
            return
        dialog = Dialog(invite=request, to_tag=new_tag(), source=addr)
        self.dialogs[request.call_id] = dialog
        self._send(response_to(request, 100, "Trying"), addr)
        if self.answer_delay > 0:
            self._send(response_to(request, 180, "Ringing", to_tag=dialog.to_tag), addr)
            dialog.answer_task = asyncio.get_running_loop().create_task(self._answer_later(dialog))
        else:
            self._answer(dialog)

    def _reject(
        self, request: SipMessage, addr: tuple[str, int], status: int, reason: str, extra: list[tuple[str, str]]
    ) -> None:
        self.rejected[request.call_id] = status
        self._send(response_to(request, status, reason, to_tag=new_tag(), extra=extra), addr)

    async def _answer_later(self, dialog: Dialog) -> None:
        await asyncio.sleep(self.answer_delay)
        if not dialog.ended:
            self._answer(dialog)

    def _answer(self, dialog: Dialog) -> None:
        dialog.answered = True
        self._send(self._ok(dialog), dialog.source)

    def _ok(self, dialog: Dialog) -> SipMessage:
        extra = [("Record-Route", rr) for rr in dialog.invite.all("Record-Route")]
        extra += [
            ("Contact", f"<sip:worker@{self.host}:{self.port}>"),
            ("Content-Type", "application/sdp"),
        ]
        return response_to(dialog.invite, 200, "OK", to_tag=dialog.to_tag, extra=extra, body=SDP)

    def _on_ack(self, request: SipMessage, addr: tuple[str, int]) -> None:
        dialog = self.dialogs.get(request.call_id)
        if dialog is not None and dialog.answered:
            dialog.acked = True

    def _on_bye(self, request: SipMessage, addr: tuple[str, int]) -> None:
        dialog = self.dialogs.get(request.call_id)
        if dialog is None or dialog.ended:
            self._send(response_to(request, 481, "Call/Transaction Does Not Exist", to_tag=new_tag()), addr)
            return
        dialog.ended = True
        self._send(response_to(request, 200, "OK"), addr)

    def _on_cancel(self, request: SipMessage, addr: tuple[str, int]) -> None:
        dialog = self.dialogs.get(request.call_id)
        if dialog is None:
            self._send(response_to(request, 481, "Call/Transaction Does Not Exist"), addr)
            return
        self._send(response_to(request, 200, "OK", to_tag=dialog.to_tag), addr)
        if dialog.answered or dialog.ended:
            return
        dialog.ended = True
        if dialog.answer_task:
            dialog.answer_task.cancel()
        self._send(response_to(dialog.invite, 487, "Request Terminated", to_tag=dialog.to_tag), addr)

    # ---- worker-initiated hangup ---------------------------------------

    async def hangup(self, call_id: str, timeout: float = 3.0) -> SipMessage:
        """Send BYE to the caller along the dialog's route set; returns the final reply."""
        dialog = self.dialogs[call_id]
        invite = dialog.invite
        routes = invite.all("Record-Route")  # UAS: route set in received order
        bye = SipMessage(start=f"BYE {uri_of(invite.header('Contact') or '')} SIP/2.0")
        bye.headers += [("Via", f"SIP/2.0/UDP {self.host}:{self.port};branch={new_branch()};rport")]
        bye.headers += [("Route", r) for r in routes]
        bye.headers += [
            ("Max-Forwards", "70"),
            ("From", f"{invite.header('To')};tag={dialog.to_tag}"),
            ("To", invite.header("From") or ""),
            ("Call-ID", call_id),
            ("CSeq", "1 BYE"),
        ]
        dialog.ended = True
        waiter: asyncio.Future[SipMessage] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._send(bye, hostport_of(uri_of(routes[0])) if routes else dialog.source)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    reply = await asyncio.shield(waiter)
                    if reply.cseq_method == "BYE" and reply.call_id == call_id and reply.status >= 200:
                        return reply
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.append(waiter)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _wake(self, reply: SipMessage) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(reply)
