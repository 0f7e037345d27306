"""The dispatcher with in-memory state, a scripted worker and recorded browser links."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from dialplan.clock import ManualClock
from dialplan.offers import REOFFER_AFTER_S
from dialplan.queues import Announcements, Fallback, FallbackKind, QueueConfig
from dialplan.schedule import WeeklyCalendar, WeeklySpan
from dialplan.tenant import Agent, Client, Greeting, RecordingPolicy, ServedClient, Shift, Tenant
from dialplan.timeline import TimelineEvent
from store.live_memory import MemoryLiveState
from telephony.call_recordings import CallRecordings
from telephony.dispatcher import Dispatcher, DispatcherSettings, ProtocolError, QueuedCall

MON_9 = datetime(2026, 11, 23, 9, tzinfo=UTC)
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"


@dataclass
class Link:
    messages: list[dict[str, Any]] = field(default_factory=list)
    closed: str | None = None

    def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    async def close(self, reason: str) -> None:
        self.closed = reason

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def last(self, kind: str) -> dict[str, Any]:
        return self.of(kind)[-1]


@dataclass
class Worker:
    requests: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)

    async def request(self, index: int, kind: str, body: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        self.requests.append((index, kind, body))
        return {"sdp": "v=0 answer"} if kind in ("rtc_open", "rtc_update") else {}

    def kinds(self) -> list[str]:
        return [kind for _, kind, _ in self.requests]


@dataclass
class Recorder:
    events: dict[str, list[TimelineEvent]] = field(default_factory=dict)
    hints: dict[str, str] = field(default_factory=dict)

    def record(self, call_id: str, events: Any) -> None:
        self.events.setdefault(call_id, []).extend(events)

    def end_hint(self, call_id: str, by: str) -> None:
        self.hints[call_id] = by

    def kinds(self, call_id: str) -> list[tuple[str, Any]]:
        return [(e.kind, e.data.get("agent")) for e in self.events.get(call_id, [])]


def tenant() -> Tenant:
    paris = ZoneInfo("Europe/Paris")
    clients = {
        "acme": Client("acme", "Acme Furniture", paris, Greeting(text="hi"), "https://kb/acme", wrap_up_s=0),
        "globex": Client("globex", "Globex", paris, Greeting(text="hi"), mask_caller_number=True, wrap_up_s=0),
    }
    always = WeeklyCalendar(
        ZoneInfo("UTC"), weekly=tuple(WeeklySpan(d, time(0), (d + 1) % 7, time(0)) for d in range(7))
    )
    mornings = WeeklyCalendar(ZoneInfo("UTC"), weekly=(WeeklySpan(0, time(8), 0, time(12)),))
    agents = {
        "alice": Agent("alice", "Alice", "h", (ServedClient("acme"), ServedClient("globex"))),
        "bob": Agent("bob", "Bob", "h", (ServedClient("acme"), ServedClient("globex"))),
        "carol": Agent("carol", "Carol", "h", (ServedClient("globex"),)),
    }
    shifts = (Shift("alice", always), Shift("bob", always), Shift("carol", mornings))
    return Tenant("t", "T", clients, (), agents, shifts)


@dataclass
class Floor:
    dispatcher: Dispatcher
    clock: ManualClock
    worker: Worker
    recorder: Recorder
    links: dict[str, Link]

    async def sign_in(self, login: str, *, available: bool = True) -> Link:
        link = Link()
        self.links[login] = link
        await self.dispatcher.agent_connected(login, link)
        if available:
            await self.dispatcher.handle(login, {"type": "set_state", "state": "available"})
        return link

    async def queue(
        self, call_id: str, client: str = "acme", caller: str = "0612345678", waited_s: float = 0.0
    ) -> QueuedCall:
        call = QueuedCall(call_id, 0, 7, client, caller, self.clock.now() - timedelta(seconds=waited_s))
        await self.dispatcher.call_queued(call)
        return call

    async def pick_up(self, login: str, call_id: str) -> None:
        await self.dispatcher.handle(login, {"type": "rtc_offer", "call_id": call_id, "sdp": SDP})
        await self.dispatcher.handle(login, {"type": "answer", "call_id": call_id})


@pytest.fixture
async def floor() -> AsyncIterator[Floor]:
    clock = ManualClock(MON_9)
    worker, recorder = Worker(), Recorder()
    dispatcher = Dispatcher(
        tenant=tenant(),
        live=MemoryLiveState(),
        clock=clock,
        workers=worker,
        recorder=recorder,
        settings=DispatcherSettings(ring_timeout_s=0.3, reconnect_grace_s=0.3),
    )
    yield Floor(dispatcher, clock, worker, recorder, {})
    await dispatcher.stop()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_signing_in_says_hello_state_and_shifts(floor: Floor) -> None:
    link = await floor.sign_in("alice", available=False)
    assert [m["type"] for m in link.messages[:3]] == ["hello", "state", "shifts"]
    assert link.messages[0]["agent"] == {"login": "alice", "name": "Alice"}
    assert link.messages[0]["call"] is None
    state = link.last("state")
    assert (state["state"], state["reason"], state["on_shift"], state["can_go_available"]) == (
        "paused",
        "signed in",
        True,
        True,
    )


async def test_the_longest_idle_agent_is_offered_the_call_with_the_brand(floor: Floor) -> None:
    bob = await floor.sign_in("bob")
    floor.clock.advance(30)
    alice = await floor.sign_in("alice")
    await floor.queue("c1", caller="0612345678")
    assert not alice.of("offer")
    offer = bob.last("offer")
    assert offer["client"] == {"id": "acme", "name": "Acme Furniture", "kb_url": "https://kb/acme"}
    assert offer["caller"] == "0612345678"
    assert floor.recorder.kinds("c1") == [("offered", "bob"), ("ringing", "bob")]


async def test_a_masked_client_shows_a_masked_number(floor: Floor) -> None:
    alice = await floor.sign_in("alice")
    await floor.queue("c1", client="globex", caller="0612345678")
    assert alice.last("offer")["caller"] == "06••••••78"


async def test_answer_bridges_in_the_worker_and_records_the_agent(floor: Floor) -> None:
    alice = await floor.sign_in("alice")
    await floor.queue("c1")
    await floor.dispatcher.handle("alice", {"type": "rtc_offer", "call_id": "c1", "sdp": SDP})
    assert alice.last("rtc_answer") == {"v": 1, "type": "rtc_answer", "call_id": "c1", "sdp": "v=0 answer"}
    await floor.dispatcher.handle("alice", {"type": "answer", "call_id": "c1"})
    assert floor.worker.kinds() == ["rtc_open", "bridge"]
    assert floor.recorder.kinds("c1")[-1] == ("answered", "alice")
    assert alice.last("call")["status"] == "connected"
    assert alice.last("state")["state"] == "on_call"
    await floor.dispatcher.handle("alice", {"type": "hold", "call_id": "c1", "on": True})
    await floor.dispatcher.handle("alice", {"type": "hold", "call_id": "c1", "on": False})
    assert [k for k, _ in floor.recorder.kinds("c1")[-2:]] == ["hold", "unhold"]
    await floor.dispatcher.handle("alice", {"type": "dtmf", "call_id": "c1", "digits": "12#"})
    assert floor.worker.requests[-1] == (0, "dtmf", {"leg": 7, "digits": "12#"})
    await floor.dispatcher.handle("alice", {"type": "hangup", "call_id": "c1"})
    assert floor.recorder.hints["c1"] == "agent"
    await floor.dispatcher.call_ended("c1", "agent")
    assert alice.last("call")["status"] == "ended"
    await asyncio.sleep(0.05)
    assert alice.last("state")["state"] == "available", "wrap-up of 0 s, then available again"
    assert floor.recorder.kinds("c1")[-1] == ("wrap_up_ended", "alice"), "the record learns when wrap-up ended"


async def test_decline_goes_to_the_next_agent(floor: Floor) -> None:
    alice = await floor.sign_in("alice")
    floor.clock.advance(5)
    bob = await floor.sign_in("bob")
    await floor.queue("c1")
    await floor.dispatcher.handle("alice", {"type": "decline", "call_id": "c1"})
    assert alice.last("offer_cancelled")["reason"] == "declined"
    assert bob.last("offer")["call_id"] == "c1"
    assert floor.recorder.kinds("c1")[2] == ("declined", "alice")


async def test_the_only_agent_who_declined_is_rung_again_only_after_a_pause(floor: Floor) -> None:
    alice = await floor.sign_in("alice")
    await floor.queue("c1")
    await floor.dispatcher.handle("alice", {"type": "decline", "call_id": "c1"})
    await floor.dispatcher.dispatch()
    assert len(alice.of("offer")) == 1, "not rung again at once"
    assert floor.dispatcher.snapshot()["waiting"] == ["c1"]
    floor.clock.advance(REOFFER_AFTER_S)
    await floor.dispatcher.dispatch()
    assert len(alice.of("offer")) == 2, "the caller is not stranded"


async def test_a_missed_offer_rings_the_next_and_max_no_answer_misses_pause_the_agent(floor: Floor) -> None:
    alice = await floor.sign_in("alice")
    floor.clock.advance(5)
    bob = await floor.sign_in("bob")
    await floor.queue("c1")
    assert alice.last("offer")["ring_timeout_s"] == 0.3
    floor.clock.advance(0.3)
    await floor.dispatcher.dispatch()
    assert alice.last("offer_cancelled")["reason"] == "timeout"
    assert ("no_answer", "alice") in floor.recorder.kinds("c1")
    assert bob.last("offer")["call_id"] == "c1"
    assert alice.last("state")["state"] == "available", "one miss: a rest, not a pause"


async def test_max_no_answer_missed_offers_in_a_row_pause_the_agent(floor: Floor) -> None:
    alice = await floor.sign_in("alice")
    # Acme's max_no_answer is 3: the third offer in a row let ring out pauses the agent.
    for n in (1, 2, 3):
        await floor.queue(f"c{n}")
        assert alice.last("offer")["call_id"] == f"c{n}"
        floor.clock.advance(0.3)
        await floor.dispatcher.dispatch()
        await floor.dispatcher.call_ended(f"c{n}", "caller")
        floor.clock.advance(60)  # past the no-answer rest
        await floor.dispatcher.dispatch()
    state = alice.last("state")
    assert (state["state"], state["reason"]) == ("paused", "missed calls")


async def test_the_ticker_times_out_a_ring_without_any_other_event(floor: Floor) -> None:
    alice = await floor.sign_in("alice")
    await floor.queue("c1")
    floor.dispatcher.start()
    floor.clock.advance(0.3)
    for _ in range(50):
        if alice.of("offer_cancelled"):
            break
        await asyncio.sleep(0.02)
    assert alice.last("offer_cancelled")["reason"] == "timeout"


async def test_closing_the_page_while_ringing_offers_the_call_to_the_next_agent(floor: Floor) -> None:
    alice = await floor.sign_in("alice")
    floor.clock.advance(5)
    bob = await floor.sign_in("bob")
    await floor.queue("c1")
    assert alice.of("offer")
    await floor.dispatcher.agent_disconnected("alice", alice)
    await settle()
    assert bob.last("offer")["call_id"] == "c1"
    agent = await floor.dispatcher.live.get_agent("alice")
    assert agent is not None
    assert (agent.state, agent.reason, agent.connected) == ("paused", "disconnected", False)


async def test_a_slot_that_does_not_cover_the_client_never_rings(floor: Floor) -> None:
    carol = await floor.sign_in("carol")
    await floor.queue("c1", client="acme")
    assert not carol.of("offer")
    assert floor.dispatcher.snapshot()["waiting"] == ["c1"]


async def test_going_available_off_shift_is_refused_with_the_reason(floor: Floor) -> None:
    floor.clock.advance(5 * 3600)  # 14:00 Monday: Carol's morning slot is over
    carol = await floor.sign_in("carol", available=False)
    with pytest.raises(ProtocolError) as refused:
        await floor.dispatcher.handle("carol", {"type": "set_state", "state": "available"})
    assert refused.value.code == "not_on_shift"
    assert str(refused.value) == "You are not on shift. Your next slot starts Mon 30 Nov 08:00."
    assert carol.last("state")["can_go_available"] is False


async def test_an_agent_whose_slot_ends_gets_no_new_offers(floor: Floor) -> None:
    carol = await floor.sign_in("carol")
    floor.clock.advance(3 * 3600)  # 12:00: the slot has ended
    await floor.dispatcher.dispatch()
    assert carol.last("state")["state"] == "paused"
    await floor.queue("c1", client="globex")
    assert not carol.of("offer")


async def test_a_paused_agent_s_page_hears_when_the_slot_ends(floor: Floor) -> None:
    carol = await floor.sign_in("carol", available=False)
    assert carol.last("state")["can_go_available"] is True
    floor.clock.advance(3 * 3600)  # 12:00: the slot has ended
    await floor.dispatcher.follow_shifts()
    state = carol.last("state")
    assert (state["state"], state["on_shift"], state["can_go_available"]) == ("paused", False, False)
    assert state["why_not"] == "You are not on shift. Your next slot starts Mon 30 Nov 08:00."
    sent = len(carol.of("state"))
    await floor.dispatcher.follow_shifts()
    assert len(carol.of("state")) == sent, "no news, no message"


async def test_a_dropped_page_reattaches_within_the_grace_period(floor: Floor) -> None:
    alice = await floor.sign_in("alice")
    await floor.queue("c1")
    await floor.pick_up("alice", "c1")
    await floor.dispatcher.agent_disconnected("alice", alice)
    again = Link()
    await floor.dispatcher.agent_connected("alice", again)
    hello = again.of("hello")[0]
    assert hello["call"]["call_id"] == "c1"
    assert hello["call"]["status"] == "connected"
    await asyncio.sleep(0.5)
    assert "agent_lost" not in [k for k, _ in floor.recorder.kinds("c1")]


async def test_an_agent_lost_mid_call_sends_the_caller_back_to_the_front_of_the_queue(floor: Floor) -> None:
    alice = await floor.sign_in("alice")
    await floor.queue("c0")
    await floor.pick_up("alice", "c0")
    # Waiting longer than c0 did: only the re-queue's priority puts c0 first.
    await floor.queue("c1", waited_s=600)
    await floor.dispatcher.agent_disconnected("alice", alice)
    await asyncio.sleep(0.5)
    assert ("agent_lost", "alice") in floor.recorder.kinds("c0")
    assert floor.worker.kinds()[-1] == "rtc_close"
    bob = await floor.sign_in("bob")
    assert bob.last("offer")["call_id"] == "c0", "the re-queued caller goes first"


async def test_bad_messages_get_error_codes(floor: Floor) -> None:
    await floor.sign_in("alice")
    with pytest.raises(ProtocolError) as unknown:
        await floor.dispatcher.handle("alice", {"type": "teleport"})
    assert unknown.value.code == "bad_message"
    with pytest.raises(ProtocolError) as no_call:
        await floor.dispatcher.handle("alice", {"type": "answer", "call_id": "nope"})
    assert no_call.value.code == "no_such_call"
    await floor.queue("c1")
    await floor.pick_up("alice", "c1")
    with pytest.raises(ProtocolError) as digits:
        await floor.dispatcher.handle("alice", {"type": "dtmf", "call_id": "c1", "digits": "1; rm -rf"})
    assert digits.value.code == "bad_message"


async def test_the_caller_hanging_up_while_ringing_stops_the_ringing(floor: Floor) -> None:
    alice = await floor.sign_in("alice")
    await floor.queue("c1")
    await floor.dispatcher.call_ended("c1", "caller")
    assert alice.last("offer_cancelled") == {
        "v": 1,
        "type": "offer_cancelled",
        "call_id": "c1",
        "reason": "caller_hung_up",
    }
    assert alice.last("state")["state"] == "available"


async def test_a_page_reloaded_while_ringing_sees_the_offer_and_renegotiates(floor: Floor) -> None:
    alice = await floor.sign_in("alice")
    await floor.queue("c1")
    await floor.dispatcher.handle("alice", {"type": "rtc_offer", "call_id": "c1", "sdp": SDP})
    reloaded = Link()
    await floor.dispatcher.agent_connected("alice", reloaded)
    assert alice.closed == "signed in elsewhere"
    assert reloaded.last("offer")["call_id"] == "c1"
    await floor.dispatcher.handle("alice", {"type": "rtc_offer", "call_id": "c1", "sdp": SDP})
    assert floor.worker.kinds() == ["rtc_open", "rtc_update"], "the same leg, renegotiated"
    await floor.dispatcher.handle("alice", {"type": "answer", "call_id": "c1"})
    assert reloaded.last("call")["status"] == "connected"


@dataclass
class Speech:
    said: list[str] = field(default_factory=list)

    async def speech(self, text: str) -> str | None:
        self.said.append(text)
        return f"/prompts/{len(self.said)}.wav"


def floor_with(t: Tenant) -> tuple[Floor, Speech]:
    """A floor on this tenant whose prompts are spoken by `Speech`."""
    clock, worker, recorder, speech = ManualClock(MON_9), Worker(), Recorder(), Speech()
    dispatcher = Dispatcher(
        tenant=t, live=MemoryLiveState(), clock=clock, workers=worker, recorder=recorder, prompts=speech
    )
    return Floor(dispatcher, clock, worker, recorder, {}), speech


async def test_a_queue_s_whisper_is_played_to_the_agent_before_the_bridge_and_positions_to_the_caller() -> None:
    base = tenant()
    acme = QueueConfig(
        "acme", "acme", announcements=Announcements(position=True, position_every_s=None, agent_whisper="Acme VIP")
    )
    floor, speech = floor_with(replace(base, queues={"acme": acme}))
    dispatcher, worker, recorder = floor.dispatcher, floor.worker, floor.recorder
    await floor.queue("c1")
    await settle()
    assert speech.said == ["You are first in line."]
    assert worker.requests[-1] == (0, "announce", {"leg": 7, "path": "/prompts/1.wav", "then_hang_up": False})
    assert [e.data for e in recorder.events["c1"] if e.kind == "announced"] == [
        {"what": "position", "position": 1, "wait_s": None, "text": "You are first in line."}
    ]
    await floor.sign_in("alice")
    await floor.pick_up("alice", "c1")
    assert speech.said[-1] == "Acme VIP"
    assert worker.kinds()[-3:] == ["rtc_open", "whisper", "bridge"]
    assert worker.requests[-2][2] == {"rtc_id": worker.requests[-1][2]["rtc_id"], "path": "/prompts/2.wav"}
    await dispatcher.stop()


async def test_a_full_queue_sends_the_caller_to_its_fallback_message_then_hangs_up() -> None:
    full = QueueConfig(
        "acme", "acme", max_length=1, fallback=Fallback(FallbackKind.HANGUP, message="We are closed for now.")
    )
    floor, speech = floor_with(replace(tenant(), queues={"acme": full}))
    dispatcher, worker, recorder = floor.dispatcher, floor.worker, floor.recorder
    await floor.queue("c1")
    await floor.queue("c2")
    await settle()
    assert [(e.kind, e.data) for e in recorder.events["c2"]] == [
        ("fallback", {"queue": "acme", "reason": "queue_full", "final": True})
    ]
    assert recorder.hints["c2"] == "bridge"
    assert speech.said == ["We are closed for now."]
    assert worker.requests[-1] == (0, "announce", {"leg": 7, "path": "/prompts/1.wav", "then_hang_up": True})
    assert dispatcher.snapshot()["waiting"] == ["c1"]
    await dispatcher.stop()


async def test_callers_waiting_when_an_overflow_window_ends_go_back_where_the_client_chose(floor: Floor) -> None:
    from dialplan.overflow import EndPolicy, Overflow, OverflowSchedule, Takeover

    paris = ZoneInfo("Europe/Paris")
    ends_soon = Overflow(
        "acme-weekend",
        OverflowSchedule(paris),
        Takeover.FORWARDED,
        end_policy=EndPolicy.RETURN,
        return_to="sip:+33140000099@pbx.acme.example",
    ).take_over_until(MON_9, MON_9 + timedelta(minutes=5))
    serve = replace(ends_soon, line_id="acme-serve", end_policy=EndPolicy.SERVE)

    class States:
        def current(self) -> dict[str, Overflow]:
            return {"acme-weekend": ends_soon, "acme-serve": serve}

    floor.dispatcher.overflows = States()
    returned = QueuedCall("c1", 0, 7, "acme", "0612", MON_9, line_id="acme-weekend")
    served = QueuedCall("c2", 0, 8, "acme", "0613", MON_9, line_id="acme-serve")
    await floor.dispatcher.call_queued(returned)
    await floor.dispatcher.call_queued(served)
    await floor.dispatcher.follow_shifts()
    assert floor.worker.requests == [], "in the window: nothing happens"
    floor.clock.advance(5 * 60)
    await floor.dispatcher.follow_shifts()
    await settle()
    assert floor.worker.requests == [(0, "transfer", {"leg": 7, "target": "sip:+33140000099@pbx.acme.example"})]
    assert [(e.kind, e.data["reason"], e.data["final"]) for e in floor.recorder.events["c1"]] == [
        ("fallback", "window_ended", True)
    ]
    assert floor.recorder.hints["c1"] == "bridge"
    assert floor.dispatcher.snapshot()["waiting"] == ["c2"], "serve: our agents take them to the end"


class RecordingRows:
    """Stands in for store.recordings.Recordings: the rows the service commits."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}

    async def add(self, recording: Any) -> None:
        self.rows[recording.call_id] = recording

    async def get(self, call_id: str) -> Any:
        return self.rows.get(call_id)


