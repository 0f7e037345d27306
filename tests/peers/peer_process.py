"""Run the pjsua2 test peers (pjsua_caller.py / pjsua_answerer.py) as asyncio subprocesses.

    result = await run_caller("sip:1001@127.0.0.1:5070", play=tone440, record=tmp / "heard.wav",
                              hangup_after=6)
    assert result.ok, result.describe()
    samples, rate = read_wav(result.recording)

    async with await start_answerer(play=tone1000, record=tmp / "ans.wav") as answerer:
        ...dial answerer.uri...
    # leaving the block stops it (SIGTERM) and finalises its recordings

Each peer is its own process (one pjsua2 Endpoint per process, 4 calls at most),
and prints JSON lines that are collected here as they arrive, so a test can also
wait for one mid-call: ``await caller.wait_for("state", state="CONFIRMED")``.
Event ``t`` values are time.monotonic() of the peer, comparable with
time.monotonic() here (same machine, CLOCK_MONOTONIC).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from peers.stopping import stop_child

PEERS_DIR = Path(__file__).resolve().parent
CALLER_SCRIPT = PEERS_DIR / "pjsua_caller.py"
ANSWERER_SCRIPT = PEERS_DIR / "pjsua_answerer.py"

Event = dict[str, Any]


@dataclass
class PeerResult:
    """What a finished peer process said and how it ended."""

    returncode: int
    events: list[Event]
    stderr: str
    recordings: list[Path] = field(default_factory=list)
    spawned_at: float = 0.0  # time.monotonic() just before the process was started

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def recording(self) -> Path | None:
        return self.recordings[0] if self.recordings else None

    def of(self, event: str, **match: Any) -> list[Event]:
        return [e for e in self.events if e.get("event") == event and _matches(e, match)]

    def first(self, event: str, **match: Any) -> Event | None:
        found = self.of(event, **match)
        return found[0] if found else None

    @property
    def done(self) -> list[Event]:
        return self.of("done")

    def describe(self) -> str:
        lines = [f"exit code {self.returncode}"]
        lines += [json.dumps(e) for e in self.events]
        if self.stderr.strip():
            lines.append("stderr:\n" + self.stderr[-4000:])
        return "\n".join(lines)


# A caller's result is a peer result; the alias keeps call sites readable.
CallerResult = PeerResult


def _matches(event: Event, match: dict[str, Any]) -> bool:
    return all(event.get(k) == v for k, v in match.items())


class PeerProcess:
    """A running peer whose stdout JSON events are collected continuously."""

    def __init__(self, argv: Sequence[str], recordings: Sequence[Path] = ()) -> None:
        self.argv = [sys.executable, *argv]
        self.recordings = list(recordings)
        self.events: list[Event] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.spawned_at = 0.0
        self._stderr = bytearray()
        self._changed = asyncio.Event()
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> Self:
        self.spawned_at = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read_events(self.proc.stdout)),
            asyncio.create_task(self._read_stderr(self.proc.stderr)),
        ]
        return self

    async def _read_events(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "stdout", "text": line}
            self.events.append(event)
            self._changed.set()
        self._changed.set()

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self._stderr += raw

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    def find(self, event: str, **match: Any) -> Event | None:
        for e in self.events:
            if e.get("event") == event and _matches(e, match):
                return e
        return None

    async def wait_for(self, event: str, timeout: float = 10.0, **match: Any) -> Event:
        """The first event named ``event`` whose fields equal ``match`` (already seen or yet to come)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(event, **match)
            if found is not None:
                return found
            if self._readers and self._readers[0].done():
                raise AssertionError(f"peer ended without {event} {match}:\n{self.result().describe()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {event} {match} within {timeout}s:\n{self.result().describe()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait(self, timeout: float = 120.0) -> PeerResult:
        """Wait for the process to exit by itself (killed after ``timeout``)."""
        assert self.proc is not None
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except BaseException:
            # Timed out, or cancelled: it must not outlive the test (nor its transport stay open).
            await self.stop()
            raise
        await self._readers_done()
        return self.result()

    async def stop(self, grace: float = 8.0) -> PeerResult:
        """SIGTERM (the peer hangs up and finalises its WAVs), SIGKILL after ``grace`` seconds."""
        assert self.proc is not None
        try:
            await stop_child(self.proc, f"{Path(self.argv[1]).stem} peer", grace=grace)
        finally:
            await self._readers_done()
        return self.result()

    async def _readers_done(self, timeout: float = 2.0) -> None:
        """The readers end at EOF, once the process is gone; cancelled if they have not within ``timeout``."""
        if not self._readers:
            return
        _, pending = await asyncio.wait(self._readers, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for task in self._readers:
            if task.done() and not task.cancelled():
                task.result()

    def result(self) -> PeerResult:
        return PeerResult(
            returncode=self.returncode if self.returncode is not None else -1,
            events=list(self.events),
            stderr=self._stderr.decode(errors="replace"),
            recordings=self.recordings,
            spawned_at=self.spawned_at,
        )

    async def __aenter__(self) -> Self:
        if self.proc is None:
            await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None:
            await self.stop()


class AnswererProcess(PeerProcess):
    """pjsua_answerer.py once it printed ``ready``: ``sip_port`` and ``uri`` are known."""

    sip_port: int = 0

    def uri_for(self, user: str = "answerer") -> str:
        return f"sip:{user}@127.0.0.1:{self.sip_port}"

    @property
    def uri(self) -> str:
        return self.uri_for()


def _opt(args: list[str], flag: str, value: object | None) -> None:
    if value is not None:
        args += [flag, str(value)]


def caller_argv(
    dial: str,
    *,
    play: Path | str | None = None,
    record: Path | str | None = None,
    hangup_after: float | None = None,
    max_seconds: float = 60.0,
    expect_status: int | None = None,
    headers: Sequence[str] = (),
    from_user: str = "caller",
    local_port: int = 0,
    calls: int = 1,
    digest: str | None = None,
    codecs: str | None = None,
    dtmf: str | None = None,
    dtmf_after: float | None = None,
    log_file: Path | str | None = None,
    local_ip: str | None = None,
) -> list[str]:
    args = [str(CALLER_SCRIPT), "--dial", dial, "--max-seconds", str(max_seconds)]
    _opt(args, "--play", play)
    _opt(args, "--record", record)
    _opt(args, "--hangup-after", hangup_after)
    _opt(args, "--expect-status", expect_status)
    for h in headers:
        args += ["--header", h]
    args += ["--from-user", from_user, "--local-port", str(local_port), "--calls", str(calls)]
    _opt(args, "--digest", digest)
    _opt(args, "--codecs", codecs)
    _opt(args, "--dtmf", dtmf)
    _opt(args, "--dtmf-after", dtmf_after)
    _opt(args, "--log-file", log_file)
    _opt(args, "--local-ip", local_ip)
    return args


def caller_recordings(record: Path | str | None, calls: int) -> list[Path]:
    """Where pjsua_caller.py puts its recordings (``STEM-<i>.wav`` when calls > 1)."""
    if record is None:
        return []
    base = Path(record)
    if calls == 1:
        return [base]
    return [base.with_name(f"{base.stem}-{i}{base.suffix or '.wav'}") for i in range(calls)]


async def start_caller(dial: str, **options: Any) -> PeerProcess:
    """Start pjsua_caller.py (options as in ``caller_argv``) and return at once."""
    recordings = caller_recordings(options.get("record"), int(options.get("calls", 1)))
    return await PeerProcess(caller_argv(dial, **options), recordings).start()


async def run_caller(dial: str, *, timeout: float | None = None, **options: Any) -> CallerResult:
    """Run pjsua_caller.py to the end: events, exit code and recording path(s).

    ``timeout`` (default: max_seconds + 15) bounds the whole process, start-up and
    shutdown included; past it the caller is stopped and TimeoutError raised.
    """
    peer = await start_caller(dial, **options)
    limit = timeout if timeout is not None else float(options.get("max_seconds", 60.0)) + 15.0
    return await peer.wait(limit)


async def start_answerer(
    *,
    play: Path | str | None = None,
    record: Path | str | None = None,
    reject: int | None = None,
    ring_seconds: float | None = None,
    hangup_after: float | None = None,
    max_calls: int | None = None,
    max_seconds: float = 120.0,
    local_port: int = 0,
    codecs: str | None = None,
    log_file: Path | str | None = None,
    ready_timeout: float = 15.0,
) -> AnswererProcess:
    """Start pjsua_answerer.py and wait until it listens (its ``sip_port`` is then set)."""
    args = [str(ANSWERER_SCRIPT), "--local-port", str(local_port), "--max-seconds", str(max_seconds)]
    _opt(args, "--play", play)
    _opt(args, "--record", record)
    _opt(args, "--reject", reject)
    _opt(args, "--ring-seconds", ring_seconds)
    _opt(args, "--hangup-after", hangup_after)
    _opt(args, "--max-calls", max_calls)
    _opt(args, "--codecs", codecs)
    _opt(args, "--log-file", log_file)
    recordings = [Path(record)] if record is not None else []
    peer = AnswererProcess(args, recordings)
    await peer.start()
    try:
        ready = await peer.wait_for("ready", timeout=ready_timeout)
    except BaseException:
        await peer.stop()
        raise
    peer.sip_port = int(ready["sip_port"])
    return peer
