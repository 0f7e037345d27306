"""Durable record appends per second: one commit per event vs group commit.

usage: .venv/bin/python bench/record_journal.py [DIRECTORY_FOR_SQLITE] [--postgres URL]
The SQLite file must be on a real disk for the numbers to mean anything (not tmpfs).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "store"))

from store_helpers import event

from store.call_record import NewCall
from store.db import create_engine, migrate
from store.records import CallRecords

CALLS = 50


async def measure(url: str, sequential: int, concurrent: int) -> None:
    engine = create_engine(url)
    await migrate(engine)
    async with CallRecords(engine) as records:
        calls = [NewCall(sip_call_id=f"s{n}", caller="+1", did="+2", source="198.51.100.1:5060") for n in range(CALLS)]
        for call in calls:
            await records.open_call(call, [event("arrived", 0)])

        before = records.journal.stats.transactions
        started = time.perf_counter()
        for n in range(sequential):
            await records.append(calls[n % CALLS].id, [event("offered", n, agent="a")])
        one_by_one = time.perf_counter() - started
        print(
            f"  one commit per event: {sequential / one_by_one:8.0f} events/s "
            f"({records.journal.stats.transactions - before} commits for {sequential} events)"
        )

        before = records.journal.stats.transactions
        started = time.perf_counter()
        await asyncio.gather(
            *(records.append(calls[n % CALLS].id, [event("offered", n, agent="a")]) for n in range(concurrent))
        )
        grouped = time.perf_counter() - started
        commits = records.journal.stats.transactions - before
        print(
            f"  group commit:         {concurrent / grouped:8.0f} events/s "
            f"({commits} commits for {concurrent} events, {concurrent / commits:.0f} per commit, "
            f"largest batch {records.journal.stats.largest_batch})"
        )
    await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", nargs="?", default=None)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--sequential", type=int, default=500)
    parser.add_argument("--concurrent", type=int, default=10_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.directory) as directory:
        print(f"SQLite (WAL, synchronous=FULL) in {directory}:")
        await measure(f"sqlite:///{Path(directory) / 'measure.db'}", args.sequential, args.concurrent)

    import asyncpg  # type: ignore[import-untyped]

    schema = f"measure_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(args.postgres)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        print(f"PostgreSQL {args.postgres} (schema {schema}):")
        await measure(f"{args.postgres}?search_path={schema}", args.sequential, args.concurrent)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
