"""SIP digest authentication of inbound calls (RFC 3261 22, RFC 2617 qop=auth).

Nonces are stateless: a timestamp and an HMAC of it under a per-process
secret, so any worker's INVITE can be verified by the control process
without a nonce table, and a nonce expires on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dialplan.routing import Credentials
from dialplan.tenant import DigestCredentials

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]+)\s*,?')
NONCE_TTL_S = 300
# Verified against when the username is unknown, so that an unknown user
# costs the same work as a wrong password.
_DUMMY_HA1 = hashlib.md5(b"nobody:hotline:nothing").hexdigest()  # noqa: S324 - RFC 2617 mandates MD5


@dataclass(frozen=True)
class DigestResponse:
    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None


@dataclass(frozen=True)
class Verdict:
    credentials: Credentials
    username: str | None = None


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324


def ha1_for(username: str, realm: str, password: str) -> str:
    return _md5(f"{username}:{realm}:{password}")


def parse_authorization(value: str) -> DigestResponse | None:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    for match in _PARAM.finditer(rest):
        raw = match.group(2)
        params[match.group(1).lower()] = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
    try:
        return DigestResponse(
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"].lower(),
            algorithm=params.get("algorithm", "MD5"),
            qop=params.get("qop"),
            nc=params.get("nc"),
            cnonce=params.get("cnonce"),
        )
    except KeyError:
        return None


class DigestAuthority:
    def __init__(
        self,
        secret: bytes | None = None,
        *,
        default_realm: str = "hotline",
        ttl_s: int = NONCE_TTL_S,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.default_realm = default_realm
        self._ttl_s = ttl_s
        self._now = now

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self) -> str:
        stamp = f"{int(self._now()):x}"
        return f"{stamp}.{self._sign(stamp)}"

    def nonce_valid(self, nonce: str) -> bool:
        stamp, _, signature = nonce.partition(".")
        if not hmac.compare_digest(signature, self._sign(stamp)):
            return False
        try:
            issued = int(stamp, 16)
        except ValueError:
            return False
        return 0 <= self._now() - issued <= self._ttl_s

    def challenge(self, realm: str | None = None) -> str:
        realm = realm or self.default_realm
        return f'Digest realm="{realm}", nonce="{self.new_nonce()}", algorithm=MD5, qop="auth"'

    def verify(self, method: str, header_value: str | None, users: Mapping[str, DigestCredentials]) -> Verdict:
        if header_value is None:
            return Verdict(Credentials.ABSENT)
        answer = parse_authorization(header_value)
        if answer is None or answer.algorithm.upper() != "MD5":
            return Verdict(Credentials.INVALID)
        known = users.get(answer.username)
        ha1 = known.ha1 if known is not None and known.realm == answer.realm else _DUMMY_HA1
        ha2 = _md5(f"{method}:{answer.uri}")
        if answer.qop:
            if answer.qop != "auth" or not answer.nc or answer.cnonce is None:
                return Verdict(Credentials.INVALID)
            expected = _md5(f"{ha1}:{answer.nonce}:{answer.nc}:{answer.cnonce}:{answer.qop}:{ha2}")
        else:
            expected = _md5(f"{ha1}:{answer.nonce}:{ha2}")
        matches = hmac.compare_digest(expected, answer.response)
        if known is None or not matches:
            return Verdict(Credentials.INVALID)
        if not self.nonce_valid(answer.nonce):
            # Right password, old nonce: challenge again rather than refuse.
            return Verdict(Credentials.ABSENT)
        return Verdict(Credentials.VALID, answer.username)
