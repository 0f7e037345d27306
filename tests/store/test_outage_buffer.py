"""The replayer: entries are marked done only once the database committed them; a refused one is set aside."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from outage_tools import unreachable_error
from store_helpers import T0

from store.disk_journal import DONE_FILE, SET_ASIDE_FILE, DiskJournal
from store.outage_buffer import OutageBuffer

Committed = list[int]


def heartbeat(mono: float) -> tuple[str, dict[str, Any]]:
    return "heartbeat", {"call_ids": ["a" * 32], "at": T0.isoformat(), "mono": mono}


async def left_by_a_crash(directory: Path, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
    journal = DiskJournal(directory)
    await journal.open()
    await journal.append(items)
    await journal.close()


def done_mark(directory: Path) -> int:
    path = directory / DONE_FILE
    return int(path.read_text()) if path.exists() else 0


async def test_entries_are_done_only_after_their_commit(tmp_path: Path) -> None:
    await left_by_a_crash(tmp_path, [heartbeat(1.0), heartbeat(2.0), heartbeat(3.0)])
    attempts: list[int] = []
    done_when_committing: list[int] = []

    async def run(writes: Sequence[Callable[..., Any]]) -> list[Any]:
        attempts.append(len(writes))
        if len(attempts) <= 2:
            raise unreachable_error("still down")
        done_when_committing.append(done_mark(tmp_path))
        return [None] * len(writes)

    buffer = OutageBuffer(DiskJournal(tmp_path), retry_min_s=0.05, retry_max_s=0.05)
    await buffer.open(run)
    assert buffer.active, "the database did not answer at start: still buffering"
    assert buffer.disk.pending == 3
    # A failed attempt marks nothing done: another run would find all three.
    assert done_mark(tmp_path) == 0
    for _ in range(200):
        if not buffer.active:
            break
        await asyncio.sleep(0.01)
    await buffer.close()

    assert not buffer.active
    assert attempts == [3, 3, 3]
    assert done_when_committing == [0], "nothing was marked done before the commit"
    assert done_mark(tmp_path) == 3
    assert buffer.stats.replayed == 3
    again = DiskJournal(tmp_path)
    assert await again.open() == []
    await again.close()


async def test_a_refused_entry_is_set_aside_and_holds_nothing_up(tmp_path: Path) -> None:
    await left_by_a_crash(tmp_path, [heartbeat(1.0), ("no_such_write", {}), heartbeat(3.0)])
    committed: list[int] = []

    async def run(writes: Sequence[Callable[..., Any]]) -> list[Any]:
        committed.append(len(writes))
        return [None] * len(writes)

    buffer = OutageBuffer(DiskJournal(tmp_path))
    await buffer.open(run)
    await buffer.close()

    assert not buffer.active
    assert committed == [1, 1], "the two good ones, one by one around the bad one"
    assert (buffer.stats.replayed, buffer.stats.refused) == (2, 1)
    assert "no_such_write" in (tmp_path / SET_ASIDE_FILE).read_text()
    assert done_mark(tmp_path) == 3
