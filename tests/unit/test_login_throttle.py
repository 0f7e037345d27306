"""Sign-in throttling, step by step on a virtual clock: who waits, how long, and who never does."""

from __future__ import annotations

import pytest

from dialplan.login_throttle import Limits, LoginThrottle

# (what, login, source, at_s, expected wait after it): "fail" counts a wrong password and
# gives the wait it leaves; "ok" is a right password (expected: None); "wait" only asks.
Step = tuple[str, str, str, float, float | None]


def fails(login: str, source: str, start: float, count: int, last_wait: float) -> list[Step]:
    """`count` failures one second apart; only the last one leaves a wait."""
    return [("fail", login, source, start + i, last_wait if i == count - 1 else 0.0) for i in range(count)]


SCENARIOS: dict[str, list[Step]] = {
    "five failures lock the pair for a minute": [
        *fails("alice", "10.0.0.9", 0, 5, 60.0),
        ("wait", "alice", "10.0.0.9", 30, 34.0),
        ("wait", "alice", "10.0.0.9", 64, 0.0),
    ],
    "each further lock doubles, up to fifteen minutes": [
        *fails("alice", "10.0.0.9", 0, 5, 60.0),
        ("fail", "alice", "10.0.0.9", 70, 120.0),
        ("fail", "alice", "10.0.0.9", 200, 240.0),
        ("fail", "alice", "10.0.0.9", 450, 480.0),
        ("fail", "alice", "10.0.0.9", 940, 900.0),
        ("fail", "alice", "10.0.0.9", 1845, 900.0),
        # A whole window without failures after the last lock: afresh.
        ("wait", "alice", "10.0.0.9", 1845 + 901, 0.0),
        ("fail", "alice", "10.0.0.9", 1845 + 901, 900.0),
        *fails("alice", "10.0.0.9", 1845 + 901 + 900 + 901, 5, 60.0),
    ],
    "a failure on probation locks again; a quiet window after the lock starts afresh": [
        *fails("alice", "10.0.0.9", 0, 5, 60.0),
        ("fail", "alice", "10.0.0.9", 64 + 899, 120.0),
        *fails("alice", "10.0.0.9", 963 + 120 + 900, 5, 60.0),
    ],
    "attempts refused while locked do not extend the lock": [
        *fails("alice", "10.0.0.9", 0, 5, 60.0),
        *[("wait", "alice", "10.0.0.9", 5 + i, 59.0 - i) for i in range(50)],
        ("wait", "alice", "10.0.0.9", 64, 0.0),
    ],
    "an unknown login is throttled exactly as a known one": [
        *fails("nobody-by-that-name", "10.0.0.9", 0, 5, 60.0),
    ],
    "a right password forgives the pair but not the login's count": [
        *fails("alice", "10.0.0.9", 0, 4, 0.0),
        ("ok", "alice", "10.0.0.9", 5, None),
        *fails("alice", "10.0.0.9", 6, 4, 0.0),
        # 4 + 4 = 8 on the login: two more from anywhere lock it (for others than its trusted sources).
        *fails("alice", "192.0.2.7", 20, 2, 60.0),
        ("wait", "alice", "192.0.2.8", 22, 59.0),
        ("wait", "alice", "10.0.0.9", 22, 0.0),
    ],
    "an attacker elsewhere cannot lock the victim out of their usual desk": [
        ("ok", "alice", "10.0.0.5", 0, None),
        *fails("alice", "192.0.2.7", 10, 5, 60.0),
        *fails("alice", "192.0.2.8", 20, 5, 60.0),
        # The login is locked for new sources...
        ("wait", "alice", "198.51.100.1", 30, 54.0),
        # ...but not from where alice signed in before.
        ("wait", "alice", "10.0.0.5", 30, 0.0),
        ("ok", "alice", "10.0.0.5", 31, None),
        # Hammering on: the login's lock grows but never past fifteen minutes after the last failure.
        ("fail", "alice", "192.0.2.9", 100, 120.0),
        ("wait", "alice", "198.51.100.1", 100 + 120, 0.0),
    ],
    "one source spraying many logins is stopped": [
        *[("fail", f"user{i}", "192.0.2.66", float(i), 0.0) for i in range(19)],
        ("fail", "user19", "192.0.2.66", 19, 60.0),
        ("wait", "someone-else", "192.0.2.66", 20, 59.0),
        # Another address is not concerned.
        ("wait", "someone-else", "192.0.2.67", 20, 0.0),
    ],
    "a spraying neighbour behind the same NAT does not lock out a known pair": [
        ("ok", "bob", "203.0.113.1", 0, None),
        *[("fail", f"user{i}", "203.0.113.1", 1.0 + i, 60.0 if i == 19 else 0.0) for i in range(20)],
        ("wait", "carol", "203.0.113.1", 22, 58.0),
        ("wait", "bob", "203.0.113.1", 22, 0.0),
    ],
    "trust does not survive its own pair's lock": [
        ("ok", "bob", "203.0.113.1", 0, None),
        *fails("bob", "203.0.113.1", 1, 5, 60.0),
    ],
}


@pytest.mark.parametrize("steps", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_throttle_scenarios(steps: list[Step]) -> None:
    throttle = LoginThrottle()
    for n, (what, login, source, at, expected) in enumerate(steps):
        if what == "fail":
            got: float | None = throttle.failed(login, source, at)
        elif what == "ok":
            assert throttle.wait_s(login, source, at) == 0.0, f"step {n}: {login} from {source} may not try"
            throttle.succeeded(login, source, at)
            got = None
        else:
            got = throttle.wait_s(login, source, at)
        assert got == expected, f"step {n}: {what} {login} from {source} at {at}: waited {got}, expected {expected}"


def test_the_lock_never_exceeds_the_cap_whatever_the_attack() -> None:
    throttle = LoginThrottle()
    longest, t = 0.0, 0.0
    for _ in range(2000):
        wait = throttle.wait_s("alice", "192.0.2.7", t)
        if wait == 0:
            wait = throttle.failed("alice", "192.0.2.7", t)
        longest = max(longest, wait)
        t += max(wait, 1.0)
    assert longest == 900.0


def test_records_are_bounded() -> None:
    throttle = LoginThrottle(Limits(max_keys=100))
    for i in range(1000):
        throttle.failed(f"user{i}" + "x" * 1000, f"192.0.2.{i % 250}", float(i))
        throttle.succeeded(f"ok{i}", "192.0.2.1", float(i))
    assert len(throttle._pairs) <= 100
    assert len(throttle._logins) <= 100
    assert len(throttle._trusted) <= 100
    assert all(len(login) <= 128 for login in throttle._logins)
