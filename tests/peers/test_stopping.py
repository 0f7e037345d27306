"""stop_child: a child process is stopped within its bounds, or an error names it; never a hang.

The children are small shell scripts shaped like the peers that hung a test: a main
process whose own child keeps its stdout pipe open (as Kamailio's workers do).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from peers.stopping import group_members, stop_child


async def spawn(script: str, *, session: bool = True) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        script,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=session,
    )


def transport_closed(process: asyncio.subprocess.Process) -> bool:
    return bool(process._transport.is_closing())  # type: ignore[attr-defined]


async def test_a_worker_holding_the_pipe_after_the_main_process_exits_is_killed_with_its_group() -> None:
    # SIGTERM ends the main process at once; its worker (same group) lives on with the pipe:
    # a bare `await process.wait()` would never return.
    process = await spawn("sleep 300 & exec sleep 300")
    await asyncio.sleep(0.2)
    started = time.monotonic()
    code = await stop_child(process, "forking peer", grace=0.5, kill_grace=3.0, group=True)
    assert code == -signal.SIGTERM
    assert time.monotonic() - started < 3.0
    assert group_members(process.pid) == []
    assert transport_closed(process)


async def test_a_main_process_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    process = await spawn("trap '' TERM; sleep 300 & wait")
    await asyncio.sleep(0.2)
    started = time.monotonic()
    code = await stop_child(process, "stubborn peer", grace=0.5, kill_grace=3.0, group=True)
    assert code == -signal.SIGKILL
    assert time.monotonic() - started < 3.0
    assert group_members(process.pid) == []
    assert transport_closed(process)


async def test_a_pipe_held_outside_the_group_is_an_error_naming_the_peer(tmp_path: Path) -> None:
    # The worker escapes into a session of its own, where no group kill reaches it.
    pid_file = tmp_path / "escaped.pid"
    process = await spawn(f"setsid sh -c 'echo $$ > {pid_file}; exec sleep 300' & exec sleep 300", session=False)
    for _ in range(50):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.05)
    escaped = int(pid_file.read_text())
    try:
        started = time.monotonic()
        with pytest.raises(
            ChildProcessError,
            match=rf"escaping peer pid {process.pid} exited, but another process still held its pipes",
        ):
            await stop_child(process, "escaping peer", grace=0.3, kill_grace=0.5)
        assert time.monotonic() - started < 4.0
        assert process.returncode is not None
        assert transport_closed(process)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(escaped, signal.SIGKILL)


async def test_a_cancelled_stop_still_kills_the_child_and_closes_its_transport() -> None:
    process = await spawn("trap '' TERM; sleep 300 & wait")
    await asyncio.sleep(0.2)
    stopping = asyncio.create_task(stop_child(process, "stubborn peer", grace=30.0, group=True))
    await asyncio.sleep(0.3)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert process.returncode == -signal.SIGKILL
    assert transport_closed(process)
    for _ in range(40):
        if not group_members(process.pid):
            break
        await asyncio.sleep(0.05)
    assert group_members(process.pid) == []
