"""Registration takeover end to end, with the client's own registrar played by a real Kamailio.

The client keeps its registrar and its phone (a sipp UAS). While the bridge's
overflow window is active the bridge registers as the client's line, so the
registrar sends the line's calls to our queue; when the client admin
switches overflow off the bridge unregisters and the calls go back to the
client's phone, while the call in progress carries on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from playwright.async_api import Browser, Page, Playwright, expect

from audio import AGENT_HZ, CALLER_HZ, read_wav, tone_present, write_tone_wav
from harness.accessibility import check_accessibility
from harness.bridge import BridgeProcess
from harness.registrar import client_registrar
from harness.softphone import answer_call, go_available, launch, signed_in
from harness.tenants import TENANTS
from peers.peer_process import start_caller
from peers.ports import free_udp_port
from peers.sipp import run_sipp, sipp_calls, write_scenario

pytestmark = [pytest.mark.peers]

T = TypeVar("T")

LINE = "0140000000"
HASH = "$argon2id$v=19$m=65536,t=3,p=4$evHPEdnDksQN//VzfmSbzw$02ZtIsxcCKJSfkV9gp9xgvL+8mxQnRbJteVAiNE2Fw0"
# The client's own phone: answers, waits for the BYE.
PHONE = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="client phone">
  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]phone[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:phone@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=phone 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""


@contextlib.asynccontextmanager
async def in_background(coro: Coroutine[Any, Any, T]) -> AsyncIterator[asyncio.Task[T]]:
    """A task for the block; if the block leaves it running (a failure before it was awaited), it is
    cancelled and awaited, so the sipp it runs is killed with the test rather than outliving it."""
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        # Bounded: run_sipp kills sipp at once when cancelled and waits at most a few seconds for it.
        await asyncio.wait([task], timeout=15)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the test reports its own failure, not "exception never retrieved"


def tenant(tmp_path: Path, registrar_port: int, password: str) -> Path:
    path = tmp_path / "takeover.toml"
    path.write_text(
        (TENANTS / "softphone.toml").read_text()
        + f"""
[[lines]]
id = "acme-takeover"
client = "acme"
dids = ["{LINE}"]
trunk_sources = ["127.0.0.1/32"]

[lines.overflow]
takeover = "registration"
registrar = {{ host = "127.0.0.1", port = {registrar_port}, username = "{LINE}", password = "{password}", expires_s = 120 }}

[[client_admins]]
login = "acme-admin"
name = "Acme admin"
password_hash = "{HASH}"
client = "acme"

