"""Registration takeovers: while a line's overflow is active, the bridge is registered as that line.

The registrar then sends the line's calls to the bridge; when the window
ends (or the client admin switches overflow off) the bridge unregisters
(`Expires: 0`), and the client's own phones get the calls again.

The first media worker holds the registrations (pjsua refreshes them before
they expire and answers digest challenges and 423 Interval Too Brief on its
own). This module decides when to register and unregister, follows what the
registrar answers, says it in plain words for the client admin, and retries
failures with backoff: a registrar that refuses our credentials gets one
attempt every few minutes, not a storm.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from dialplan.clock import Clock
from telephony.dispatcher import WorkerRequests
from telephony.overflow_control import OverflowControl

log = structlog.get_logger("telephony.registration")

# The worker that registers: with one worker it owns the public SIP address.
REGISTERING_WORKER = 0
# How often the windows are looked at again; a change by the client admin wakes it at once.
RECONCILE_S = 1.0
FIRST_RETRY_S = 30.0
MAX_RETRY_S = 600.0


def plain_words(status: int, reason: str) -> str:
    """What a registrar's answer means, for a client admin."""
    if status in (401, 407):
        return "The registrar refused the credentials."
    if status == 403:
        return "The registrar forbids this line to register."
    if status == 404:
        return "The registrar does not know this line."
    if status == 423:
        return "The registrar wants a longer registration interval."
    if status in (408, 0) or status >= 700:
        return "The registrar did not answer."
    if status == 503:
        return "The registrar is unavailable."
    return f"The registrar answered {status} {reason}."


@dataclass
class _Want:
    # Whether a REGISTER (not yet undone) was asked of the worker.
    requested: bool = False
    retry_at: datetime | None = None
    backoff_s: float = FIRST_RETRY_S
    # Registrations asked for since the start: for tests and the page ("attempts").
    attempts: int = 0


class Registrations:
    def __init__(self, *, overflow: OverflowControl, workers: WorkerRequests, clock: Clock) -> None:
        self.overflow = overflow
        self.workers = workers
        self.clock = clock
        self._want = {line_id: _Want() for line_id in overflow.registrations}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        overflow.watchers.append(lambda _line: self._wake.set())

    def start(self) -> None:
        if self._want:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # The worker unregisters as it stops: the client's phones get their calls back.

    async def _run(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception:
                log.exception("registration_reconcile_failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RECONCILE_S)

    async def reconcile(self) -> None:
        now = self.clock.now()
        current = self.overflow.current()
        for line_id, want in self._want.items():
            overflow = current[line_id]
            active = overflow.active(now)
            if active and not want.requested and (want.retry_at is None or want.retry_at <= now):
                registrar = overflow.registrar
                assert registrar is not None
                want.requested = True
                want.attempts += 1
                body = {
                    "key": line_id,
                    "registrar_uri": registrar.uri,
                    "aor": registrar.aor,
                    "username": registrar.username,
                    "password": registrar.password,
                    "realm": registrar.realm,
                    "expires_s": registrar.expires_s,
                }
                log.info("registering", line=line_id, registrar=registrar.uri, attempt=want.attempts)
                await self._request("register", body, line_id)
            elif not active and want.requested:
                want.requested = False
                want.retry_at = None
                want.backoff_s = FIRST_RETRY_S
                log.info("unregistering", line=line_id)
                await self._request("unregister", {"key": line_id}, line_id)

    async def _request(self, kind: str, body: dict[str, Any], line_id: str) -> None:
        try:
            await self.workers.request(REGISTERING_WORKER, kind, body, timeout=5.0)
        except Exception as exc:
            self._failed(line_id, f"The bridge could not {kind}: {exc}")

    def on_event(self, body: dict[str, Any]) -> None:
        """A RegistrationChanged from the worker."""
        line_id = str(body.get("key"))
        status = self.overflow.registrations.get(line_id)
        want = self._want.get(line_id)
        if status is None or want is None:
            return
        registered, code, reason = bool(body.get("registered")), int(body.get("status", 0)), str(body.get("reason"))
        now = self.clock.now()
        if registered != status.registered:
            status.since = now
        status.registered = registered
        if registered:
            want.backoff_s = FIRST_RETRY_S
            want.retry_at = None
            log.info("registered", line=line_id, expires_s=body.get("expires_s"))
        elif want.requested and code >= 300:
            self._failed(line_id, plain_words(code, reason))
        else:
            log.info("unregistered", line=line_id, status=code)

    def _failed(self, line_id: str, words: str) -> None:
        status = self.overflow.registrations[line_id]
        want = self._want[line_id]
        now = self.clock.now()
        status.last_error, status.last_error_at = words, now
        status.registered = False
        # Asked again after the backoff, if the window is still active then.
        want.requested = False
        want.retry_at = now + timedelta(seconds=want.backoff_s)
        log.warning("registration_failed", line=line_id, why=words, retry_in_s=want.backoff_s)
        want.backoff_s = min(want.backoff_s * 2, MAX_RETRY_S)

    def on_worker_ready(self, worker: int) -> None:
        """A replaced worker holds no registration: register again what should be."""
        if worker != REGISTERING_WORKER:
            return
        for line_id, want in self._want.items():
            if want.requested:
                want.requested = False
                self.overflow.registrations[line_id].registered = False
        self._wake.set()

    def attempts(self, line_id: str) -> int:
        return self._want[line_id].attempts
