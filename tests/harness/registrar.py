"""A client's own registrar and proxy, played by a real Kamailio on loopback (tests/fixtures/kamailio)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from peers.ports import free_udp_port
from peers.require import require_program
from peers.stopping import stop_child
from telephony.kamailio_front import KamailioTemplate

TEMPLATE = Path(__file__).resolve().parent.parent / "fixtures" / "kamailio" / "client-registrar.cfg.tmpl"


@dataclass
class Registrar:
    port: int
    process: asyncio.subprocess.Process
    # Every "REGISTRAR: ..." line Kamailio logged, with when the test saw it (time.monotonic()).
    lines: list[tuple[float, str]] = field(default_factory=list)

    def uri(self, user: str) -> str:
        return f"sip:{user}@127.0.0.1:{self.port}"

    def registers(self) -> list[tuple[float, str]]:
        return [(t, line) for t, line in self.lines if "REGISTER from" in line]

    def saved(self) -> list[tuple[float, str]]:
        return [(t, line) for t, line in self.lines if "REGISTRAR: saved" in line]

    async def wait_for(self, needle: str, after: float = 0.0, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, line in self.lines:
                if t >= after and needle in line:
                    return t
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {needle!r} from the registrar within {timeout}s; it logged: {self.lines[-10:]}")


async def _pump(stream: asyncio.StreamReader, registrar: Registrar) -> None:
    while raw := await stream.readline():
        text = raw.decode(errors="replace").rstrip()
        if "REGISTRAR:" in text:
            registrar.lines.append((time.monotonic(), text[text.index("REGISTRAR:") :]))


async def _stop_reading(reader: asyncio.Task[None]) -> None:
    """The log reader ends at EOF, which the stop brings; it is cancelled if it has not within a second."""
    await asyncio.wait([reader], timeout=1.0)
    if not reader.done():
        reader.cancel()
        await asyncio.wait([reader], timeout=1.0)
    if reader.done() and not reader.cancelled():
        reader.result()


@contextlib.asynccontextmanager
async def client_registrar(run_dir: Path, *, password: str, phone_uri: str) -> AsyncIterator[Registrar]:
    require_program("kamailio")
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_udp_port()
    config = run_dir / "registrar.cfg"
    config.write_text(
        KamailioTemplate(TEMPLATE.read_text()).substitute(
            port=port, password=password, phone_uri=phone_uri, run_dir=str(run_dir)
        )
    )
    binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
    process = await asyncio.create_subprocess_exec(
        binary, "-f", str(config), "-DD", "-E", "-m", "32", "-M", "8", "-Y", str(run_dir),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    registrar = Registrar(port, process)
    assert process.stdout is not None
    reader = asyncio.create_task(_pump(process.stdout, registrar))
    try:
        await asyncio.sleep(0.5)
        if process.returncode is not None:
            raise RuntimeError(f"kamailio exited at once ({process.returncode}): check {config}")
        yield registrar
    finally:
        # SIGTERM to the main process (it stops its workers), SIGKILL to the whole session after 5 s: its
        # workers share its stdout, and a worker outliving the main process kept wait() waiting for EOF forever.
        try:
            await stop_child(process, f"kamailio registrar on port {port}", grace=5.0, group=True)
        finally:
            await _stop_reading(reader)
