"""Group commit: every write of the process goes through one writer task.

A write is a plain function of an open connection (it runs inside the batch's
transaction). The writer takes all writes waiting (up to ``max_batch``), runs
them in one transaction, commits, and only then resolves each caller's
future: when ``await journal.write(fn)`` returns, the data is durable. One
commit per batch instead of one per write is what lets a durable
(fsync-on-commit) database keep up with bursts.

A batch that fails is rolled back and each of its writes retried alone, so a
bad write fails only its own caller. Writes must therefore be safe to run
again after a rollback: no side effects outside the connection. They must
not block on anything but the database: on PostgreSQL they run on the event
loop (each statement awaited through the async driver), on SQLite in the
journal's own thread.

Cancelling a caller does not withdraw its write: once queued it is written.

With a fallback, a write that fails because the database is unreachable is
not failed: the fallback takes it, durably, and from then on every batch,
until it says the database has caught up (store/outage_buffer.py). The
writer is the only one deciding where a batch goes, so the order of writes
holds across the switch both ways. With a fallback, a transaction that takes
longer than `timeout_s` counts as unreachable too: a database that hangs must
not hold callers (an answer to a call) any more than one that refuses.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from store.db import blocking_sqlite_engine, writer

T = TypeVar("T")
Write = Callable[[Connection], T]

log = structlog.get_logger(__name__)


class JournalClosed(RuntimeError):
    """The journal is not accepting writes (not started, or stopped)."""


@dataclass
class JournalStats:
    transactions: int = 0
    writes: int = 0
    failed_writes: int = 0
    retried_batches: int = 0
    largest_batch: int = 0
    spilled_writes: int = 0


class Fallback(Protocol):
    """Where writes go while the database can't take them (see OutageBuffer)."""

    @property
    def active(self) -> bool:
        """Every write goes to the fallback."""

    async def open(self, run: Callable[[Sequence[Write[Any]]], Awaitable[list[Any]]]) -> None:
        """Before the first write; `run` commits writes in one transaction (for replaying)."""

    def unreachable(self, error: BaseException) -> bool: ...

    def engage(self, error: BaseException) -> None:
        """A write failed with `error`, an unreachable database: become active."""

    async def spill(self, writes: Sequence[Write[Any]]) -> None:
        """Keep the writes, durably and in order."""

    def offline_result(self, write: Write[Any]) -> Any:
        """What the caller of a spilled write gets back."""

    async def close(self) -> None: ...


@dataclass(eq=False)
class _Pending(Generic[T]):
    write: Write[T]
    future: asyncio.Future[T]


