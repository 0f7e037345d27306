"""Helpers for the Kamailio front tests: ports, binaries, polling, sipp."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

from peers.require import require as peers_require
from telephony.kamailio_front import KamailioFront, PikeLimits

SCENARIOS = Path(__file__).parent / "scenarios"
# The test load (12 calls x INVITE/ACK/BYE in a few seconds, plus probes)
# comes from 127.0.0.1 like everything else here; the default 16/2 s would
# ban it. Tests that exercise pike pass their own limits.
TEST_PIKE = PikeLimits(requests=2000, window_s=2, block_s=30)
_handed_out: set[int] = set()


def find_binary(name: str, *fallbacks: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((f for f in fallbacks if os.access(f, os.X_OK)), None)


def require(binary: str | None, what: str) -> str:
    """The binary, or skip - except under CI=true, where a missing peer FAILS."""
    peers_require(binary is not None, what)
    assert binary is not None
    return binary


KAMAILIO = find_binary("kamailio", "/usr/sbin/kamailio", "/usr/local/sbin/kamailio")
SIPP = find_binary("sipp", "/usr/bin/sipp", "/usr/local/bin/sipp")


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on host, below the ephemeral range."""
    for _ in range(200):
        port = random.randrange(20000, 32000, 2)
        if port in _handed_out:
            continue
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
            ):
                udp.bind((host, port))
                tcp.bind((host, port))
        except OSError:
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found")


async def wait_all_active(front: KamailioFront, timeout: float = 5.0) -> None:
    """Until every worker that is up has answered a probe (fresh start: state unknown)."""
    await wait_for(lambda: _all_active(front), timeout, "all workers active in the front")


async def _all_active(front: KamailioFront) -> bool:
    return all(d["state"] == "active" for d in await front.dispatcher_state())


async def wait_for(predicate: Callable[[], Awaitable[bool] | bool], timeout: float, what: str) -> float:
    """Poll until predicate is true; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return loop.time() - start
        if loop.time() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def start_sipp(
    sipp: str, front: KamailioFront, workdir: Path, *, calls: int, hold_ms: int, scenario: str = "uac_routed.xml"
) -> asyncio.subprocess.Process:
    host, port = front.address
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        f"{host}:{port}",
        "-sf", str(SCENARIOS / scenario),
        "-s", "hotline",
        "-i", "127.0.0.1", "-bind_local",
        "-p", str(free_port()),
        "-mi", "127.0.0.1", "-mp", str(free_port()),
        "-m", str(calls), "-l", str(calls), "-r", "100",
        "-d", str(hold_ms),
        "-nostdin",
        "-timeout", "25s", "-timeout_error",
        "-trace_err", "-error_file", str(workdir / "sipp_errors.log"),
    ]  # fmt: skip
    out = (workdir / "sipp_stdout.log").open("wb")
    try:
        return await asyncio.create_subprocess_exec(
            sipp, *args, cwd=workdir, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
        )
    finally:
        out.close()


async def finish_sipp(proc: asyncio.subprocess.Process, workdir: Path, timeout: float = 30) -> None:
    try:
        returncode = await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if returncode != 0:
        errors = workdir / "sipp_errors.log"
        detail = errors.read_text(errors="replace")[-3000:] if errors.exists() else ""
        raise AssertionError(f"sipp exited with {returncode}:\n{detail}")


def assert_kamailio_accepts(front: KamailioFront, kamailio_bin: str, directory: Path) -> None:
    """`kamailio -c` on the front's rendered config and dispatcher list, written to `directory`."""
    config = directory / "kamailio.cfg"
    config.write_text(front.render_config())
    (directory / "dispatcher.list").write_text(front.render_dispatcher_list())
    result = subprocess.run(
        [kamailio_bin, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
