"""Who is asking: HTTP Basic against the tenant's people, with their scope.

Browser sessions (web_sessions) start from the same check. Password checks
(argon2) run off the event loop, an unknown login costs as much as a wrong
password, and a success is remembered briefly so a dashboard polling the API
doesn't pay argon2 each time. Every attempt goes through the sign-in throttle
(dialplan.login_throttle), by login and by source address.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dialplan.login_throttle import LoginThrottle
from dialplan.tenant import Tenant

_hasher = PasswordHasher()
# A verification against this costs the same as a real one, for unknown logins.
_DUMMY_HASH = _hasher.hash("not a password")


class Role(StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    CLIENT_ADMIN = "client_admin"
    AGENT = "agent"


@dataclass(frozen=True)
class Principal:
    login: str
    role: Role
    # None: every client of the tenant.
    clients: frozenset[str] | None

    def may_see_client(self, client_id: str | None) -> bool:
        if self.clients is None:
            return True
        return client_id is not None and client_id in self.clients


@dataclass(frozen=True)
class Throttled:
    """Too many failed sign-ins: try again in this many seconds (dialplan.login_throttle)."""

    retry_after_s: int


def _lookup(tenant: Tenant, login: str) -> tuple[str, Principal] | None:
    if login in tenant.admins:
        return tenant.admins[login].password_hash, Principal(login, Role.ADMIN, None)
    if login in tenant.supervisors:
        sup = tenant.supervisors[login]
        return sup.password_hash, Principal(login, Role.SUPERVISOR, sup.clients)
    if login in tenant.client_admins:
        ca = tenant.client_admins[login]
        return ca.password_hash, Principal(login, Role.CLIENT_ADMIN, frozenset({ca.client_id}))
    if login in tenant.agents:
        agent = tenant.agents[login]
        return agent.password_hash, Principal(login, Role.AGENT, frozenset())
    return None


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    login, sep, password = decoded.partition(":")
    return (login, password) if sep else None


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class Authenticator:
    def __init__(
        self,
        tenant: Tenant,
        *,
        remember_s: float = 60.0,
        throttle: LoginThrottle | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenant = tenant
        self._remember_s = remember_s
        self._recent: dict[tuple[str, str], float] = {}
        self.throttle = throttle or LoginThrottle()
        self._now = now

    def name_of(self, login: str) -> str:
        people = (self._tenant.admins, self._tenant.supervisors, self._tenant.client_admins, self._tenant.agents)
        for group in people:
            if login in group:
                return group[login].name
        return login

    async def authenticate(self, header: str | None, source: str) -> Principal | Throttled | None:
        """The principal an `Authorization: Basic` header proves, if any, throttled as sign-ins are."""
        pair = parse_basic(header)
        if pair is None:
            return None
        return await self.attempt(*pair, source)

    async def attempt(self, login: str, password: str, source: str) -> Principal | Throttled | None:
        """A sign-in from `source` (an address): the principal, None for a wrong password or an
        unknown login alike, or Throttled, checked before any password and so without its cost."""
        wait = self.throttle.wait_s(login, source, self._now())
        if wait > 0:
            return Throttled(math.ceil(wait))
        principal = await self.check(login, password)
        if principal is None:
            wait = self.throttle.failed(login, source, self._now())
            return Throttled(math.ceil(wait)) if wait > 0 else None
        self.throttle.succeeded(login, source, self._now())
        return principal

    async def check(self, login: str, password: str) -> Principal | None:
        found = _lookup(self._tenant, login)
        key = (login, hashlib.sha256(password.encode()).hexdigest())
        now = time.monotonic()
        if found is not None and self._recent.get(key, 0.0) > now:
            return found[1]
        password_hash = found[0] if found is not None else _DUMMY_HASH
        ok = await asyncio.to_thread(_verify, password_hash, password)
        if found is None or not ok:
            return None
        if len(self._recent) > 1024:
            self._recent = {k: v for k, v in self._recent.items() if v > now}
        self._recent[key] = now + self._remember_s
        return found[1]
