"""The disk journal: order, durability, a torn tail after kill -9, progress kept apart."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from store import disk_journal
from store.disk_journal import DONE_FILE, JOURNAL_FILE, DiskJournal, JournalCorrupt

REPO = Path(__file__).resolve().parents[2]


def item(n: int) -> tuple[str, dict[str, Any]]:
    return "append", {"call_id": f"c{n}", "events": [{"kind": "queued", "mono": n + 0.125, "data": {"n": n}}]}


async def opened(directory: Path) -> DiskJournal:
    journal = DiskJournal(directory)
    await journal.open()
    return journal


async def test_entries_come_back_in_order_in_a_new_instance(tmp_path: Path) -> None:
    writer = await opened(tmp_path)
    assert await writer.append([item(1), item(2)]) == [1, 2]
    assert await writer.append([item(3)]) == [3]
    await writer.close()

    reader = DiskJournal(tmp_path)
    left = await reader.open()
    assert [(e.seq, e.op, e.args) for e in left] == [(n, *item(n)) for n in (1, 2, 3)]
    assert reader.pending == 3
    assert [e.seq for e in reader.entries(2)] == [1, 2]
    await reader.close()


async def test_an_append_returns_after_its_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.fstat(fd).st_size)

    monkeypatch.setattr(disk_journal.os, "fsync", fsync)
    journal = await opened(tmp_path)
    await journal.append([item(1)])
    size = (tmp_path / JOURNAL_FILE).stat().st_size
    # The file, at its full size, and its new directory entry were synced before append returned.
    assert size in synced
    assert len(synced) >= 2
    await journal.close()


async def test_what_an_append_acknowledged_survives_kill9_of_the_writer(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from store.disk_journal import DiskJournal

        async def main():
            journal = DiskJournal(Path({str(tmp_path)!r}))
            await journal.open()
            for n in range(1, 51):
                await journal.append([("heartbeat", {{"call_ids": [str(n)], "at": "x", "mono": n}})])
            print("acknowledged 50", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush of anything

        asyncio.run(main())
        """
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await child.communicate()
    assert child.returncode == -9, err.decode()
    assert out.decode().strip() == "acknowledged 50"

    reader = DiskJournal(tmp_path)
    left = await reader.open()
    assert [e.seq for e in left] == list(range(1, 51))
    assert [e.args["mono"] for e in left] == list(range(1, 51))
    await reader.close()


async def test_a_torn_last_line_is_ignored_and_cut_off(tmp_path: Path) -> None:
    writer = await opened(tmp_path)
    await writer.append([item(1), item(2)])
    await writer.close()
    path = tmp_path / JOURNAL_FILE
    whole = path.read_bytes()
    # A crash mid-append: the third line only half written.
    third = whole.splitlines(keepends=True)[1].replace(b'"c2"', b'"c3"')
    path.write_bytes(whole + third[: len(third) // 2])

    journal = DiskJournal(tmp_path)
    assert [e.seq for e in await journal.open()] == [1, 2]
    assert path.read_bytes() == whole, "the torn tail is cut off"
    # The next append starts on a clean line, numbered after the last valid one.
    assert await journal.append([item(3)]) == [3]
    await journal.close()

    again = DiskJournal(tmp_path)
    assert [e.seq for e in await again.open()] == [1, 2, 3]
    await again.close()


async def test_a_last_line_with_a_wrong_checksum_is_a_torn_tail_too(tmp_path: Path) -> None:
    writer = await opened(tmp_path)
    await writer.append([item(1), item(2)])
    await writer.close()
    path = tmp_path / JOURNAL_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[1].replace(b'"c2"', b'"cX"'))

    journal = DiskJournal(tmp_path)
    assert [e.seq for e in await journal.open()] == [1]
    await journal.close()


async def test_damage_before_valid_entries_refuses_to_open(tmp_path: Path) -> None:
    writer = await opened(tmp_path)
    await writer.append([item(1), item(2), item(3)])
    await writer.close()
    path = tmp_path / JOURNAL_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[1].replace(b'"c2"', b'"cX"') + lines[2])

    with pytest.raises(JournalCorrupt):
        await DiskJournal(tmp_path).open()


async def test_done_entries_are_forgotten_durably_and_numbers_keep_rising(tmp_path: Path) -> None:
    journal = await opened(tmp_path)
    await journal.append([item(1), item(2), item(3)])
    await journal.done(2)
    assert [e.seq for e in journal.entries(10)] == [3]
    assert (tmp_path / DONE_FILE).read_text().strip() == "2"
    # A new instance (a crash now) replays only what is not done.
    other = DiskJournal(tmp_path)
    assert [e.seq for e in await other.open()] == [3]
    await other.close()

    await journal.done(3)
    assert journal.pending == 0
    assert not (tmp_path / JOURNAL_FILE).exists(), "an empty journal leaves no file"
    assert await journal.append([item(4)]) == [4]
    await journal.close()

    last = DiskJournal(tmp_path)
    assert [e.seq for e in await last.open()] == [4]
    assert await last.append([item(5)]) == [5]
    await last.close()


async def test_an_argument_that_is_not_json_takes_no_number(tmp_path: Path) -> None:
    journal = await opened(tmp_path)
    with pytest.raises(TypeError):
        await journal.append([("append", {"at": object()})])
    assert journal.pending == 0
    assert await journal.append([item(1)]) == [1]
    await journal.close()