def recording_floor(tmp_path: Path, policy: RecordingPolicy) -> tuple[Floor, RecordingRows]:
    base = tenant()
    recorded = replace(base.clients["globex"], recording=policy, recording_retention_days=30)
    the_tenant = replace(base, clients={**base.clients, "globex": recorded})
    clock, worker, recorder, rows = ManualClock(MON_9), Worker(), Recorder(), RecordingRows()
    recordings = CallRecordings(tmp_path, rows, recorder.record, the_tenant, clock, settle_s=0.0)  # type: ignore[arg-type]
    dispatcher = Dispatcher(
        tenant=the_tenant, live=MemoryLiveState(), clock=clock, workers=worker, recorder=recorder, recordings=recordings
    )
    return Floor(dispatcher, clock, worker, recorder, {}), rows


def write_side(path: str, pcm: Any) -> None:
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(pcm.tobytes())


async def events_of(recorder: Recorder, call_id: str, kind: str) -> list[dict[str, Any]]:
    for _ in range(200):
        if found := [dict(e.data) for e in recorder.events.get(call_id, []) if e.kind == kind]:
            return found
        await asyncio.sleep(0.02)
    return []


async def test_calls_of_a_recording_client_are_recorded_then_analysed_compressed_and_stored(tmp_path: Path) -> None:
    floor, rows = recording_floor(tmp_path, RecordingPolicy.ALWAYS)
    dispatcher, worker, recorder = floor.dispatcher, floor.worker, floor.recorder
    await floor.sign_in("alice")
    await floor.queue("plain")  # acme: not recorded
    await floor.pick_up("alice", "plain")
    assert "record" not in worker.requests[-1][2]
    await dispatcher.call_ended("plain", "caller")
    await floor.queue("rec", client="globex")
    link = floor.links["alice"]
    await floor.pick_up("alice", "rec")
    files = worker.requests[-1][2]["record"]
    capture = tmp_path / "capture"
    assert files == {"caller": str(capture / "rec.caller.wav"), "agent": str(capture / "rec.agent.wav")}
    assert [e.data for e in recorder.events["rec"] if e.kind == "recording_started"] == [{"by": "policy"}]
    assert link.last("call")["recording"] == "on"
    # What the worker would have written: the caller talked the first 2 s of 4 (a noise burst), nobody after.
    rng = np.random.default_rng(3)
    burst = (rng.standard_normal(16000) * 6000).astype(np.int16)
    capture.mkdir()
    write_side(files["caller"], np.concatenate([burst, np.zeros(16000, np.int16)]))
    write_side(files["agent"], np.zeros(32000, np.int16))
    await dispatcher.call_ended("rec", "caller")
    (voice,) = await events_of(recorder, "rec", "voice_analysed")
    assert voice["agent_talk_pct"] == 0.0
    assert voice["caller_talk_pct"] > 40.0
    (stored,) = await events_of(recorder, "rec", "recording_stored")
    row = rows.rows["rec"]
    assert stored["file"] == row.file == "2026/11/23/rec.ogg"
    assert (row.duration_ms, row.started_by, row.client_id) == (4000, "policy", "globex")
    assert row.expires_at - row.stored_at == timedelta(days=30)
    assert (tmp_path / row.file).stat().st_size == row.size > 0
    assert not list(capture.iterdir()), "the WAVs go once the recording is stored"
    assert not any(e.kind == "voice_analysed" for e in recorder.events.get("plain", []))
    assert set(rows.rows) == {"rec"}
    await dispatcher.stop()


