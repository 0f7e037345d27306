"""The control process's pool of media workers: start, watch, replace.

Each worker gets one end of a socketpair at spawn time (see `ipc`). The
pool notices a death from the channel's EOF and the process exit, tells
its handler which worker was lost (so that worker's calls are closed as
interrupted), and starts a replacement on the same SIP and RTP ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from telephony.ipc import Body, Channel, ChannelClosed
from telephony.worker import WorkerConfig

log = structlog.get_logger("telephony.pool")


class PoolHandler(Protocol):
    async def on_invite(self, worker: int, body: Body) -> Body: ...

    def on_worker_event(self, worker: int, kind: str, body: Body) -> None: ...

    async def on_worker_lost(self, worker: int) -> None: ...

    async def on_worker_ready(self, worker: int, generation: int) -> None: ...


class WorkerStartError(RuntimeError):
    """A worker could not start; the message is the worker's own reason."""


@dataclass
class WorkerSlot:
    config: WorkerConfig
    generation: int = 0
    process: asyncio.subprocess.Process | None = None
    channel: Channel | None = None
    state: str = "stopped"
    started_at: float = 0.0
    restarts: int = 0
    last_error: str | None = None
    ready: asyncio.Future[Body] | None = None
    watcher: asyncio.Task[None] | None = None
    recent_deaths: list[float] = field(default_factory=list)

    @property
    def index(self) -> int:
        return self.config.index


# A worker that keeps dying is restarted ever more slowly, up to this.
MAX_RESTART_DELAY_S = 5.0
FIRST_RESTART_DELAY_S = 0.1
START_RETRY_S = 0.5


