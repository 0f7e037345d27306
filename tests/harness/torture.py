"""RFC 4475 (SIP Torture Test Messages) as test data: the 49 messages, byte-exact, and what a UAS must do.

The bytes live in tests/fixtures/rfc4475/<name>.dat; manifest.toml says, per message, its RFC section,
whether the RFC treats it as well formed, what this bridge (a UAS / back-to-back UA, never a proxy)
must do with it, and where the bytes come from. The manifest's header comment defines every field.
Nothing here sends anything: aiming the messages at a bridge is the caller's business.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rfc4475"
MANIFEST = FIXTURES / "manifest.toml"

# What `expect` may name: a final status code, "process" (accept and handle as any request of that
# method) or "drop" (discard silently). Alternatives are joined with " or ", the preferred first.
_OUTCOME = re.compile(r"^(?:[1-6][0-9][0-9]|process|drop)$")
FRAMINGS = frozenset({"exact", "trailing", "short", "negative", "conflicting", "absent", "unterminated"})
PROVENANCES = frozenset({"published-sha256", "reconstructed"})


class TortureDataError(ValueError):
    """The manifest and the .dat files disagree, or the manifest is malformed."""


@dataclass(frozen=True)
class TortureMessage:
    name: str
    section: str
    valid: bool
    expect: str
    why: str
    data: bytes = field(repr=False)
    title: str
    method: str  # the request method exactly as on the Request-Line, or "response"
    framing: str
    provenance: str  # "published-sha256" (verified against the archive) or "reconstructed"
    sha256: str

    @property
    def outcomes(self) -> tuple[str, ...]:
        """The outcomes `expect` allows, the RFC's preferred one first: ("400", "process")."""
        return tuple(part.strip() for part in self.expect.split(" or "))

    @property
    def is_response(self) -> bool:
        return self.method == "response"


def _text(entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise TortureDataError(f"manifest entry {entry.get('name')!r}: {key} must be a non-empty string")
    return value


def _message(entry: dict[str, Any]) -> TortureMessage:
    name = _text(entry, "name")
    valid = entry.get("valid")
    if not isinstance(valid, bool):
        raise TortureDataError(f"manifest entry {name!r}: valid must be true or false")
    expect, framing, provenance = _text(entry, "expect"), _text(entry, "framing"), _text(entry, "bytes")
    if not all(_OUTCOME.match(part.strip()) for part in expect.split(" or ")):
        raise TortureDataError(f"manifest entry {name!r}: unreadable expect {expect!r}")
    if framing not in FRAMINGS:
        raise TortureDataError(f"manifest entry {name!r}: unknown framing {framing!r}")
    if provenance not in PROVENANCES:
        raise TortureDataError(f"manifest entry {name!r}: unknown bytes provenance {provenance!r}")
    path = FIXTURES / f"{name}.dat"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TortureDataError(f"manifest lists {name!r} but {path.name} is missing") from None
    digest = _text(entry, "sha256")
    if hashlib.sha256(data).hexdigest() != digest:
        raise TortureDataError(f"{path.name} does not match its manifest sha256 (edited, truncated or re-encoded?)")
    return TortureMessage(
        name=name,
        section=_text(entry, "section"),
        valid=valid,
        expect=expect,
        why=_text(entry, "why"),
        data=data,
        title=_text(entry, "title"),
        method=_text(entry, "method"),
        framing=framing,
        provenance=provenance,
        sha256=digest,
    )


def load_torture_messages() -> list[TortureMessage]:
    """Every message of the manifest, in RFC order, with its file's bytes (checked against its sha256)."""
    with MANIFEST.open("rb") as f:
        manifest = tomllib.load(f)
    entries = manifest.get("message")
    if not isinstance(entries, list) or not entries:
        raise TortureDataError("manifest.toml has no [[message]] entries")
    messages = [_message(entry) for entry in entries]
    names = [m.name for m in messages]
    if len(set(names)) != len(names):
        raise TortureDataError("manifest.toml names a message twice")
    return messages


def for_loopback(data: bytes, host: str, port: int) -> bytes:
    """The bytes to send to a bridge listening on host:port (a loopback address): `data`, unchanged.

    Nothing needs rewriting to reach the bridge. A datagram (or a TCP stream) sent to 127.0.0.1 is
    delivered whatever its Request-URI says: the example.com / example.org / 192.0.2.x names in the
    messages are the RFC's, and a UAS neither resolves nor forwards on the Request-URI host (pjsua
    hands a request it cannot match to an account to its default account, and the bridge then routes
    on the Request-URI's user part, which matches no line here). Rewriting would also destroy what is
    being tested: the Request-URI is itself the torture in intmeth, esc01, semiuri, ltgtruri, lwsruri,
    lwsstart, trws, escruri, unkscm and novelsc; the top Via in wsinv, badinv01, badvers and
    badbranch; and any edit to a message with a body would also need its Content-Length (which is
    the point of clerr, ncl and mcl01) changed. So the only thing this does is refuse to aim torture
    traffic anywhere but a loopback address.

    What the caller must know, because the messages are kept as they are:

    * Replies follow the top Via (RFC 3261 18.2.2), not the packet's source port: over UDP the bridge
      answers to received=<source address> at the Via's sent-by port, 5060 when none is given
      (quotbal says 5050; only mpart01 carries rport). So run the bridge on another port, or another
      loopback address such as 127.0.0.2, and listen for replies on 127.0.0.1:5060 (and :5050).
    * Several top Vias name TCP (intmeth, esc02, longreq, scalar02, trws, unkscm, novelsc, regaut01)
      or TLS (bext01); a stack may answer those over that transport, so send them over TCP and read
      the reply on the same connection.
    * dblreq, clerr, ncl, mcl01 and inv2543 are about datagram framing: send each as one UDP
      datagram. Over TCP, clerr leaves the bridge waiting for 9999 octets (close the connection).
    * longreq is 3515 octets: inside pjsip's default PJSIP_MAX_PKT_LEN (4000); a smaller build limit drops it.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"torture messages go to a loopback address literal, not {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"torture messages go to a loopback address only, not {host}")
    if not 0 < port < 65536:
        raise ValueError(f"not a port: {port}")
    return data
