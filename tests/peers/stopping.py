"""Stop a test's child process within a bounded time, or fail saying which one would not stop.

    await stop_child(process, "kamailio registrar", group=True)

SIGTERM (or ``first``), up to ``grace`` seconds for a clean exit, then SIGKILL
(to the whole process group when ``group``: the child was started with
``start_new_session=True``, so its pgid is its pid) and up to ``kill_grace``
seconds more. A child that outlives that raises ChildProcessError naming it,
instead of hanging the test.

Why not just ``await process.wait()``: on Python 3.11 a wait() begun before the
exit returns only once the process has exited *and* every pipe to it is at EOF.
A child that forks (Kamailio forks its workers, which inherit its stdout) can
exit, or be killed alone, while its children keep the pipe open, and then that
``wait()`` never returns. So the group is killed, the
transport is closed if a pipe is still held after the kill, and on every path
(an error or a cancellation too) the transport ends closed: a subprocess transport
garbage-collected after its loop closed while a pipe was open raises in
``BaseSubprocessTransport.__del__`` (an unraisable exception in some later test).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path


async def stop_child(
    process: asyncio.subprocess.Process,
    name: str,
    *,
    first: int | None = signal.SIGTERM,
    grace: float = 5.0,
    kill_grace: float = 5.0,
    group: bool = False,
) -> int:
    """Stop ``process`` (``name`` says what it is, for the error) and return its exit code."""
    try:
        if process.returncode is None and first is not None:
            _signal(process, first, group=False)
        if not await _finished(process, grace):
            _signal(process, signal.SIGKILL, group=group)
            if not await _finished(process, kill_grace):
                exited = process.returncode is not None
                # Unkillable, or something else holds its pipes: stop reading them (so it counts as done
                # once it is reaped), and say which.
                close_transport(process)
                if not exited or not await _finished(process, 1.0):
                    raise ChildProcessError(f"{name} pid {process.pid} did not exit after SIGKILL")
                raise ChildProcessError(
                    f"{name} pid {process.pid} exited, but another process still held its pipes after SIGKILL"
                )
        if group:
            await _group_gone(process.pid, name, kill_grace)
    except BaseException:
        # Cancelled, or it would not stop: never leave it running, nor its transport open.
        _signal(process, signal.SIGKILL, group=group)
        try:
            await _finished(process, kill_grace)
        finally:
            close_transport(process)
        raise
    close_transport(process)
    assert process.returncode is not None
    return process.returncode


def close_transport(process: asyncio.subprocess.Process) -> None:
    """Close the process's transport (and its pipes); idempotent. Kills the process if it still runs."""
    transport: asyncio.BaseTransport | None = getattr(process, "_transport", None)
    if transport is not None:
        transport.close()


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its closing parenthesis.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


async def _finished(process: asyncio.subprocess.Process, timeout: float) -> bool:
    """Whether, within ``timeout``, the process exited and its pipes reached EOF (its transport then closes).

    Polled rather than ``wait()``: on 3.11, wait() called after the exit is already known returns at once
    (pipes held or not), and called before it returns only at EOF on every pipe (maybe never).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not _done(process):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _done(process: asyncio.subprocess.Process) -> bool:
    transport: asyncio.BaseTransport | None = getattr(process, "_transport", None)
    return process.returncode is not None and (transport is None or transport.is_closing())


def _signal(process: asyncio.subprocess.Process, sig: int, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(process.pid, sig)
        elif process.returncode is None:
            process.send_signal(sig)


async def _group_gone(pgid: int, name: str, timeout: float) -> None:
    """No process of the child's group outlives it: SIGKILL stragglers, fail if any survives ``timeout``."""
    members = group_members(pgid)
    if not members:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while members := group_members(pgid):
        if loop.time() >= deadline:
            raise ChildProcessError(f"{name} pid {pgid}: processes {members} of its group did not exit after SIGKILL")
        await asyncio.sleep(0.05)
