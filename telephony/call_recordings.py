"""Calls' recordings from the first frame to the purge.

While the call is up the worker writes each side to its own WAV. Once it
is over, off the event loop: webrtcvad reads both sides (the voice figures
go on the call's timeline), both are compressed into one Ogg Opus file
(caller left, agent right), the recording's row is committed with its
expiry (while the database is away, fsynced to the call records' disk
journal and replayed once it is back: store/recordings.py), and only then
do the WAVs go. A purge job deletes files past their client's
retention; files a crash left behind are finished at the next start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from dialplan.clock import Clock
from dialplan.tenant import RecordingPolicy, Tenant
from dialplan.timeline import EventKind, TimelineEvent
from dialplan.voice_analytics import voice_figures
from store.recordings import Recording, Recordings
from store.records import CallRecords
from telephony.recording_codec import MEDIA_TYPE, RecordingFileError, encode_call
from telephony.voice_activity import speech_frames

log = structlog.get_logger("telephony.recordings")

# The worker closes a call's files as its leg goes, a moment after the call ends.
SETTLE_S = 1.5
PURGE_EVERY_S = 3600.0
CALLER_SUFFIX, AGENT_SUFFIX = ".caller.wav", ".agent.wav"

RecordEvents = Callable[[str, Sequence[TimelineEvent]], None]


@dataclass(frozen=True)
class Capture:
    """A recording under way: the two sides' files, and who started it ("policy" or a login)."""

    call_id: str
    client_id: str
    caller: Path
    agent: Path
    started_by: str

    def worker_files(self) -> dict[str, str]:
        return {"caller": str(self.caller), "agent": str(self.agent)}


class CallRecordings:
    def __init__(
        self,
        directory: Path,
        store: Recordings,
        record: RecordEvents,
        tenant: Tenant,
        clock: Clock,
        *,
        settle_s: float = SETTLE_S,
    ) -> None:
        self.directory = directory
        self.store = store
        self.record = record
        self.tenant = tenant
        self.clock = clock
        self.settle_s = settle_s

    def policy(self, client_id: str) -> RecordingPolicy:
        client = self.tenant.clients.get(client_id)
        return RecordingPolicy.OFF if client is None else client.recording

    def capture(self, call_id: str, client_id: str, started_by: str) -> Capture:
        base = self.directory / "capture"
        return Capture(
            call_id, client_id, base / f"{call_id}{CALLER_SUFFIX}", base / f"{call_id}{AGENT_SUFFIX}", started_by
        )

    def path(self, recording: Recording) -> Path:
        return self.directory / recording.file

    async def finish(self, capture: Capture, *, settle: bool = True) -> Recording | None:
        """Analyse, compress and store a finished call's recording; None if there was nothing to keep."""
        if settle:
            await asyncio.sleep(self.settle_s)
        now = self.clock.now()
        relative = Path(now.strftime("%Y/%m/%d")) / f"{capture.call_id}.ogg"
        try:
            figures, encoded = await asyncio.to_thread(self._compress, capture, self.directory / relative)
        except (OSError, RecordingFileError, ValueError) as exc:
            # The WAVs stay where they are, for the next start's recovery or a person.
            log.warning("recording_not_stored", call_id=capture.call_id, error=str(exc))
            return None
        client = self.tenant.clients.get(capture.client_id)
        days = client.recording_retention_days if client is not None else 90
        recording = Recording(
            call_id=capture.call_id,
            client_id=capture.client_id,
            file=relative.as_posix(),
            media_type=MEDIA_TYPE,
            duration_ms=encoded.duration_ms,
            size=encoded.size,
            started_by=capture.started_by,
            stored_at=now,
            expires_at=now + timedelta(days=days),
        )
        try:
            await self.store.add(recording)
        except Exception as exc:
            # Neither committed nor buffered: the WAVs stay for the next start's recovery, the
            # compressed copy goes (a file no row names could be neither found nor purged).
            log.error("recording_row_not_stored", call_id=capture.call_id, error=repr(exc))
            await asyncio.to_thread(_unlink, self.directory / relative)
            return None
        await asyncio.to_thread(_unlink, capture.caller, capture.agent)
        self.record(
            capture.call_id,
            [
                self._event(EventKind.VOICE_ANALYSED, **figures),
                self._event(
                    EventKind.RECORDING_STORED,
                    file=recording.file,
                    duration_ms=recording.duration_ms,
                    size=recording.size,
                    expires_at=recording.expires_at.isoformat(),
                ),
            ],
        )
        log.info("recording_stored", call_id=capture.call_id, duration_ms=encoded.duration_ms, size=encoded.size)
        return recording

    @staticmethod
    def _compress(capture: Capture, out: Path) -> tuple[dict[str, Any], Any]:
        caller, agent = speech_frames(capture.caller), speech_frames(capture.agent)
        out.parent.mkdir(parents=True, exist_ok=True)
        encoded = encode_call(capture.caller, capture.agent, out)
        return voice_figures(caller, agent).to_json(), encoded

    async def purge(self) -> int:
        """Delete every recording past its retention; the row stays, marked purged (the audit refers to it)."""
        purged = 0
        while batch := await self.store.expired(self.clock.now()):
            for recording in batch:
                await asyncio.to_thread(_unlink, self.path(recording))
                await self.store.mark_purged(recording.call_id, self.clock.now())
                purged += 1
        if purged:
            log.info("recordings_purged", count=purged)
        return purged

    async def purge_forever(self, every_s: float = PURGE_EVERY_S) -> None:
        while True:
            try:
                await self.purge()
            except Exception as exc:  # the database may be away: try again next time
                log.warning("recording_purge_failed", error=str(exc))
            await asyncio.sleep(every_s)

    async def recover(self, records: CallRecords) -> int:
        """Finish recordings a crash left as WAVs: at start, before any call, so none is still being written."""
        base = self.directory / "capture"
        sides = await asyncio.to_thread(lambda: sorted(base.glob(f"*{CALLER_SUFFIX}")) if base.is_dir() else [])
        finished = 0
        for caller in sides:
            call_id = caller.name.removesuffix(CALLER_SUFFIX)
            record = await records.get_call(call_id)
            if record is None or record.client_id is None:
                log.warning("recording_without_call", file=caller.name)
                continue
            started_by = next(
                (str(e.data.get("by")) for e in record.events if e.kind == EventKind.RECORDING_STARTED), "policy"
            )
            capture = self.capture(call_id, record.client_id, started_by)
            if await self.store.get(call_id) is not None:
                # Stored before the crash, which came before the WAVs went.
                await asyncio.to_thread(_unlink, capture.caller, capture.agent)
                continue
            if not capture.agent.exists():
                log.warning("recording_side_missing", file=capture.agent.name)
                continue
            finished += await self.finish(capture, settle=False) is not None
        return finished

    def _event(self, kind: str, **data: Any) -> TimelineEvent:
        return TimelineEvent(kind, self.clock.now(), self.clock.monotonic(), data)


def _unlink(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
