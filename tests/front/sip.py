"""Just enough SIP to play a worker or a caller against the Kamailio front."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

CRLF = "\r\n"
_COMPACT = {
    "i": "Call-ID",
    "f": "From",
    "t": "To",
    "v": "Via",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
}
_CANONICAL = {
    name.lower(): name
    for name in (
        "Call-ID", "CSeq", "From", "To", "Via", "Contact", "Content-Length", "Content-Type",
        "Record-Route", "Route", "Max-Forwards", "Retry-After", "X-Hotline-Source",
    )
}  # fmt: skip

SDP = (
    "v=0\r\n"
    "o=fake 1 1 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
)


def canonical(name: str) -> str:
    name = name.strip()
    name = _COMPACT.get(name.lower(), name) if len(name) == 1 else name
    return _CANONICAL.get(name.lower(), name)


@dataclass
class SipMessage:
    start: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""

    @property
    def is_request(self) -> bool:
        return not self.start.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        if self.is_request:
            return self.start.split(" ", 1)[0]
        return self.cseq_method

    @property
    def ruri(self) -> str:
        return self.start.split(" ")[1]

    @property
    def status(self) -> int:
        return int(self.start.split(" ")[1])

    @property
    def call_id(self) -> str:
        return self.header("Call-ID") or ""

    @property
    def cseq_method(self) -> str:
        return (self.header("CSeq") or " ").split()[-1]

    @property
    def branch(self) -> str:
        match = re.search(r";branch=([^;,\s]+)", self.header("Via") or "")
        return match.group(1) if match else ""

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        wanted = canonical(name).lower()
        found: list[str] = []
        for key, value in self.headers:
            if canonical(key).lower() != wanted:
                continue
            # Via/Route/Record-Route may carry several values in one header
            if wanted in ("via", "route", "record-route"):
                found += [v.strip() for v in _split_commas(value)]
            else:
                found.append(value)
        return found

    def encode(self) -> bytes:
        headers = [(k, v) for k, v in self.headers if canonical(k) != "Content-Length"]
        lines = [self.start] + [f"{k}: {v}" for k, v in headers]
        lines.append(f"Content-Length: {len(self.body.encode())}")
        return (CRLF.join(lines) + CRLF + CRLF + self.body).encode()


def parse(data: bytes) -> SipMessage:
    text = data.decode(errors="replace")
    head, _, body = text.partition(CRLF + CRLF)
    lines = head.split(CRLF)
    message = SipMessage(start=lines[0])
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and message.headers:
            key, value = message.headers[-1]
            message.headers[-1] = (key, value + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        message.headers.append((name.strip(), value.strip()))
    message.body = body
    return message


def _split_commas(value: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for char in value:
        if char == "<":
            depth += 1
        elif char == ">":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def response_to(
    request: SipMessage,
    status: int,
    reason: str,
    *,
    to_tag: str | None = None,
    extra: list[tuple[str, str]] | None = None,
    body: str = "",
) -> SipMessage:
    reply = SipMessage(start=f"SIP/2.0 {status} {reason}")
    for via in request.all("Via"):
        reply.headers.append(("Via", via))
    to = request.header("To") or ""
    if to_tag and ";tag=" not in to:
        to = f"{to};tag={to_tag}"
    reply.headers += [
        ("From", request.header("From") or ""),
        ("To", to),
        ("Call-ID", request.call_id),
        ("CSeq", request.header("CSeq") or ""),
    ]
    reply.headers += extra or []
    reply.body = body
    return reply


def new_tag() -> str:
    return secrets.token_hex(4)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def uri_of(name_addr: str) -> str:
    match = re.search(r"<([^>]+)>", name_addr)
    return match.group(1) if match else name_addr.split(";")[0].strip()


def tag_of(name_addr: str) -> str | None:
    match = re.search(r";tag=([^;>\s]+)", name_addr.split(">")[-1])
    return match.group(1) if match else None


def hostport_of(uri: str) -> tuple[str, int]:
    match = re.match(r"sips?:(?:[^@]*@)?([^;:>]+)(?::(\d+))?", uri)
    if not match:
        raise ValueError(f"not a sip uri: {uri}")
    return match.group(1), int(match.group(2) or 5060)
