"""The Kamailio SIP front against real Kamailio, real sipp and fake pjsua workers."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from front.caller import Caller
from front.conftest import FrontFactory, WorkersFactory
from front.fake_worker import FakeWorker
from front.sip import SipMessage
from front.support import finish_sipp, free_port, start_sipp, wait_for
from telephony.kamailio_front import FrontError, FrontWorker, KamailioFront, PikeLimits

pytestmark = [pytest.mark.peers, pytest.mark.timeout(60)]


async def loads(front: KamailioFront) -> dict[int, object]:
    return {int(str(d["index"])): d["load"] for d in await front.dispatcher_state()}


async def states(front: KamailioFront) -> dict[int, object]:
    return {int(str(d["index"])): d["state"] for d in await front.dispatcher_state()}


async def all_zero(front: KamailioFront) -> bool:
    return all(v == 0 for v in (await loads(front)).values())


def owner(workers: list[FakeWorker], call_id: str) -> FakeWorker | None:
    return next((w for w in workers if call_id in w.answered_call_ids), None)


async def test_twelve_calls_spread_by_load_and_the_thirteenth_gets_503(
    start_workers: WorkersFactory, start_front: FrontFactory, sipp_bin: str, run_dir: Path
) -> None:
    workers = await start_workers(3, capacity=4)
    front = await start_front(workers, capacity=4, retry_after_s=9)

    sipp = await start_sipp(sipp_bin, front, run_dir / "sipp", calls=12, hold_ms=5000)
    await wait_for(lambda: sum(w.active_calls for w in workers) == 12, 8, "12 calls up")

    assert [w.active_calls for w in workers] == [4, 4, 4]
    assert [len(w.rejected) for w in workers] == [0, 0, 0]  # no 486 needed: load-based
    assert await loads(front) == {1: 4, 2: 4, 3: 4}

    async with Caller(front.address) as caller:
        thirteenth = await caller.invite()
    assert thirteenth.final is not None
    assert thirteenth.final.status == 503
    assert thirteenth.final.header("Retry-After") == "9"
    assert all(thirteenth.call_id not in {i.call_id for i in w.invites} for w in workers)

    await finish_sipp(sipp, run_dir / "sipp")

    for worker in workers:
        answered = worker.answered_call_ids
        assert {m.call_id for m in worker.requests("ACK")} == answered
        assert {m.call_id for m in worker.requests("BYE")} == answered
        assert all(d.source == front.address for d in worker.dialogs.values())
    await wait_for(lambda: all_zero(front), 3, "loads back to 0")


async def test_in_dialog_requests_follow_record_route_and_bye_releases_load(
    start_workers: WorkersFactory, start_front: FrontFactory
) -> None:
    workers = await start_workers(2, capacity=1)
    front = await start_front(workers, capacity=1)

    async with Caller(front.address) as caller:
        first = await caller.invite()
        second = await caller.invite()
        assert first.final
        assert first.final.status == 200
        assert second.final
        assert second.final.status == 200
        worker_a, worker_b = owner(workers, first.call_id), owner(workers, second.call_id)
        assert worker_a is not None
        assert worker_b is not None
        assert worker_a is not worker_b
        assert first.route_set, "the front must record-route"

        full = await caller.invite()
        assert full.final
        assert full.final.status == 503

        # caller's BYE reaches the worker that answered, and frees its slot
        assert (await caller.bye(first)).status == 200
        assert [m.call_id for m in worker_a.requests("BYE")] == [first.call_id]
        assert worker_b.requests("BYE") == []
        assert [m.call_id for m in worker_a.requests("ACK")] == [first.call_id]
        third = await caller.invite()
        assert third.final
        assert third.final.status == 200
        assert owner(workers, third.call_id) is worker_a

        # the worker hangs up: its BYE goes through the front to the caller
        reply = await worker_b.hangup(second.call_id)
        assert reply.status == 200
        assert [m.call_id for m in caller.incoming if m.method == "BYE"] == [second.call_id]
        fourth = await caller.invite()
        assert fourth.final
        assert fourth.final.status == 200
        assert owner(workers, fourth.call_id) is worker_b
        assert await loads(front) == {1: 1, 2: 1}


async def test_cancel_follows_the_invite_branch_and_releases_load(
    start_workers: WorkersFactory, start_front: FrontFactory
) -> None:
    workers = await start_workers(1, capacity=1, answer_delay=5.0)
    front = await start_front(workers, capacity=1)

    async with Caller(front.address) as caller:
        call = caller.new_invite()
        caller.send(call.invite)
        ringing = await caller.next_reply(call.call_id, "INVITE")
        while ringing.status < 180:
            ringing = await caller.next_reply(call.call_id, "INVITE")
        assert await loads(front) == {1: 1}
        caller.cancel(call)
        assert (await caller.final_reply(call, "CANCEL")).status == 200
        call.final = await caller.final_reply(call, "INVITE")
        caller.ack(call)
        assert call.final.status == 487
    assert [m.call_id for m in workers[0].requests("CANCEL")] == [call.call_id]
    await wait_for(lambda: all_zero(front), 3, "load released by CANCEL")


async def test_failover_on_503_and_486_then_front_503_when_nobody_can(
    start_workers: WorkersFactory, start_front: FrontFactory
) -> None:
    draining, busy, good = await start_workers(3, capacity=4)
    draining.mode = "draining"
    busy.mode = "busy"
    front = await start_front([draining, busy, good], capacity=4, retry_after_s=11)

    async with Caller(front.address) as caller:
        calls = [await caller.invite() for _ in range(3)]
        assert [c.final.status for c in calls if c.final] == [200, 200, 200]
        assert good.answered_call_ids == {c.call_id for c in calls}
        # least-loaded picks the idle draining/busy workers first: they were tried
        assert draining.rejected
        assert set(draining.rejected.values()) == {503}
        assert busy.rejected
        assert set(busy.rejected.values()) == {486}
        # the failed attempts' load moved to the worker that took the call
        assert await loads(front) == {1: 0, 2: 0, 3: 3}

        good.mode = "busy"
        refused = await caller.invite()
        assert refused.final is not None
        assert refused.final.status == 503
        assert refused.final.header("Retry-After") == "11"
        assert {refused.call_id} <= set(draining.rejected) & set(busy.rejected) & set(good.rejected)
        assert await loads(front) == {1: 0, 2: 0, 3: 3}


async def test_silent_worker_times_out_and_the_call_fails_over(
    start_workers: WorkersFactory, start_front: FrontFactory
) -> None:
    good, hung = await start_workers(2, capacity=4)
    # dispatcher keeps the list's last line first: with equal loads it is picked first
    front = await start_front([good, hung], capacity=4, no_reply_timeout_ms=1500)
    hung.mode = "silent"

    async with Caller(front.address) as caller:
        started = time.monotonic()
        call = await caller.invite()
        elapsed = time.monotonic() - started
    assert call.final
    assert call.final.status == 200
    assert [i.call_id for i in hung.invites][:1] == [call.call_id]
    assert owner([good, hung], call.call_id) is good
    assert 1.4 < elapsed < 4, elapsed
    assert await states(front) == {1: "active", 2: "inactive"}
    assert await loads(front) == {1: 1, 2: 0}


async def test_dead_worker_leaves_rotation_and_comes_back(
    start_workers: WorkersFactory, start_front: FrontFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = await start_workers(2, capacity=4)
    front = await start_front([first, second], capacity=4)

    second.stop()
    out_after = await wait_for(lambda: _state_is(front, 2, "inactive"), 6, "dead worker inactive")
    async with Caller(front.address) as caller:
        calls = [await caller.invite(timeout=3) for _ in range(3)]
        assert [c.final.status for c in calls if c.final] == [200, 200, 200]
        assert first.answered_call_ids == {c.call_id for c in calls}

        revived = await FakeWorker(port=second.port).start()
        try:
            back_after = await wait_for(lambda: _state_is(front, 2, "active"), 6, "worker active again")
            again = await caller.invite()
            assert again.final
            assert again.final.status == 200
            assert revived.answered_call_ids == {again.call_id}  # least loaded: 0 < 3
        finally:
            revived.stop()
    with capsys.disabled():
        print(f"\n[front] dead worker out of rotation after {out_after:.2f}s, back after {back_after:.2f}s")


async def _state_is(front: KamailioFront, index: int, state: str) -> bool:
    return (await states(front))[index] == state


async def test_worker_replaced_resets_its_load_and_keeps_the_others(
    start_workers: WorkersFactory, start_front: FrontFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    old, other = await start_workers(2, capacity=4)
    front = await start_front([old, other], capacity=4)

    async with Caller(front.address) as caller:
        calls = [await caller.invite() for _ in range(8)]
        assert all(c.final and c.final.status == 200 for c in calls)
        assert (old.active_calls, other.active_calls) == (4, 4)
        old_calls = [c for c in calls if owner([old], c.call_id)]

        # the worker dies holding 4 calls, no BYE ever; a new process takes its port
        old.stop()
        new = await FakeWorker(port=old.port).start()
        try:
            await wait_for(lambda: _state_is(front, 1, "active"), 6, "replacement probed")
            assert await loads(front) == {1: 4, 2: 4}
            stuck = await caller.invite()
            assert stuck.final
            assert stuck.final.status == 503

            started = time.monotonic()
            await front.worker_replaced(1)
            took = time.monotonic() - started
            state = {d["index"]: d for d in await front.dispatcher_state()}
            assert state[1]["duid"] == "w1g1"
            assert state[1]["load"] == 0
            assert state[2]["duid"] == "w2g0"
            assert state[2]["load"] == 4
            assert "duid=w1g1;maxload=4" in front.dispatcher_list_path.read_text()

            fresh = [await caller.invite() for _ in range(4)]
            assert all(c.final and c.final.status == 200 for c in fresh)
            assert new.answered_call_ids == {c.call_id for c in fresh}
            assert await loads(front) == {1: 4, 2: 4}

            # a late BYE of a dead call must not free a slot of the new incarnation
            late = await caller.bye(old_calls[0])
            assert late.status == 481
            assert await loads(front) == {1: 4, 2: 4}
        finally:
            new.stop()
    with capsys.disabled():
        print(f"\n[front] worker_replaced() took {took:.2f}s")


async def test_dispatcher_reload_zeroes_every_worker_load(
    start_workers: WorkersFactory, start_front: FrontFactory
) -> None:
    """Why worker_replaced() does not use dispatcher.reload: it forgets all loads."""
    workers = await start_workers(2, capacity=4)
    front = await start_front(workers, capacity=4)
    async with Caller(front.address) as caller:
        for _ in range(4):
            await caller.invite()
    assert await loads(front) == {1: 2, 2: 2}
    await front.reload_dispatcher()
    assert await loads(front) == {1: 0, 2: 0}


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_forged_source_header_is_replaced_by_the_true_source(
    start_workers: WorkersFactory, start_front: FrontFactory, transport: str
) -> None:
    (worker,) = await start_workers(1)
    front = await start_front([worker])
    forged = [
        ("X-Hotline-Source", "203.0.113.9:5060;transport=udp"),
        ("x-hotline-source", "198.51.100.7:5060;transport=tls"),
    ]
    async with Caller(front.address, transport=transport) as caller:  # type: ignore[arg-type]
        call = await caller.invite(extra=forged)
        assert call.final
        assert call.final.status == 200
        assert (await caller.bye(call)).status == 200
    (invite,) = worker.invites
    assert invite.all("X-Hotline-Source") == [f"127.0.0.1:{caller.port};transport={transport}"]
    assert worker.dialogs[call.call_id].source == front.address


MALFORMED: dict[str, tuple[str, dict[str, str | None]]] = {
    "missing Call-ID": ("INVITE sip:hotline@{host} SIP/2.0", {"Call-ID": None}),
    "missing From": ("INVITE sip:hotline@{host} SIP/2.0", {"From": None}),
    "CSeq not a number": ("INVITE sip:hotline@{host} SIP/2.0", {"CSeq": "abc INVITE"}),
    "CSeq method mismatch": ("INVITE sip:hotline@{host} SIP/2.0", {"CSeq": "1 BYE"}),
    "unparseable R-URI": ("INVITE sip:@@@:::x SIP/2.0", {}),
    "wrong SIP version": ("INVITE sip:hotline@{host} SIP/3.0", {}),
    "Content-Length beyond the body": ("INVITE sip:hotline@{host} SIP/2.0", {"Content-Length": "5000"}),
}


def raw_request(start: str, overrides: dict[str, str | None], port: int, n: int) -> bytes:
    headers: dict[str, str | None] = {
        "Via": f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKmal{n};rport",
        "Max-Forwards": "70",
        "From": "<sip:caller@127.0.0.1>;tag=m1",
        "To": "<sip:hotline@127.0.0.1>",
        "Call-ID": f"malformed-{n}@127.0.0.1",
        "CSeq": "1 INVITE",
        "Contact": f"<sip:caller@127.0.0.1:{port}>",
        "Content-Length": "0",
    }
    headers.update(overrides)
    lines = [start] + [f"{k}: {v}" for k, v in headers.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\nv=0\r\n").encode()


async def test_malformed_sip_gets_400_or_is_dropped_and_kamailio_stays_up(
    start_workers: WorkersFactory, start_front: FrontFactory
) -> None:
    (worker,) = await start_workers(1)
    front = await start_front([worker])
    host = front.address[0]
    answers: dict[str, int | None] = {}
    async with Caller(front.address) as caller:
        for n, (name, (start, overrides)) in enumerate(MALFORMED.items()):
            caller.send_raw(raw_request(start.format(host=host), overrides, caller.port, n))
            answers[name] = await caller.any_reply(timeout=0.5)
        for name, blob in {"binary garbage": bytes(range(256)) * 4, "HTTP": b"GET / HTTP/1.1\r\n\r\n"}.items():
            caller.send_raw(blob)
            answers[name] = await caller.any_reply(timeout=0.5)

        assert answers == {
            "missing Call-ID": None,  # dropped by the core parser
            "missing From": None,
            "CSeq not a number": 400,
            "CSeq method mismatch": 400,
            "unparseable R-URI": 400,
            "wrong SIP version": None,
            "Content-Length beyond the body": 400,
            "binary garbage": None,
            "HTTP": None,
        }
        assert worker.invites == []
        assert front.running

        options = _options(caller, *front.address)
        caller.send(options)
        assert (await caller.next_reply(options.call_id, "OPTIONS")).status == 200

        call = await caller.invite()
        assert call.final
        assert call.final.status == 200


@pytest.mark.parametrize("kind", [socket.SOCK_DGRAM, socket.SOCK_STREAM], ids=["udp", "tcp"])
async def test_start_on_a_busy_port_raises_front_error_saying_so(
    start_workers: WorkersFactory, kamailio_bin: str, run_dir: Path, kind: int
) -> None:
    (worker,) = await start_workers(1)
    port = free_port()
    with socket.socket(socket.AF_INET, kind) as squatter:
        squatter.bind(("127.0.0.1", port))
        if kind == socket.SOCK_STREAM:
            squatter.listen()
        front = KamailioFront(
            binary=kamailio_bin, listen_host="127.0.0.1", listen_port=port,
            workers=[FrontWorker(1, worker.host, worker.port)], capacity=4, run_dir=run_dir,
        )  # fmt: skip
        with pytest.raises(FrontError, match=rf"127\.0\.0\.1:{port} is already in use") as failure:
            await front.start(timeout=10)
    assert "Address already in use" in str(failure.value)  # Kamailio's own words follow
    assert not front.running
    assert front.returncode not in (None, 0)


async def test_start_without_kamailio_raises_front_error(run_dir: Path) -> None:
    front = KamailioFront(
        binary="/nonexistent/kamailio", listen_host="127.0.0.1", listen_port=free_port(),
        workers=[FrontWorker(1, "127.0.0.1", free_port())], capacity=4, run_dir=run_dir,
    )  # fmt: skip
    with pytest.raises(FrontError, match="not found"):
        await front.start()


async def test_pike_bans_a_flooding_source_but_never_a_worker(
    start_workers: WorkersFactory, start_front: FrontFactory
) -> None:
    # the worker and the flooder share 127.0.0.2; the caller is 127.0.0.1
    (worker,) = await start_workers(1, host="127.0.0.2")
    front = await start_front([worker], pike=PikeLimits(requests=5, window_s=2, block_s=30))
    host, port = front.address

    async with Caller(front.address) as caller, Caller(front.address, host="127.0.0.2") as flooder:
        call = await caller.invite()
        assert call.final
        assert call.final.status == 200

        probes = [_options(flooder, host, port) for _ in range(60)]
        for probe in probes:
            flooder.send(probe)
        answered = 0
        while await flooder.any_reply(timeout=0.5) is not None:
            answered += 1
        assert 0 < answered < 40, answered
        flooder.send(_options(flooder, host, port))
        assert await flooder.any_reply(timeout=1.0) is None  # banned

        # the worker on the banned IP still reaches the caller through the front
        assert (await worker.hangup(call.call_id)).status == 200
        assert [m.call_id for m in caller.incoming if m.method == "BYE"] == [call.call_id]
        # and other sources are served
        caller.send(_options(caller, host, port))
        assert await caller.any_reply(timeout=1.0) == 200
    assert front.running


def _options(caller: Caller, host: str, port: int) -> SipMessage:
    message = caller.new_invite()
    message.invite.start = f"OPTIONS sip:{host}:{port} SIP/2.0"
    message.invite.headers = [(k, "1 OPTIONS" if k == "CSeq" else v) for k, v in message.invite.headers]
    message.invite.body = ""
    return message.invite


async def test_set_worker_active_takes_a_worker_out_and_back(
    start_workers: WorkersFactory, start_front: FrontFactory
) -> None:
    first, second = await start_workers(2, capacity=4)
    front = await start_front([first, second], capacity=4)

    await front.set_worker_active(2, False)
    assert await states(front) == {1: "active", 2: "disabled"}
    assert f"sip:127.0.0.1:{second.port} 4 0 duid=w2g0" in front.dispatcher_list_path.read_text()
    async with Caller(front.address) as caller:
        calls = [await caller.invite() for _ in range(2)]
        assert first.answered_call_ids == {c.call_id for c in calls}
        await front.set_worker_active(2, True)
        assert await states(front) == {1: "active", 2: "active"}
        back = await caller.invite()
        assert second.answered_call_ids == {back.call_id}


async def test_other_rejections_reach_the_caller_without_failover(
    start_workers: WorkersFactory, start_front: FrontFactory
) -> None:
    other, declining = await start_workers(2, capacity=4)
    declining.mode = "decline"
    front = await start_front([other, declining], capacity=4)
    async with Caller(front.address) as caller:
        call = await caller.invite()
    assert call.final
    assert call.final.status == 603
    assert set(declining.rejected) == {call.call_id}
    assert other.invites == []
    assert await all_zero(front)
