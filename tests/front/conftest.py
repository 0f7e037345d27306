"""Fixtures for the Kamailio front tests: real kamailio, real sipp, fake workers."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from front.fake_worker import FakeWorker
from front.support import KAMAILIO, SIPP, TEST_PIKE, free_port, require, wait_all_active
from telephony.kamailio_front import FrontWorker, KamailioFront


@pytest.fixture
def kamailio_bin() -> str:
    return require(KAMAILIO, "kamailio (apt: kamailio)")


@pytest.fixture
def sipp_bin() -> str:
    return require(SIPP, "sipp (apt: sip-tester)")


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # short: Unix socket paths are limited to 108 bytes
    path = Path(tempfile.mkdtemp(prefix="kf-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


WorkersFactory = Callable[..., Awaitable[list[FakeWorker]]]
FrontFactory = Callable[..., Awaitable[KamailioFront]]


@pytest.fixture
async def start_workers() -> AsyncIterator[WorkersFactory]:
    started: list[FakeWorker] = []

    async def start(count: int, **kwargs: Any) -> list[FakeWorker]:
        workers = [await FakeWorker(port=free_port(), **kwargs).start() for _ in range(count)]
        started.extend(workers)
        return workers

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
async def start_front(kamailio_bin: str, run_dir: Path) -> AsyncIterator[FrontFactory]:
    fronts: list[KamailioFront] = []

    async def start(workers: list[FakeWorker], **kwargs: Any) -> KamailioFront:
        kwargs.setdefault("capacity", 4)
        kwargs.setdefault("pike", TEST_PIKE)
        kwargs.setdefault("listen_port", free_port())
        front = KamailioFront(
            binary=kamailio_bin,
            listen_host="127.0.0.1",
            workers=[FrontWorker(i + 1, w.host, w.port) for i, w in enumerate(workers)],
            run_dir=run_dir / f"front{len(fronts)}",
            **kwargs,
        )
        fronts.append(front)
        await front.start()
        await wait_all_active(front)
        return front

    yield start
    for front in fronts:
        await front.stop()
        assert not front.running