async def test_on_demand_recording_is_started_by_the_agent_once_and_only_where_the_client_allows_it(
    tmp_path: Path,
) -> None:
    floor, _ = recording_floor(tmp_path, RecordingPolicy.ON_DEMAND)
    dispatcher, worker, recorder = floor.dispatcher, floor.worker, floor.recorder
    link = await floor.sign_in("alice")
    await floor.queue("plain")
    await floor.pick_up("alice", "plain")
    assert link.last("call")["recording"] == "off"
    with pytest.raises(ProtocolError) as refused:
        await dispatcher.handle("alice", {"type": "record", "call_id": "plain"})
    assert refused.value.code == "recording_not_allowed"
    await dispatcher.call_ended("plain", "caller")
    await floor.queue("rec", client="globex")
    await floor.pick_up("alice", "rec")
    assert "record" not in worker.requests[-1][2], "on demand: nothing is recorded until someone asks"
    assert link.last("call")["recording"] == "available"
    await dispatcher.handle("alice", {"type": "record", "call_id": "rec"})
    kind, body = worker.requests[-1][1:]
    assert kind == "record"
    assert body["record"]["caller"].endswith("rec.caller.wav")
    assert [e.data for e in recorder.events["rec"] if e.kind == "recording_started"] == [{"by": "alice"}]
    assert link.last("call")["recording"] == "on"
    with pytest.raises(ProtocolError) as again:
        await dispatcher.start_recording("rec", "sam")
    assert again.value.code == "already_recording"
    await dispatcher.stop()
