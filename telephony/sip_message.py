"""Reading what we need from a SIP request's text: pure, bounded, no I/O.

pjsip has already parsed and accepted the message; this only extracts the
headers the control process decides on (request URI, From, Diversion, the
front's source stamp, credentials). Caller-controlled strings stay strings:
nothing here is interpreted beyond splitting.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from urllib.parse import unquote

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

# A sip(s) URI has a user only before an '@' (sip:example.com has none); a tel URI is all number.
_URI_USER = re.compile(r"^(?:sips?:(?P<user>[^@;?>]*)@|tel:(?P<number>[^;?>]*))", re.IGNORECASE)
# C0 controls and DEL: nothing a display name or number needs, and NUL is refused by PostgreSQL's text.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


_HISTORY_INDEX = re.compile(r";\s*index\s*=\s*([0-9]+(?:\.[0-9]+)*)", re.IGNORECASE)


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
    """The URI's user (a sip URI's password left out) or tel number, %-escapes decoded, controls removed."""
    match = _URI_USER.match(uri.strip())
    if match is None:
        return ""
    user = match.group("user")
    found = user.split(":", 1)[0] if user is not None else match.group("number")
    return printable(unquote(found, errors="replace"))


def printable(text: str) -> str:
    return _CONTROLS.sub("", text)


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
    """Split `"Display" <sip:user@host>;tag=x` (or a bare URI) into display and URI.

    A quoted display name is read as a quoted-string (backslash escapes, RFC 3261 25.1): a '<' inside
    it is text, so `"<sip:trusted>" <sip:caller@host>` is the caller's, not the quoted number."""
    rest = value.strip()
    display: str | None = None
    if rest.startswith('"'):
        display, rest = _quoted(rest)
        if not rest.startswith("<"):
            raise SipParseError("a quoted display name must be followed by <uri>")
    lt = rest.find("<")
    if lt < 0:
        return NameAddr(None, rest.split(";", 1)[0].strip())
    gt = rest.find(">", lt)
    if gt < 0:
        raise SipParseError("unterminated <uri>")
    if display is None:
        display = rest[:lt].strip()
    return NameAddr(printable(display).strip() or None, rest[lt + 1 : gt].strip())


def _quoted(text: str) -> tuple[str, str]:
    """A leading quoted-string's content, and what follows it (stripped)."""
    out: list[str] = []
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), text[i + 1 :].strip()
        out.append(ch)
        i += 1
    raise SipParseError("unterminated quoted display name")


def _split_entries(value: str) -> list[str]:
    """Comma-separated header entries, commas inside <...> or quotes left alone."""
    entries: list[str] = []
    depth, quoted, escaped, start = 0, False, False, 0
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0 and not quoted:
            entries.append(value[start:i])
            start = i + 1
    entries.append(value[start:])
    return [e.strip() for e in entries if e.strip()]


def diverted_from(request: SipRequest) -> tuple[str, ...]:
    """The numbers this call was forwarded from, the original one first.

    Diversion (RFC 5806) entries are newest first, so they are read in
    reverse; History-Info (RFC 7044) entries are ordered by their index,
    the original target first, and the last (this request's own target)
    is left out. Unreadable entries are skipped: a PBX's quirks must not
    cost the caller their call, the line's trusted sources decide.
    """
    found: list[str] = []
    for value in reversed(request.header_all("diversion")):
        for entry in reversed(_split_entries(value)):
            with contextlib.suppress(SipParseError):
                found.append(parse_name_addr(entry).user)
    history: list[tuple[tuple[int, ...], str]] = []
    for value in request.header_all("history-info"):
        for entry in _split_entries(value):
            with contextlib.suppress(SipParseError, ValueError):
                index = _HISTORY_INDEX.search(entry)
                order = tuple(int(n) for n in index.group(1).split(".")) if index else (len(history) + 1,)
                history.append((order, parse_name_addr(entry).user))
    found += [user for _, user in sorted(history)[:-1]]
    return tuple(dict.fromkeys(user for user in found if user))
