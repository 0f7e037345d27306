"""Sign-in throttling: how many wrong passwords, from where, before a wait.

Failures are counted in a sliding window three ways: one login from one
source (the pair), one login from anywhere, and one source for any login
(spraying). Reaching a count locks that key for a delay that doubles with
each lock (first_lock_s, 2x, 4x, ...) up to max_lock_s. After a lock the key
is on probation: its next failure locks it again, until a whole window passes
after the lock without failures and it starts afresh. Attempts refused while locked
are not counted, so a lock always ends, whatever an attacker keeps sending.

A lock on a login or on a source must not let an attacker lock a victim out:
a (login, source) pair that signed in successfully within trust_s is exempt
from both, so the victim's usual desk (or an office sharing one NAT address
with a spraying machine) still gets in. Only the pair's own lock, earned by
wrong passwords from that very source, applies to it. A new source for a
login under attack waits out the login's lock: at most max_lock_s after the
attack's last counted failure.

Pure and clock-injected: every call takes `now` (monotonic seconds).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TypeVar

# Keys are bounded in size: a login is what a stranger typed.
MAX_LOGIN_KEY = 128

K = TypeVar("K")


@dataclass(frozen=True)
class Limits:
    window_s: float = 15 * 60.0
    per_pair: int = 5
    per_login: int = 10
    per_source: int = 20
    first_lock_s: float = 60.0
    max_lock_s: float = 15 * 60.0
    trust_s: float = 30 * 86400.0
    # Records kept per kind; past this the stalest are forgotten.
    max_keys: int = 50_000


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    strikes: int = 0
    locked_until: float = 0.0

    def prune(self, now: float, window_s: float) -> None:
        while self.failures and self.failures[0] <= now - window_s:
            self.failures.popleft()
        # Time spent locked proves nothing (refused attempts are not counted): probation is a
        # quiet window after the lock.
        if not self.failures and self.locked_until + window_s <= now:
            self.strikes = 0

    def wait(self, now: float) -> float:
        return max(0.0, self.locked_until - now)

    def fail(self, now: float, limit: int, limits: Limits) -> None:
        self.prune(now, limits.window_s)
        self.failures.append(now)
        # After a lock, a key is on probation until a quiet window: one more failure locks it again.
        if self.locked_until <= now and (self.strikes > 0 or len(self.failures) >= limit):
            self.strikes += 1
            delay = min(limits.first_lock_s * 2.0 ** min(self.strikes - 1, 32), limits.max_lock_s)
            self.locked_until = now + delay

    def stale(self, now: float, window_s: float) -> bool:
        return self.locked_until + window_s <= now and (not self.failures or self.failures[-1] <= now - window_s)


class LoginThrottle:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._pairs: dict[tuple[str, str], _Record] = {}
        self._logins: dict[str, _Record] = {}
        self._sources: dict[str, _Record] = {}
        self._trusted: dict[tuple[str, str], float] = {}

    def wait_s(self, login: str, source: str, now: float) -> float:
        """Seconds before `login` may try from `source`; 0: it may try now."""
        login = login[:MAX_LOGIN_KEY]
        waits = [self._wait(self._pairs, (login, source), now)]
        if self._trusted.get((login, source), float("-inf")) <= now:
            waits.append(self._wait(self._logins, login, now))
            waits.append(self._wait(self._sources, source, now))
        return max(waits)

    def failed(self, login: str, source: str, now: float) -> float:
        """Count a wrong password (or unknown login); the wait it leaves, 0 if none."""
        login = login[:MAX_LOGIN_KEY]
        limits = self.limits
        self._record(self._pairs, (login, source), now).fail(now, limits.per_pair, limits)
        self._record(self._logins, login, now).fail(now, limits.per_login, limits)
        self._record(self._sources, source, now).fail(now, limits.per_source, limits)
        return self.wait_s(login, source, now)

    def succeeded(self, login: str, source: str, now: float) -> None:
        """A right password: the pair is forgiven and trusted. The login's and the source's
        counts stand: someone else's failures are not forgiven by this success."""
        login = login[:MAX_LOGIN_KEY]
        self._pairs.pop((login, source), None)
        if len(self._trusted) >= self.limits.max_keys:
            self._trusted = {k: v for k, v in self._trusted.items() if v > now}
            while len(self._trusted) >= self.limits.max_keys:
                del self._trusted[min(self._trusted, key=self._trusted.__getitem__)]
        self._trusted[(login, source)] = now + self.limits.trust_s

    def _wait(self, records: dict[K, _Record], key: K, now: float) -> float:
        record = records.get(key)
        if record is None:
            return 0.0
        record.prune(now, self.limits.window_s)
        return record.wait(now)

    def _record(self, records: dict[K, _Record], key: K, now: float) -> _Record:
        record = records.get(key)
        if record is not None:
            return record
        if len(records) >= self.limits.max_keys:
            for stale in [k for k, r in records.items() if r.stale(now, self.limits.window_s)]:
                del records[stale]
            while len(records) >= self.limits.max_keys:
                del records[min(records, key=lambda k: records[k].failures[-1] if records[k].failures else 0.0)]
        record = records[key] = _Record()
        return record
