"""Reports callbacks that hold an event loop, net of the time its thread waited for a CPU.

asyncio's debug mode measures a slow callback in wall time. On a busy
2-core machine a thread that is merely descheduled looks blocked, so a
threshold low enough to catch real blocking (a sync query, a sleep, a hash)
also trips on scheduling noise. Linux counts, per thread, the time spent
runnable but waiting for a CPU (`/proc/thread-self/schedstat`, second
field). Subtracting it leaves the time the callback itself held the loop:
running, sleeping or waiting on I/O.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# How a stall is reported: the callback's repr, the time it held the loop,
# and the time its thread waited for a CPU meanwhile (excluded from the former).
StallReport = Callable[[str, float, float], None]


@dataclass(frozen=True)
class _Watch:
    threshold_s: float
    report: StallReport


_watches: dict[asyncio.AbstractEventLoop, _Watch] = {}
_schedstat = threading.local()
_original_run: Callable[[asyncio.Handle], None] | None = None


def _runqueue_wait_s() -> float:
    """Seconds this thread has spent runnable but not running; 0.0 where the kernel doesn't say."""
    fd = getattr(_schedstat, "fd", None)
    if fd is None:
        try:
            fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        _schedstat.fd = fd
    if fd < 0:
        return 0.0
    try:
        return int(os.pread(fd, 64, 0).split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _watched_run(handle: asyncio.Handle) -> None:
    assert _original_run is not None
    loop: Any = getattr(handle, "_loop", None)
    watch = _watches.get(loop) if loop is not None else None
    if watch is None:
        return _original_run(handle)
    started, waited_before = time.perf_counter(), _runqueue_wait_s()
    try:
        return _original_run(handle)
    finally:
        wall = time.perf_counter() - started
        if wall >= watch.threshold_s:
            waited = _runqueue_wait_s() - waited_before
            if wall - waited >= watch.threshold_s:
                watch.report(repr(handle), wall - waited, waited)


def watch_event_loop(loop: asyncio.AbstractEventLoop, threshold_s: float, report: StallReport) -> Callable[[], None]:
    """Call `report` for every callback on `loop` that holds it `threshold_s` or longer; returns the undo."""
    global _original_run
    if _original_run is None:
        _original_run = asyncio.Handle._run
        setattr(asyncio.Handle, "_run", _watched_run)  # noqa: B010 (typeshed types _run oddly)
    watch = _Watch(threshold_s, report)
    _watches[loop] = watch

    def unwatch() -> None:
        if _watches.get(loop) is watch:
            del _watches[loop]

    return unwatch


# Production threshold: a callback holding the loop this long already delays
# media and signalling noticeably; the tests fail from 0.25 s.
STALL_LOG_THRESHOLD_S = 0.1


def log_loop_stalls(log: Any, threshold_s: float = STALL_LOG_THRESHOLD_S) -> Callable[[], None]:
    """Log `event_loop_stalled` for every callback holding the running loop `threshold_s` or longer."""

    def report(callback: str, held_s: float, waited_for_cpu_s: float) -> None:
        log.warning(
            "event_loop_stalled",
            held_s=round(held_s, 3),
            waited_for_cpu_s=round(waited_for_cpu_s, 3),
            callback=callback[:300],
        )

    return watch_event_loop(asyncio.get_running_loop(), threshold_s, report)