[[client_admins]]
login = "globex-admin"
name = "Globex admin"
password_hash = "{HASH}"
client = "globex"
"""
    )
    return path


async def admin(bridge: BridgeProcess, method: str, path: str, body: object | None = None) -> dict[str, object]:
    auth = {"Authorization": "Basic " + base64.b64encode(b"acme-admin:alice-demo").decode()}
    async with (
        aiohttp.ClientSession(headers=auth) as http,
        http.request(method, bridge.http(path), json=body) as response,
    ):
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def line_status(bridge: BridgeProcess) -> dict[str, object]:
    view = await admin(bridge, "GET", "/api/overflow/lines/acme-takeover")
    return dict(view["registration"])  # type: ignore[arg-type]


async def test_the_bridge_takes_over_the_line_by_registering_and_gives_it_back(
    playwright: Playwright, tmp_path: Path
) -> None:
    mic = await asyncio.to_thread(write_tone_wav, tmp_path / "agent.wav", AGENT_HZ, 90.0, rate=48000)
    tone = await asyncio.to_thread(write_tone_wav, tmp_path / "caller.wav", CALLER_HZ, 90.0)
    phone_port = free_udp_port()
    async with client_registrar(
        tmp_path / "registrar", password="s3cret", phone_uri=f"sip:phone@127.0.0.1:{phone_port}"
    ) as registrar:
        phone_uas = run_sipp(
            write_scenario(tmp_path / "phone.xml", PHONE),
            "",
            workdir=tmp_path / "phone",
            uas=True,
            local_port=phone_port,
            calls=1,
            timeout_s=120,
        )
        async with (
            in_background(phone_uas) as phone,
            BridgeProcess.configured(tmp_path, tenant=tenant(tmp_path, registrar.port, "s3cret")) as bridge,
        ):
            await bridge.wait_ready()
            assert not registrar.registers(), "no window: no registration"
            browser = await launch(playwright, mic)
            try:
                alice = await signed_in(browser, bridge, "alice", "alice-demo")
                await go_available(alice)

                # The client admin takes over now: the bridge registers within 2 s.
                asked = time.monotonic()
                until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
                view = await admin(bridge, "POST", "/api/overflow/lines/acme-takeover/takeover", {"until": until})
                assert view["active"] is True
                saved = await registrar.wait_for("REGISTRAR: saved", after=asked, timeout=5)
                registered_in = saved - asked
                for _ in range(20):
                    if (await line_status(bridge))["registered"]:
                        break
                    await asyncio.sleep(0.1)
                assert (await line_status(bridge))["registered"] is True

                # A sipp call for the client's number reaches our queue through the client's registrar:
                # the bridge answers it (greeting, music) and records it against the line.
                probe = await sipp_calls(
                    f"127.0.0.1:{registrar.port}",
                    workdir=tmp_path / "probe",
                    rtp_ports=[40000],
                    callee=LINE,
                    hold_s=1.0,
                    name="probe",
                    timeout_s=20,
                )
                assert probe.ok, probe.describe()
                probed = await bridge.wait_for_calls(lambda cs: len(cs) == 1 and cs[0]["outcome"])
                assert (probed[0]["line_id"], probed[0]["outcome"]) == ("acme-takeover", "abandoned")

                # A pjsua2 call, with audio both ways, answered by the Chromium agent.
                caller = await start_caller(
                    registrar.uri(LINE), play=tone, record=tmp_path / "heard.wav", max_seconds=60
                )
                async with caller:
                    media_t0 = float((await caller.wait_for("media_active", timeout=15))["t"])
                    await answer_call(alice, "Acme Furniture")
                    await asyncio.sleep(2.0)
                    # Overflow off mid-call: the bridge unregisters within 2 s; the call goes on.
                    switched = time.monotonic()
                    await admin(bridge, "POST", "/api/overflow/lines/acme-takeover/switch", {"on": False})
                    unregistered = await registrar.wait_for("expires=0", after=switched, timeout=5)
                    await asyncio.sleep(3.0)
                    after_switch = (unregistered - media_t0 + 0.5, time.monotonic() - media_t0 - 0.2)
                    await alice.get_by_test_id("hangup").click()
                    result = await caller.wait(timeout=15)

                # The next call reaches the client's own phone.
                second = await start_caller(registrar.uri(LINE), hangup_after=2.0, max_seconds=30)
                async with second:
                    done = await second.wait_for("done", timeout=20)
                phone_result = await asyncio.wait_for(phone, 30)
                status = await line_status(bridge)
                records = await bridge.wait_for_calls(lambda cs: len(cs) == 2 and all(c["outcome"] for c in cs))
            finally:
                await browser.close()

    print(
        f"\nregistered {registered_in * 1000:.0f} ms after the takeover; unregistered"
        f" {(unregistered - switched) * 1000:.0f} ms after the switch"
    )
    assert registered_in < 2.0
    assert unregistered - switched < 2.0
    assert status["registered"] is False
    assert (records[0]["answered_by"], records[0]["line_id"], records[0]["outcome"]) == (
        "alice",
        "acme-takeover",
        "answered",
    )
    assert any("to the client's own phone" in line for _, line in registrar.lines)
    assert done["ok"], done
    assert phone_result.ok, phone_result
    assert result.recording is not None
    samples, rate = read_wav(result.recording)
    talk = samples[int(after_switch[0] * rate) : int(after_switch[1] * rate)]
    assert tone_present(talk, rate, AGENT_HZ), "after the switch, the call in progress still has its audio"


async def test_wrong_credentials_show_the_error_and_do_not_storm_the_registrar(
    playwright: Playwright, tmp_path: Path
) -> None:
    mic = await asyncio.to_thread(write_tone_wav, tmp_path / "mic.wav", AGENT_HZ, 5.0, rate=48000)
    async with (
        client_registrar(tmp_path / "registrar", password="right", phone_uri="sip:phone@127.0.0.1:9") as registrar,
        BridgeProcess.configured(tmp_path, tenant=tenant(tmp_path, registrar.port, "wrong")) as bridge,
    ):
        await bridge.wait_ready()
        browser = await launch(playwright, mic)
        try:
            page = await signed_in_as(browser, bridge, "acme-admin")
            # The admin takes over from the page.
            until = (datetime.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
            await page.get_by_test_id("takeover-until-acme-takeover").fill(until)
            await page.get_by_test_id("takeover-acme-takeover").click()
            await expect(page.get_by_test_id("overflow-active-acme-takeover")).to_have_text(
                "The bridge is taking this line now."
            )
            await expect(page.get_by_test_id("registration-error-acme-takeover")).to_contain_text(
                "The registrar refused the credentials.", timeout=10_000
            )
            await expect(page.get_by_test_id("registration-acme-takeover")).to_have_text("Not registered.")
            await check_accessibility(page, "client admin page with an error")
            status = await line_status(bridge)
            await asyncio.sleep(5.0)
            registers = registrar.registers()
            # Another client's admin sees none of it, on the page or through the API.
            other = await signed_in_as(browser, bridge, "globex-admin")
            await expect(other.get_by_test_id("lines-empty")).to_be_visible()
            assert await other.get_by_test_id("line-acme-takeover").count() == 0
            refused = await other.evaluate(
                "fetch('/api/overflow/lines/acme-takeover/switch', {method: 'POST', credentials: 'same-origin',"
                " headers: {'Content-Type': 'application/json'}, body: '{\"on\": false}'}).then(r => r.status)"
            )
            assert refused == 404
        finally:
            await browser.close()
    assert status["last_error"] == "The registrar refused the credentials."
    assert status["registered"] is False
    assert not registrar.saved()
    # One attempt: the bare REGISTER and the one with the (wrong) credentials; the retry waits 30 s.
    assert 1 <= len(registers) <= 2, registers


async def signed_in_as(browser: Browser, bridge: BridgeProcess, login: str) -> Page:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(bridge.http("/login"))
    await page.get_by_test_id("login-user").fill(login)
    await page.get_by_test_id("login-password").fill("alice-demo")
    await page.get_by_test_id("login-submit").click()
    await page.wait_for_url("**/client")
    return page
