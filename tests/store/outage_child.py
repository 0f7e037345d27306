"""Child process of the kill -9 during an outage test: opens a call, loses the database, goes on
recording into the disk journal, says "buffered N" once those writes are fsynced, then waits to be killed.

usage: outage_child.py DATABASE_URL JOURNAL_DIR CALL_ID NODE
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from outage_tools import Outage
from store_helpers import event

from store.call_record import NewCall
from store.db import create_engine
from store.disk_journal import DiskJournal
from store.records import CallRecords


async def main(url: str, journal_dir: str, call_id: str, node: str) -> None:
    engine = create_engine(url)
    records = CallRecords(engine, disk_journal=DiskJournal(Path(journal_dir)))
    await records.start()
    call = NewCall(id=call_id, sip_call_id="sip-1", caller="+331", did="+332", source="10.0.0.1:5060", node=node)
    await records.open_call(call, [event("arrived", 0)])
    Outage(records.journal.sync_engine).down = True
    await records.append(call_id, [event("queued", 1)])
    await records.append(call_id, [event("offered", 3, agent="ana"), event("answered", 4, agent="ana")])
    heartbeat = event("heartbeat", 9.5)
    await records.heartbeat([call_id], heartbeat.at, heartbeat.mono)
    second = NewCall(id="e" * 32, sip_call_id="sip-2", caller="+333", did="+332", source="10.0.0.1:5060", node=node)
    await records.open_call(second, [event("arrived", 2), event("queued", 2.5)])
    assert records.buffering
    print(f"buffered {records.buffered}", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
