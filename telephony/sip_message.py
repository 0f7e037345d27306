"""Reading what we need from a SIP request's text: pure, bounded, no I/O.

pjsip has already parsed and accepted the message; this only extracts the
headers the control process decides on (request URI, From, Diversion, the
front's source stamp, credentials). Caller-controlled strings stay strings:
nothing here is interpreted beyond splitting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 3261 7.3.3 compact forms.
_COMPACT = {
    "i": "call-id",
    "f": "from",
    "t": "to",
    "m": "contact",
    "v": "via",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
}

MAX_HEADERS = 200
MAX_HEADER_VALUE = 4096

_URI_USER = re.compile(r"^(?:sips?|tel):(?P<user>[^@;?>]*)", re.IGNORECASE)


class SipParseError(ValueError):
    """The text is not a SIP request we can read."""


@dataclass(frozen=True)
class NameAddr:
    display: str | None
    uri: str

    @property
    def user(self) -> str:
        return uri_user(self.uri)


@dataclass(frozen=True)
class SipRequest:
    method: str
    uri: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key == wanted]


def uri_user(uri: str) -> str:
    match = _URI_USER.match(uri.strip())
    return match.group("user") if match else ""


def parse_request(text: str) -> SipRequest:
    head = text.split("\r\n\r\n", 1)[0].replace("\r\n", "\n")
    lines = head.split("\n")
    request_line = lines[0].strip()
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].upper().startswith("SIP/"):
        raise SipParseError(f"not a SIP request line: {request_line[:80]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and headers:
            # Folded continuation of the previous header (RFC 3261 7.3.1).
            name, value = headers[-1]
            headers[-1] = (name, (value + " " + line.strip())[:MAX_HEADER_VALUE])
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise SipParseError(f"header without a colon: {line[:80]!r}")
        key = name.strip().lower()
        headers.append((_COMPACT.get(key, key), value.strip()[:MAX_HEADER_VALUE]))
        if len(headers) > MAX_HEADERS:
            raise SipParseError("too many headers")
    return SipRequest(method=parts[0], uri=parts[1], headers=tuple(headers))


def parse_name_addr(value: str) -> NameAddr:
    """Split `"Display" <sip:user@host>;tag=x` (or a bare URI) into display and URI."""
    value = value.strip()
    lt = value.find("<")
    if lt >= 0:
        gt = value.find(">", lt)
        if gt < 0:
            raise SipParseError("unterminated <uri>")
        display = value[:lt].strip().strip('"').strip() or None
        return NameAddr(display, value[lt + 1 : gt].strip())
    return NameAddr(None, value.split(";", 1)[0].strip())
