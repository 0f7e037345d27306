"""A local, append-only journal of the writes the database could not take yet.

One line per entry, ``<crc32 of the JSON, 8 hex digits> <JSON>\\n``, the JSON
holding the entry's sequence number, operation name and (JSON-safe)
arguments. An append returns once its lines are fsynced (and the directory
too, when the file is new): an entry is durable before anyone is told so.

A crash mid-append leaves at most a torn tail: lines without their newline,
checksum or JSON. Opening the journal finds the first bad line; if nothing
valid follows, it is a torn tail, ignored and cut off so the next append
starts on a clean line; a bad line *before* valid ones is damage nobody
knows how to repair, and opening fails rather than skip entries.

Progress lives apart, in ``done``: the highest sequence number the database
has committed, replaced atomically. Entries up to it are skipped on opening;
when none is left the journal file is removed. Sequence numbers keep rising
across removals and restarts.

All file work runs in one thread of the journal's own, in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

JOURNAL_FILE = "records.jsonl"
DONE_FILE = "done"
SET_ASIDE_FILE = "refused.jsonl"


class JournalCorrupt(RuntimeError):
    """The journal file is damaged before its end: entries can't be trusted, nor skipped."""


@dataclass(frozen=True)
class JournalEntry:
    seq: int
    op: str
    args: Mapping[str, Any]


class DiskJournal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / JOURNAL_FILE
        self._done_path = directory / DONE_FILE
        # Durable and not yet done, oldest first.
        self._entries: deque[JournalEntry] = deque()
        self._in_flight = 0
        self._next_seq = 1
        self._fd: int | None = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="disk-journal")
        self._appended: asyncio.Event | None = None
        self._opened = False

    @property
    def pending(self) -> int:
        """Entries not yet done, those still being written included."""
        return len(self._entries) + self._in_flight

    def entries(self, limit: int) -> list[JournalEntry]:
        """The oldest durable entries not yet done (at most `limit`)."""
        return [self._entries[n] for n in range(min(limit, len(self._entries)))]

    async def open(self) -> list[JournalEntry]:
        """Read what a previous run left (cutting a torn tail off); return its entries not yet done."""
        if self._opened:
            raise RuntimeError("disk journal already open")
        self._appended = asyncio.Event()
        entries, last_seq = await self._in_thread(self._load)
        self._entries.extend(entries)
        self._next_seq = last_seq + 1
        self._opened = True
        return entries

    async def append(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[int]:
        """Append (operation, arguments) entries in order; return their sequence numbers once fsynced."""
        if not self._opened:
            raise RuntimeError("disk journal not open")
        if not items:
            return []
        # Encoded before numbers are taken: an argument that isn't JSON fails here, costing nothing.
        first = self._next_seq
        entries = [JournalEntry(first + n, op, args) for n, (op, args) in enumerate(items)]
        data = b"".join(_line(entry) for entry in entries)
        self._next_seq += len(entries)
        self._in_flight += len(entries)
        try:
            await self._in_thread(self._write, data)
        finally:
            self._in_flight -= len(entries)
        self._entries.extend(entries)
        assert self._appended is not None
        self._appended.set()
        return [entry.seq for entry in entries]

    async def wait_appended(self) -> None:
        """Until the next append is durable."""
        assert self._appended is not None
        self._appended.clear()
        await self._appended.wait()

    async def done(self, through: int) -> None:
        """Entries up to `through` are committed to the database: forget them, durably."""
        remove_file = self._in_flight == 0 and (not self._entries or self._entries[-1].seq <= through)
        await self._in_thread(self._mark_done, through, remove_file)
        while self._entries and self._entries[0].seq <= through:
            self._entries.popleft()

    async def set_aside(self, entry: JournalEntry, reason: str) -> None:
        """Keep an entry the database refused (with why) where an operator can read it."""
        record = {"seq": entry.seq, "op": entry.op, "args": entry.args, "refused": reason}
        await self._in_thread(self._set_aside, _encode(record) + b"\n")

    async def close(self) -> None:
        await self._in_thread(self._close_file)
        self._io.shutdown(wait=True)

    # --- in the journal's thread --------------------------------------------------------------

    async def _in_thread(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, work, *args)

    def _load(self) -> tuple[list[JournalEntry], int]:
        self.directory.mkdir(parents=True, exist_ok=True)
        done = int(self._done_path.read_text().strip() or 0) if self._done_path.exists() else 0
        if not self.path.exists():
            return [], done
        data = self.path.read_bytes()
        entries: list[JournalEntry] = []
        previous = 0
        offset = 0
        while offset < len(data):
            end = data.find(b"\n", offset)
            entry = _parse(data[offset:end]) if end >= 0 else None
            if entry is None:
                self._cut_torn_tail(data, offset)
                break
            if entry.seq <= previous:
                raise JournalCorrupt(f"{self.path}: sequence {entry.seq} after {previous}")
            previous = entry.seq
            if entry.seq > done:
                entries.append(entry)
            offset = end + 1
        return entries, max(done, previous)

    def _cut_torn_tail(self, data: bytes, offset: int) -> None:
        for line in data[offset:].split(b"\n")[1:]:
            if _parse(line) is not None:
                raise JournalCorrupt(f"{self.path}: damaged entry at byte {offset}, valid entries after it")
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, offset)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            if created:
                _fsync_dir(self.directory)
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)
        except BaseException:
            # Disk full, I/O error: leave no partial line for the next append to follow.
            os.ftruncate(self._fd, start)
            raise

    def _mark_done(self, through: int, remove_file: bool) -> None:
        temporary = self._done_path.with_suffix(".tmp")
        with temporary.open("w") as file:
            file.write(f"{through}\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self._done_path)
        if remove_file:
            self._close_file()
            self.path.unlink(missing_ok=True)
        _fsync_dir(self.directory)

    def _set_aside(self, data: bytes) -> None:
        fd = os.open(self.directory / SET_ASIDE_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()


def _line(entry: JournalEntry) -> bytes:
    body = _encode({"seq": entry.seq, "op": entry.op, "args": entry.args})
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _parse(line: bytes) -> JournalEntry | None:
    checksum, _, body = line.partition(b" ")
    try:
        if len(checksum) != 8 or int(checksum, 16) != zlib.crc32(body):
            return None
        document = json.loads(body)
        return JournalEntry(int(document["seq"]), str(document["op"]), dict(document["args"]))
    except (ValueError, KeyError, TypeError):
        return None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
