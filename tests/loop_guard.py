"""The tests' bar for a blocked event loop, in-process and in the bridge's own processes.

A callback that holds the loop this long fails the test. The time is measured
net of the time the thread waited for a CPU (telephony/loop_watch.py), so the
bar can sit low on a 2-core machine running real peers beside the tests,
where asyncio's own wall-clock measure trips on scheduling noise alone.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from telephony.loop_watch import watch_event_loop

BLOCKING_THRESHOLD_S = 0.25
# How the bridge's processes log a stall (console or JSON rendering).
_STALL_LINE = re.compile(r"event_loop_stalled.*?held_s[\"'=: ]+(\d+(?:\.\d+)?)")


@asynccontextmanager
async def loop_never_blocked() -> AsyncIterator[None]:
    """Fails the test if a callback on the running loop holds it BLOCKING_THRESHOLD_S or longer."""
    loop = asyncio.get_running_loop()
    # Debug mode for its other checks: calls from the wrong thread, never-awaited coroutines.
    loop.set_debug(True)
    loop.slow_callback_duration = 1.0
    stalls: list[str] = []
    unwatch = watch_event_loop(
        loop,
        BLOCKING_THRESHOLD_S,
        lambda callback, held, waited: stalls.append(
            f"{callback} held the loop {held:.3f} s (+{waited:.3f} s runnable)"
        ),
    )
    try:
        yield
    finally:
        unwatch()
    if stalls:
        pytest.fail("the event loop was blocked:\n" + "\n".join(stalls[:5]), pytrace=False)


def stalls_in_log(text: str) -> list[str]:
    """The lines of a bridge or worker log reporting a stall at or above the bar."""
    return [
        line
        for line in text.splitlines()
        if (match := _STALL_LINE.search(line)) is not None and float(match.group(1)) >= BLOCKING_THRESHOLD_S
    ]
