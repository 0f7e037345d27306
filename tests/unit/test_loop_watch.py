"""telephony/loop_watch.py: stalls are reported net of the time spent waiting for a CPU."""

from __future__ import annotations

import asyncio
import time

from telephony.loop_watch import watch_event_loop


def _stalls_while(callback_work: float, threshold: float) -> list[tuple[str, float, float]]:
    reports: list[tuple[str, float, float]] = []
    loop = asyncio.new_event_loop()
    try:
        unwatch = watch_event_loop(loop, threshold, lambda cb, held, waited: reports.append((cb, held, waited)))

        async def main() -> None:
            loop.call_soon(time.sleep, callback_work)  # the blocking call under test
            await asyncio.sleep(0.05)

        loop.run_until_complete(main())
        unwatch()
        # After the undo, the same stall goes unreported.
        loop.run_until_complete(main())
    finally:
        loop.close()
    return reports


def test_a_blocking_callback_is_reported_with_the_time_it_held_the_loop() -> None:
    reports = _stalls_while(0.2, threshold=0.1)
    assert len(reports) == 1
    callback, held, waited = reports[0]
    assert "sleep" in callback
    assert 0.19 <= held + waited < 1.0
    assert held >= 0.1


def test_callbacks_under_the_threshold_are_not_reported() -> None:
    assert _stalls_while(0.01, threshold=0.1) == []


def test_other_loops_are_not_watched() -> None:
    reports: list[str] = []
    watched, other = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        unwatch = watch_event_loop(watched, 0.05, lambda cb, held, waited: reports.append(cb))
        other.run_until_complete(asyncio.sleep(0, result=time.sleep(0.0)))
        other.call_soon(time.sleep, 0.1)
        other.run_until_complete(asyncio.sleep(0.01))
        unwatch()
    finally:
        watched.close()
        other.close()
    assert reports == []
