"""Child process of the kill -9 test: opens a call, appends an event and a heartbeat,
says "committed" once the journal confirmed them, then waits to be killed.

usage: durability_child.py DATABASE_URL CALL_ID NODE
"""

from __future__ import annotations

import asyncio
import sys

from store_helpers import event

from store.call_record import NewCall
from store.db import create_engine
from store.records import CallRecords


async def main(url: str, call_id: str, node: str) -> None:
    engine = create_engine(url)
    async with CallRecords(engine) as records:
        call = NewCall(id=call_id, sip_call_id="sip-1", caller="+331", did="+332", source="10.0.0.1:5060", node=node)
        await records.open_call(call, [event("arrived", 0)])
        await records.append(call_id, [event("queued", 1)])
        heartbeat = event("heartbeat", 7.5)
        await records.heartbeat([call_id], heartbeat.at, heartbeat.mono)
        print("committed", flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