class Journal:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = 256,
        max_queue: int = 4096,
        fallback: Fallback | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        if max_batch < 1 or max_queue < 1:
            raise ValueError(f"max_batch and max_queue must be at least 1, got {max_batch}, {max_queue}")
        self._runner: _Runner = _ThreadRunner(engine) if engine.dialect.name == "sqlite" else _LoopRunner(engine)
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.fallback = fallback
        self._timeout_s = timeout_s if fallback is not None else None
        self.stats = JournalStats()
        self._pending: deque[_Pending[Any]] = deque()
        self._room = asyncio.Semaphore(max_queue)
        self._wake = asyncio.Event()
        self._accepting = False
        # Callers let in before stop() and still waiting for room: stop() waits for them too.
        self._admitted = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def sync_engine(self) -> Engine:
        """The engine whose connections run the batches (for event hooks: commits, statements)."""
        return self._runner.sync_engine

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def queued(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("journal already started")
        if self.fallback is not None:
            await self.fallback.open(self._run_transaction)
        self._accepting = True
        self._task = asyncio.create_task(self._run(), name="store-journal")

    async def stop(self) -> None:
        """Stop accepting writes, write everything already queued, then end the writer."""
        self._accepting = False
        self._wake.set()
        if self._task is not None:
            await asyncio.shield(self._task)
        if not self._closed:
            self._closed = True
            if self.fallback is not None:
                await self.fallback.close()
            await self._runner.close()

    async def write(self, write: Write[T]) -> T:
        """Run `write` in the next batch; return its result once the batch is committed."""
        if not self._accepting:
            raise JournalClosed("the journal is not accepting writes")
        self._admitted += 1
        try:
            await self._room.acquire()
        finally:
            self._admitted -= 1
            # A stopping writer may be waiting only for this caller.
            self._wake.set()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(write, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        batch: list[_Pending[Any]] = []
        try:
            while True:
                if not self._pending:
                    if not self._accepting and self._admitted == 0:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
                for _ in batch:
                    self._room.release()
                if self.fallback is not None and self.fallback.active:
                    await self._spill(batch)
                else:
                    await self._write_batch(batch)
                batch = []
        finally:
            # Only reached with work left if the writer itself was cancelled.
            unfinished = [*batch, *self._pending]
            self._pending.clear()
            for pending in unfinished:
                _fail(pending, JournalClosed("the journal stopped before this write was confirmed"))

    async def _write_batch(self, batch: list[_Pending[Any]]) -> None:
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        try:
            results = await self._transaction(batch)
        except Exception as error:
            if self._diverts(error):
                await self._spill(batch)
                return
            if len(batch) == 1:
                self._failed(batch[0], error)
                return
            self.stats.retried_batches += 1
            log.warning("journal.batch_failed", size=len(batch), error=repr(error))
            for index, pending in enumerate(batch):
                try:
                    (result,) = await self._transaction([pending])
                except Exception as item_error:
                    if self._diverts(item_error):
                        await self._spill(batch[index:])
                        return
                    self._failed(pending, item_error)
                else:
                    _resolve(pending, result)
            return
        for pending, result in zip(batch, results, strict=True):
            _resolve(pending, result)

    async def _transaction(self, batch: list[_Pending[Any]]) -> list[Any]:
        results = await self._run_transaction([pending.write for pending in batch])
        self.stats.writes += len(batch)
        return results

    async def _run_transaction(self, writes: Sequence[Write[Any]]) -> list[Any]:
        async with asyncio.timeout(self._timeout_s):
            results = await self._runner.run(writes)
        self.stats.transactions += 1
        return results

    def _diverts(self, error: Exception) -> bool:
        if self.fallback is None or not self.fallback.unreachable(error):
            return False
        self.fallback.engage(error)
        return True

    async def _spill(self, batch: list[_Pending[Any]]) -> None:
        assert self.fallback is not None
        try:
            await self.fallback.spill([pending.write for pending in batch])
        except Exception as error:
            log.error("journal.spill_failed", size=len(batch), error=repr(error))
            for pending in batch:
                self._failed(pending, error)
            return
        self.stats.spilled_writes += len(batch)
        for pending in batch:
            try:
                result = self.fallback.offline_result(pending.write)
            except Exception as error:
                _fail(pending, error)
            else:
                _resolve(pending, result)

    def _failed(self, pending: _Pending[Any], error: Exception) -> None:
        self.stats.failed_writes += 1
        _fail(pending, error)


class _Runner(Protocol):
    sync_engine: Engine

    async def run(self, writes: Sequence[Write[Any]]) -> list[Any]:
        """Run the writes in one transaction and commit; their results in order."""

    async def close(self) -> None: ...


class _LoopRunner:
    """Statements awaited one by one through the async driver, from the event loop."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = writer(engine)
        self.sync_engine = engine.sync_engine

    async def run(self, writes: Sequence[Write[Any]]) -> list[Any]:
        async with self._engine.begin() as connection:
            return await connection.run_sync(_apply, writes)

    async def close(self) -> None:
        return None


class _ThreadRunner:
    """The whole batch in one hop to a thread of its own, on a blocking SQLite connection.

    aiosqlite pays a thread round trip per statement (about 1 ms each here); a
    batch of a few statements per write would cost more than its single fsync.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.sync_engine = blocking_sqlite_engine(engine.url)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-journal")

    async def run(self, writes: Sequence[Write[Any]]) -> list[Any]:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._run, writes)

    def _run(self, writes: Sequence[Write[Any]]) -> list[Any]:
        with self.sync_engine.begin() as connection:
            return _apply(connection, writes)

    async def close(self) -> None:
        # Connections are closed by the thread that opened them.
        await asyncio.get_running_loop().run_in_executor(self._thread, self.sync_engine.dispose)
        self._thread.shutdown(wait=False)


def _apply(connection: Connection, writes: Sequence[Write[Any]]) -> list[Any]:
    return [write(connection) for write in writes]


def _resolve(pending: _Pending[T], result: T) -> None:
    if not pending.future.done():
        pending.future.set_result(result)


def _fail(pending: _Pending[Any], error: BaseException) -> None:
    if not pending.future.done():
        pending.future.set_exception(error)