class WorkerPool:
    def __init__(
        self,
        configs: Sequence[WorkerConfig],
        handler: PoolHandler,
        *,
        start_timeout_s: float = 15.0,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
    ) -> None:
        self.slots = [WorkerSlot(config) for config in configs]
        self._handler = handler
        self._start_timeout_s = start_timeout_s
        self._python = python
        self._env = env
        self._stopping = False
        self._started = False

    async def start(self) -> None:
        """Start every worker and wait until all are ready; raise if one can't start in time.

        A worker that fails to start is tried again until the start timeout:
        after a crash, the previous workers may still hold their ports for a
        moment while they hang up and exit.
        """
        results = await asyncio.gather(*(self._start_slot(slot) for slot in self.slots))
        failures = [f"worker {slot.index}: {error}" for slot, error in zip(self.slots, results, strict=True) if error]
        if failures:
            await self.stop()
            raise WorkerStartError("; ".join(failures))
        self._started = True

    async def _start_slot(self, slot: WorkerSlot) -> str | None:
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            await self._spawn(slot)
            assert slot.ready is not None
            try:
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    await slot.ready
                return None
            except (WorkerStartError, TimeoutError, ChannelClosed) as exc:
                error = str(exc) or "did not become ready"
            if slot.watcher is not None:
                with contextlib.suppress(Exception):
                    await slot.watcher
            if time.monotonic() + START_RETRY_S >= deadline:
                return error
            log.warning("worker_start_retry", worker=slot.index, error=error)
            await asyncio.sleep(START_RETRY_S)

    async def _spawn(self, slot: WorkerSlot) -> None:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        slot.generation += 1
        slot.state = "starting"
        slot.ready = asyncio.get_running_loop().create_future()
        try:
            process = await asyncio.create_subprocess_exec(
                self._python,
                "-m",
                "hotline",
                "worker",
                "--ipc-fd",
                str(child_sock.fileno()),
                "--config",
                slot.config.to_json(),
                pass_fds=(child_sock.fileno(),),
                env=self._env,
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            child_sock.close()
        slot.process = process
        slot.started_at = time.monotonic()
        reader, writer = await asyncio.open_unix_connection(sock=parent_sock)
        index = slot.index
        slot.channel = Channel(
            reader,
            writer,
            on_request=lambda kind, body: self._on_request(index, kind, body),
            on_event=lambda kind, body: self._on_event(slot, kind, body),
            name=f"pool-worker-{index}",
        )
        slot.watcher = asyncio.create_task(self._watch(slot, slot.channel, process))
        log.info("worker_spawned", worker=index, pid=process.pid, generation=slot.generation)

    async def _on_request(self, index: int, kind: str, body: Body) -> Body:
        if kind == "invite":
            return await self._handler.on_invite(index, body)
        raise ValueError(f"unknown request {kind!r}")

    def _on_event(self, slot: WorkerSlot, kind: str, body: Body) -> None:
        if kind == "ready":
            slot.state = "ready"
            if slot.ready is not None and not slot.ready.done():
                slot.ready.set_result(body)
            log.info("worker_ready", worker=slot.index, pid=body.get("pid"), sip_port=body.get("sip_port"))
            task = asyncio.create_task(self._handler.on_worker_ready(slot.index, slot.generation))
            task.add_done_callback(_log_task_failure)
        elif kind == "failed":
            slot.last_error = str(body.get("error"))
            if slot.ready is not None and not slot.ready.done():
                slot.ready.set_exception(WorkerStartError(slot.last_error))
        else:
            self._handler.on_worker_event(slot.index, kind, body)

    async def _watch(self, slot: WorkerSlot, channel: Channel, process: asyncio.subprocess.Process) -> None:
        await channel.run()
        # EOF: the worker is gone or going. Don't wait forever for a wedged one.
        try:
            async with asyncio.timeout(3):
                code = await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            code = await process.wait()
        was_ready = slot.state == "ready"
        slot.state = "dead"
        if slot.ready is not None and not slot.ready.done():
            slot.ready.set_exception(WorkerStartError(slot.last_error or f"exited with code {code}"))
        if self._stopping or not (self._started or was_ready):
            # Stopping, or never started: start() decides about retries.
            slot.state = "stopped"
            return
        log.error("worker_died", worker=slot.index, pid=process.pid, exit_code=code)
        await self._handler.on_worker_lost(slot.index)
        await asyncio.sleep(self._restart_delay(slot, was_ready))
        if self.stopping:
            return
        slot.restarts += 1
        await self._spawn(slot)

    @staticmethod
    def _restart_delay(slot: WorkerSlot, was_ready: bool) -> float:
        now = time.monotonic()
        slot.recent_deaths = [t for t in slot.recent_deaths if now - t < 60] + [now]
        if was_ready and len(slot.recent_deaths) == 1:
            return FIRST_RESTART_DELAY_S
        return min(MAX_RESTART_DELAY_S, FIRST_RESTART_DELAY_S * (1 << len(slot.recent_deaths)))

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def request(self, index: int, kind: str, body: Body, timeout: float = 5.0) -> Body:
        channel = self.slots[index].channel
        if channel is None or channel.closed:
            raise ChannelClosed(f"worker {index} is not running")
        return await channel.request(kind, body, timeout)

    async def drain(self, timeout: float) -> None:
        """Refuse new calls everywhere and let active ones finish, up to `timeout`."""

        async def drain_one(slot: WorkerSlot) -> None:
            with contextlib.suppress(ChannelClosed, TimeoutError):
                await self.request(slot.index, "drain", {"timeout": timeout}, timeout=timeout + 10)

        self._stopping = True
        await asyncio.gather(*(drain_one(slot) for slot in self.slots))

    async def stop(self) -> None:
        self._stopping = True
        for slot in self.slots:
            if slot.channel is not None and not slot.channel.closed:
                with contextlib.suppress(ChannelClosed, TimeoutError):
                    await slot.channel.request("stop", {}, timeout=2)
        for slot in self.slots:
            await self._reap(slot)

    async def _reap(self, slot: WorkerSlot) -> None:
        process = slot.process
        if process is None:
            return
        if process.returncode is None:
            try:
                async with asyncio.timeout(8):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGKILL)
                await process.wait()
        if slot.watcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await slot.watcher
        if slot.channel is not None:
            await slot.channel.close()
        slot.state = "stopped"

    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {
                "index": slot.index,
                "state": slot.state,
                "pid": slot.process.pid if slot.process else None,
                "sip_port": slot.config.adapter.sip_port,
                "capacity": slot.config.adapter.capacity,
                "generation": slot.generation,
                "restarts": slot.restarts,
                "uptime_s": round(now - slot.started_at, 1) if slot.state == "ready" else None,
                "last_error": slot.last_error,
            }
            for slot in self.slots
        ]

    def pid_of(self, index: int) -> int | None:
        process = self.slots[index].process
        return process.pid if process is not None else None


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("pool_task_failed", error=repr(task.exception()))
