"""What the call records do while the database is away: buffer to disk, then replay in order.

The journal's writer hands a batch here instead of the database once a write
has failed because the database is unreachable, and from then on every
batch, until the disk journal has been replayed to the last entry: while
anything is buffered, everything is buffered, so no write overtakes an
earlier one. A replayer retries the database (backing off from
`retry_min_s` to `retry_max_s`) and replays the entries oldest first, each
committed before it is marked done. A replayed write the database refuses
(it would have failed its caller, had the database been there) is set aside
in the journal directory and logged; it does not hold the others up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Connection

from store.disk_journal import DiskJournal, JournalEntry
from store.record_ops import RecordWrite
from store.unreachable import unreachable

Run = Callable[[Sequence[Callable[[Connection], Any]]], Awaitable[list[Any]]]

log = structlog.get_logger(__name__)


@dataclass
class OutageStats:
    outages: int = 0
    buffered: int = 0
    replayed: int = 0
    refused: int = 0
    # Of the last outage: from the first buffered write until the last entry was replayed.
    last_outage_s: float | None = None


class OutageBuffer:
    def __init__(
        self, disk: DiskJournal, *, retry_min_s: float = 0.5, retry_max_s: float = 5.0, replay_batch: int = 64
    ) -> None:
        self.disk = disk
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.replay_batch = replay_batch
        self.stats = OutageStats()
        self.since: datetime | None = None
        self.last_error: str | None = None
        self._active = False
        self._started = 0.0
        self._run: Run | None = None
        self._replayer: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        """Writes go to the disk journal (the database is away, or its backlog not replayed yet)."""
        return self._active

    async def open(self, run: Run) -> None:
        """Take what a previous run left in the journal, and replay it now if the database answers."""
        self._run = run
        left = await self.disk.open()
        if not left:
            return
        log.warning("records.journal_left_by_last_run", entries=len(left))
        self._engage(f"{len(left)} entries left by the last run")
        try:
            await self._replay_all()
        except Exception as error:
            if not unreachable(error):
                raise
            self._start_replayer()
            return
        self._settle()

    def unreachable(self, error: BaseException) -> bool:
        return unreachable(error)

    def engage(self, error: BaseException) -> None:
        """A write failed because the database is unreachable: buffer from now on."""
        self._engage(f"{type(error).__name__}: {error}")
        self._start_replayer()

    async def spill(self, writes: Sequence[Callable[[Connection], Any]]) -> None:
        """Append the writes to the disk journal, in order; return once they are fsynced."""
        items = []
        for write in writes:
            if not isinstance(write, RecordWrite):
                raise TypeError(f"only record writes can be buffered, not {write!r}")
            items.append((write.op, write.encode()))
        await self.disk.append(items)
        self.stats.buffered += len(items)

    def offline_result(self, write: Callable[[Connection], Any]) -> Any:
        assert isinstance(write, RecordWrite)
        return write.offline()

    async def close(self) -> None:
        """Stop replaying; what is left stays on disk for the next start."""
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
        await self.disk.close()

    def _engage(self, why: str) -> None:
        self.last_error = why
        if self._active:
            return
        self._active = True
        self._started = time.monotonic()
        self.since = datetime.now(UTC)
        self.stats.outages += 1
        log.warning("records.buffering_locally", why=why, journal=str(self.disk.path))

    def _start_replayer(self) -> None:
        if self._replayer is None or self._replayer.done():
            self._replayer = asyncio.create_task(self._replay_until_empty(), name="records-replayer")

    async def _replay_until_empty(self) -> None:
        delay = self.retry_min_s
        while True:
            try:
                await self._replay_all()
            except Exception as error:
                if unreachable(error):
                    log.info("records.database_still_away", retry_in_s=delay, buffered=self.disk.pending)
                else:
                    log.exception("records.replay_failed", retry_in_s=delay, buffered=self.disk.pending)
                self.last_error = f"{type(error).__name__}: {error}"
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            if self._settle():
                return
            # An append is being written: its entries are next.
            await self.disk.wait_appended()

    async def _replay_all(self) -> None:
        assert self._run is not None
        while entries := self.disk.entries(self.replay_batch):
            writes = [_decoded(entry) for entry in entries]
            if all(write is not None for write in writes):
                try:
                    await self._run([write.replay for write in writes if write is not None])
                except Exception as error:
                    if unreachable(error):
                        raise
                else:
                    await self.disk.done(entries[-1].seq)
                    self.stats.replayed += len(entries)
                    continue
            # One of them is refused: one by one, so that only it is set aside.
            for entry, write in zip(entries, writes, strict=True):
                await self._replay_one(entry, write)

    async def _replay_one(self, entry: JournalEntry, write: RecordWrite | None) -> None:
        assert self._run is not None
        try:
            if write is None:
                raise ValueError(f"entry {entry.seq}: unknown or malformed {entry.op!r}")
            await self._run([write.replay])
        except Exception as error:
            if unreachable(error):
                raise
            self.stats.refused += 1
            log.error("records.replay_refused", seq=entry.seq, op=entry.op, error=f"{type(error).__name__}: {error}")
            await self.disk.set_aside(entry, f"{type(error).__name__}: {error}")
        else:
            self.stats.replayed += 1
        await self.disk.done(entry.seq)

    def _settle(self) -> bool:
        """Back to direct writes if nothing is left to replay (nor being written)."""
        if self.disk.pending:
            return False
        if self._active:
            self._active = False
            self.stats.last_outage_s = time.monotonic() - self._started
            log.warning(
                "records.replayed_all",
                outage_s=round(self.stats.last_outage_s, 3),
                buffered=self.stats.buffered,
                replayed=self.stats.replayed,
                refused=self.stats.refused,
            )
        return True


def _decoded(entry: JournalEntry) -> RecordWrite | None:
    try:
        return RecordWrite.decode(entry.op, entry.args)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
