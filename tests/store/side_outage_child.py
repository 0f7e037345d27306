"""Child process of the kill -9 test in test_side_writes_outage: an agent's state spans and a recording's
row go on into the disk journal while the database is away; says "buffered N" once those writes are
fsynced, then waits to be killed.

usage: side_outage_child.py DATABASE_URL JOURNAL_DIR CALL_ID NODE
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from outage_tools import Outage
from store_helpers import T0, event

from store.agent_states import AgentStateLog
from store.call_record import NewCall
from store.db import create_engine
from store.disk_journal import DiskJournal
from store.recordings import Recording, Recordings
from store.records import CallRecords


async def main(url: str, journal_dir: str, call_id: str, node: str) -> None:
    engine = create_engine(url)
    records = CallRecords(engine, disk_journal=DiskJournal(Path(journal_dir)))
    await records.start()
    states = AgentStateLog(engine, node, journal=records.journal)
    await states.start()
    call = NewCall(
        id=call_id, sip_call_id="sip-1", caller="+331", did="+332", source="10.0.0.1:5060", client_id="acme", node=node
    )
    await records.open_call(call, [event("arrived", 0)])
    states.changed("ana", "available", None, T0)
    await states.flush()
    Outage(records.journal.sync_engine).down = True
    states.changed("ana", "ringing", None, T0 + timedelta(seconds=5))
    states.changed("ana", "on_call", None, T0 + timedelta(seconds=6))
    await states.flush()
    states.checkpoint(T0 + timedelta(seconds=9))
    await states.flush()
    recording = Recording(
        call_id=call_id,
        client_id="acme",
        file=f"2026/03/01/{call_id}.ogg",
        media_type="audio/ogg",
        duration_ms=4000,
        size=1234,
        started_by="policy",
        stored_at=T0 + timedelta(seconds=8),
        expires_at=T0 + timedelta(days=90),
    )
    await Recordings(engine, records.journal).add(recording)
    assert records.buffering
    print(f"buffered {records.buffered}", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
