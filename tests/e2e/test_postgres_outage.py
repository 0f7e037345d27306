"""PostgreSQL goes away while calls are up (issue 8): calls keep their audio, the records are buffered
to the local journal and replayed in order once it is back, and nothing is lost.

The bridge gets a database of its own, so the outage (connections refused and the open ones
terminated) touches no other test: the shared server keeps running.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from agent_client.web_app import DATABASE_AWAY
from audio import read_wav, rms_dbfs, segments
from harness.bridge import BridgeProcess
from harness.services import POSTGRES_URL, ensure_postgres
from peers.peer_process import PeerProcess, start_caller

pytestmark = [pytest.mark.peers]

OUTAGE_NOTE = "buffered locally"


class OwnDatabase:
    def __init__(self, name: str) -> None:
        self.name = name
        base, _, _ = POSTGRES_URL.rpartition("/")
        self.url = f"{base}/{name}"

    async def admin(self, *statements: str) -> None:
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    async def go_away(self) -> None:
        """New connections refused, open ones cut: what the bridge sees when the server is gone."""
        await self.admin(
            f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'",
        )

    async def come_back(self) -> None:
        await self.admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


@pytest.fixture
async def own_database() -> AsyncIterator[OwnDatabase]:
    await ensure_postgres()
    database = OwnDatabase(f"hotline_outage_{uuid.uuid4().hex[:12]}")
    await database.admin(f'CREATE DATABASE "{database.name}"')
    try:
        yield database
    finally:
        await database.come_back()
        await database.admin(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')


async def health(bridge: BridgeProcess) -> dict[str, Any]:
    _, report = await bridge.get_json("/healthz", auth=None)
    return dict(report)


async def until_health(bridge: BridgeProcess, check: Any, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    report = await health(bridge)
    while not check(report):
        if time.monotonic() > deadline:
            raise AssertionError(f"/healthz never matched within {timeout} s: {report}")
        await asyncio.sleep(0.1)
        report = await health(bridge)
    return report


def heard_continuously(peer: PeerProcess, media_at: float, start: float, end: float) -> list[float]:
    """The loudness (dBFS) of each second the caller heard in [start, end] (monotonic instants)."""
    result = peer.result()
    assert result.recording is not None
    samples, rate = read_wav(result.recording)
    window = samples[int((start - media_at) * rate) : int((end - media_at) * rate)]
    return [rms_dbfs(second) for second in segments(window, rate, 1.0)]


async def test_a_postgresql_outage_while_calls_are_up_loses_nothing(tmp_path: Path, own_database: OwnDatabase) -> None:
    async with BridgeProcess.configured(tmp_path, database_url=own_database.url) as bridge:
        await bridge.wait_ready()
        first = await start_caller(bridge.uri("1001"), max_seconds=60, record=tmp_path / "first.wav")
        async with first:
            await first.wait_for("state", state="CONFIRMED", timeout=15)
            first_media_at = float((await first.wait_for("media_active", timeout=10))["t"])
            # Into the hold music (past the greeting) before the database goes.
            (before,) = await bridge.wait_for_calls(lambda cs: len(cs) == 1, timeout=15)
            for _ in range(150):
                detail = await bridge.call(before["id"])
                if "music_started" in [e["kind"] for e in detail["events"]]:
                    break
                await asyncio.sleep(0.1)

            down_at = time.monotonic()
            await own_database.go_away()
            degraded = await until_health(bridge, lambda r: r["db"].get("buffering") is True)
            listing_status, listing = await bridge.get_json("/api/calls")

            # A caller who rings now is answered: its record is in the journal before the answer.
            second = await start_caller(bridge.uri("1001"), max_seconds=60, record=tmp_path / "second.wav")
            async with second:
                await second.wait_for("state", state="CONFIRMED", timeout=15)
                second_media_at = float((await second.wait_for("media_active", timeout=10))["t"])
                await asyncio.sleep(3.0)
                # The first caller hangs up: the call's end goes to the journal too.
                first_hung_up_at = time.monotonic()
                first_result = await first.stop()
                await asyncio.sleep(1.5)
                during = await health(bridge)

                up_at = time.monotonic()
                await own_database.come_back()
                back = await until_health(bridge, lambda r: r["status"] == "ready", timeout=20)
                caught_up_s = time.monotonic() - up_at
                calls = await bridge.wait_for_calls(lambda cs: len(cs) == 2, timeout=10)
                second_state_after = second.returncode
                second_hung_up_at = time.monotonic()
                second_result = await second.stop()
            ended = await bridge.wait_for_calls(lambda cs: len(cs) == 2 and all(c["outcome"] for c in cs))
            details = {c["id"]: await bridge.call(c["id"]) for c in ended}
        bridge.assert_loop_never_blocked()
        log = bridge.log_text()

    # While it was away: degraded, the reads say so, the writes are buffered.
    assert degraded["status"] == "degraded"
    assert degraded["db"]["ready"] is False
    assert OUTAGE_NOTE in degraded["db"]["note"]
    assert listing_status == 503
    assert listing == {"error": DATABASE_AWAY}
    assert during["db"]["buffering"] is True
    buffered_peak = during["db"]["buffered"]
    # The second call's arrival and answer, the first one's end, heartbeats at least.
    assert buffered_peak >= 5, during
    # Back: ready again, with nothing left in the journal.
    assert back["db"]["ready"] is True
    assert back["db"]["buffering"] is False
    assert back["db"]["buffered"] == 0

    # The calls kept going: the second stayed up through the recovery, each hung up only when told to.
    assert second_state_after is None
    for result in (first_result, second_result):
        (done,) = result.done
        assert done["hungup_by"] == "local", result.describe()
    assert [c["id"] for c in calls] == [c["id"] for c in ended]

    # Every event of both calls, in order: what was written during the outage is there and in its place.
    by_arrival = sorted(details.values(), key=lambda d: d["arrived_at"])
    first_detail, second_detail = by_arrival
    assert first_detail["id"] == before["id"]
    for detail in by_arrival:
        kinds = [e["kind"] for e in detail["events"]]
        assert kinds[:3] == ["arrived", "answered_by_bridge", "queued"], kinds
        assert "greeting_started" in kinds
        assert kinds[-1] == "ended", kinds
        assert kinds.count("ended") == 1
        monos = [e["mono"] for e in detail["events"]]
        assert monos == sorted(monos), "the timeline is in the order things happened"
        assert detail["outcome"] == "abandoned"
        assert detail["ended_by"] == "caller"
        assert detail["event_count"] == len(kinds)
    assert "music_started" in [e["kind"] for e in second_detail["events"]]
    # The first call ended during the outage: its duration is the one its caller lived (media to BYE).
    assert first_detail["duration_s"] == pytest.approx(first_hung_up_at - first_media_at, abs=1.5)
    assert second_detail["duration_s"] == pytest.approx(second_hung_up_at - second_media_at, abs=1.5)

    # Audio all along: every second of the outage carried the hold music (or the greeting).
    first_heard = heard_continuously(first, first_media_at, down_at, first_hung_up_at - 0.3)
    second_heard = heard_continuously(second, second_media_at, second_media_at + 0.2, up_at)
    assert len(first_heard) >= 3
    assert min(first_heard) > -45, first_heard
    assert len(second_heard) >= 3
    assert min(second_heard) > -45, second_heard

    replayed = re.search(r"records\.replayed_all\s.*?buffered=(\d+).*?outage_s=([\d.]+).*?replayed=(\d+)", log)
    assert replayed is not None, "the bridge logged its catching up"
    buffered_total, outage_s, replayed_total = int(replayed[1]), float(replayed[2]), int(replayed[3])
    assert buffered_total == replayed_total >= buffered_peak
    assert "records.replay_refused" not in log
    print(
        f"\nPostgreSQL away {up_at - down_at:.1f} s; records buffered for {outage_s:.1f} s; "
        f"{buffered_total} writes buffered ({buffered_peak} at the peak) and {replayed_total} replayed, none refused; "
        f"ready {caught_up_s:.1f} s after it came back; quietest second heard during the outage "
        f"{min(first_heard + second_heard):.1f} dBFS"
    )
