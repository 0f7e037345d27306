"""The softphone pages in headless Chromium, against the fake bridge, with real WebRTC audio.

The caller's side of the fake bridge plays 440 Hz once a call is answered;
the agent's fake microphone plays 1000 Hz. Each side's ears are checked:
the page through `window.hotlineTest`, the bridge through what aiortc received.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from audio import AGENT_HZ, CALLER_HZ, tone_present
from harness.accessibility import check_accessibility

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.peers, pytest.mark.timeout(60)]


def expect(locator: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(locator)


async def eventually(check: Any, timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Polls a check (plain or async) until it returns something truthy; returns its last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(interval)


def sent(bridge: Any, kind: str, **fields: Any) -> list[dict[str, Any]]:
    """The messages of `kind` (with these field values) the page sent so far."""
    return [m for m in bridge.received if m["type"] == kind and all(m.get(k) == v for k, v in fields.items())]


async def sign_in(page: Any) -> None:
    await page.goto("/login")
    await page.get_by_test_id("login-user").fill("alice")
    await page.get_by_test_id("login-password").fill("alice-demo")
    await page.get_by_test_id("login-submit").click()
    await page.wait_for_url("**/agent")
    await expect(page.get_by_test_id("connection-status")).to_have_text("Connected")


async def go_available(page: Any) -> None:
    await page.get_by_test_id("go-available").click()
    await expect(page.get_by_test_id("state-label")).to_have_text("Available")


async def ring(page: Any, bridge: Any) -> str:
    call_id = await bridge.send_offer()
    await expect(page.get_by_test_id("call-panel")).to_have_attribute("data-phase", "ringing")
    await expect(page.get_by_test_id("brand-label")).to_have_text("Acme Furniture")
    await bridge.wait_for("rtc_offer", call_id=call_id)
    return call_id


async def answered_call(page: Any, bridge: Any) -> str:
    """Signed in, available, rung and answered, with the caller's tone heard."""
    await sign_in(page)
    await go_available(page)
    call_id = await ring(page, bridge)
    await page.get_by_test_id("answer").click()
    await expect(page.get_by_test_id("call-heading")).to_have_text("On call")
    assert await eventually(lambda: page.evaluate("hotlineTest.firstRemoteToneAt(440)")), "no 440 Hz reached the page"
    return call_id


async def bridge_hears(bridge: Any, freq: float, seconds: float = 0.5, settle: float = 0.3) -> bool:
    """The agent's audio at the bridge holds `freq`, after `settle` s for frames in flight."""
    await asyncio.sleep(settle)
    since = time.monotonic()
    await asyncio.sleep(seconds)
    samples, rate = bridge.leg.audio_since(since)
    return len(samples) > rate * seconds / 2 and tone_present(samples, rate, freq)


async def page_hears(page: Any, freq: float) -> bool:
    """The caller's tone dominates what reaches the page right now."""
    level = await page.evaluate("hotlineTest.receivedLevel()")
    share = await page.evaluate(f"hotlineTest.remoteFrequencyEnergy({freq})")
    return level > -50 and share > 0.5


# ------------------------------------------------------------------ sign-in


async def test_login_explains_a_wrong_password_then_signs_in(page: Any, bridge: Any) -> None:
    await page.goto("/login")
    error = page.get_by_test_id("login-error")
    await expect(error).to_be_hidden()
    await page.get_by_test_id("login-user").fill("alice")
    await page.get_by_test_id("login-password").fill("wrong")
    await page.get_by_test_id("login-submit").click()
    await expect(error).to_have_text(re.compile("login and password do not match"))
    await expect(page.get_by_test_id("login-password")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_test_id("login-password")).to_be_focused()

    await page.get_by_test_id("login-password").fill("alice-demo")
    await page.get_by_test_id("login-password").press("Enter")
    await page.wait_for_url("**/agent")
    await expect(page.get_by_test_id("connection-status")).to_have_text("Connected")
    await expect(page.get_by_test_id("agent-name")).to_have_text("Alice Martin")

    await page.get_by_test_id("logout").click()
    await page.wait_for_url("**/login")
    assert not bridge.sessions


async def test_agent_page_sends_strangers_to_login(page: Any) -> None:
    await page.goto("/agent")
    await page.wait_for_url("**/login")


# -------------------------------------------------------------- shift, state


async def test_state_changes_and_shift_view(page: Any, bridge: Any) -> None:
    await sign_in(page)
    await expect(page.get_by_test_id("shift-now")).to_have_text(
        re.compile("On shift now: Acme Furniture, Globex Insurance")
    )
    slots = page.get_by_test_id("shift-slot")
    await expect(slots).to_have_count(4)
    await expect(slots.first).to_have_attribute("data-now", "true")
    await expect(slots.first).to_contain_text("On shift now")

    await go_available(page)
    await bridge.wait_for("set_state", state="available")
    await expect(page.get_by_test_id("go-available")).to_have_attribute("aria-disabled", "true")
    await expect(page.get_by_test_id("go-available-why")).to_have_text("You are taking calls.")

    await page.get_by_test_id("pause-reason").select_option("lunch")
    await page.get_by_test_id("pause").click()
    await expect(page.get_by_test_id("state-label")).to_have_text("Paused")
    await expect(page.get_by_test_id("state-reason")).to_have_text("(lunch)")
    await bridge.wait_for("set_state", state="paused", reason="lunch")
    await expect(page.get_by_test_id("state-timer")).to_have_text(re.compile(r"^0:0\d$"))
    await expect(page.get_by_test_id("announcer")).to_have_text("You are paused: lunch.")


async def test_go_available_is_disabled_off_shift_and_says_when_the_next_slot_starts(page: Any, bridge: Any) -> None:
    bridge.on_shift = False
    await sign_in(page)
    button = page.get_by_test_id("go-available")
    await expect(button).to_have_attribute("aria-disabled", "true")
    await expect(button).to_be_disabled()  # Playwright honours aria-disabled
    why = page.get_by_test_id("go-available-why")
    await expect(why).to_have_text(
        re.compile(r"^You are not on shift\. Your next slot starts \w{3} \d\d \w{3} \d\d:00\.$")
    )
    await expect(button).to_have_accessible_description(re.compile("You are not on shift"))
    await expect(page.get_by_test_id("shift-now")).to_have_text("Not on shift")
    await expect(page.get_by_test_id("shift-slot").first).to_have_attribute("data-now", "false")

    await button.click(force=True)
    await asyncio.sleep(0.2)
    assert not sent(bridge, "set_state"), "a disabled button sent set_state"

    await bridge.set_on_shift(True)
    await expect(button).to_have_attribute("aria-disabled", "false")
    await expect(why).to_have_text("")


# ---------------------------------------------------------------- the call


async def test_offer_shows_the_brand_caller_and_wait_then_answer_brings_the_callers_audio(
    page: Any, bridge: Any
) -> None:
    await sign_in(page)
    await go_available(page)
    call_id = await bridge.send_offer()

    panel = page.get_by_test_id("call-panel")
    await expect(panel).to_have_attribute("data-phase", "ringing")
    await expect(page.get_by_test_id("brand-label")).to_have_text("Acme Furniture")
    await expect(page.get_by_test_id("caller-number")).to_have_text("06 12 •• •• 78")
    await expect(page.get_by_test_id("kb-link")).to_have_attribute("href", "https://kb.example.com/acme")
    await expect(page.get_by_test_id("wait-timer")).to_have_text(re.compile(r"^0:0[4-9]$"))
    await expect(page.get_by_test_id("ring-countdown")).to_have_text(re.compile(r"^1[0-5] s$"))
    await expect(page.get_by_test_id("alert-announcer")).to_contain_text("Incoming call for Acme Furniture")
    assert await page.evaluate("hotlineTest.ringing()")
    assert "Acme Furniture" in await page.title()

    # The media leg is negotiated while ringing, complete (non-trickle) and held.
    offer = await bridge.wait_for("rtc_offer", call_id=call_id)
    assert "a=candidate" in offer["sdp"]
    assert ".local" not in offer["sdp"]
    assert await eventually(lambda: page.evaluate("hotlineTest.peerState() === 'connected'"))
    assert not await page.evaluate("hotlineTest.remoteAudible()")
    assert await page.evaluate("hotlineTest.firstRemoteToneAt(440)") is None

    await page.get_by_test_id("answer").click()
    await bridge.wait_for("answer", call_id=call_id)
    await expect(panel).to_have_attribute("data-phase", "connected")
    await expect(page.get_by_test_id("call-timer")).to_have_text(re.compile(r"^0:0\d$"))
    assert not await page.evaluate("hotlineTest.ringing()")

    heard_at = await eventually(lambda: page.evaluate("hotlineTest.firstRemoteToneAt(440)"), timeout=3)
    assert heard_at, "the caller's 440 Hz never reached the page"
    latency_ms = heard_at - await page.evaluate("hotlineTest.answerClickedAt")
    assert 0 <= latency_ms < 1500, f"answer to first caller audio took {latency_ms:.0f} ms"
    assert await page.evaluate("hotlineTest.remoteAudible()")
    assert await page_hears(page, CALLER_HZ)
    assert await page.evaluate("hotlineTest.remoteFrequencyEnergy(1000)") < 0.05
    assert await bridge_hears(bridge, AGENT_HZ), "the bridge did not hear the agent's 1000 Hz"
    assert bridge.legs_opened == 1


async def test_mute_hold_dtmf_and_hang_up_send_the_right_messages(page: Any, bridge: Any) -> None:
    call_id = await answered_call(page, bridge)
    mute = page.get_by_test_id("mute")

    await mute.click()
    await bridge.wait_for("mute", call_id=call_id, on=True)
    await expect(mute).to_have_attribute("aria-pressed", "true")
    await expect(page.get_by_test_id("call-status")).to_have_text("Connected, your microphone is muted")
    assert not await bridge_hears(bridge, AGENT_HZ), "muted, yet the bridge still hears the agent"
    await mute.click()
    await bridge.wait_for("mute", call_id=call_id, on=False)
    await expect(mute).to_have_attribute("aria-pressed", "false")
    assert await bridge_hears(bridge, AGENT_HZ)

    await page.get_by_test_id("hold").click()
    await bridge.wait_for("hold", call_id=call_id, on=True)
    await expect(page.get_by_test_id("call-heading")).to_have_text("On hold")
    await expect(page.get_by_test_id("hold")).to_have_attribute("aria-pressed", "true")
    assert await eventually(lambda: page.evaluate("hotlineTest.receivedLevel() < -60")), "held, yet the tone goes on"
    await expect(page.get_by_test_id("dtmf-1")).to_be_disabled()
    await page.get_by_test_id("hold").click()
    await bridge.wait_for("hold", call_id=call_id, on=False)
    await expect(page.get_by_test_id("call-heading")).to_have_text("On call")
    assert await eventually(lambda: page_hears(page, CALLER_HZ))

    for key in ("dtmf-1", "dtmf-star", "dtmf-hash"):
        await page.get_by_test_id(key).click()
    await expect(page.get_by_test_id("dtmf-sent")).to_have_text("1*#")
    assert [m["digits"] for m in sent(bridge, "dtmf")] == ["1", "*", "#"]

    await page.get_by_test_id("hangup").click()
    await bridge.wait_for("hangup", call_id=call_id)
    await expect(page.get_by_test_id("call-panel")).to_have_attribute("data-phase", "idle")
    await expect(page.get_by_test_id("state-label")).to_have_text("Wrap-up")
    await expect(page.get_by_test_id("announcer")).to_contain_text("You hung up.")
    assert await page.evaluate("hotlineTest.peerState()") is None


async def test_decline_and_a_cancelled_offer_stop_the_ringing(page: Any, bridge: Any) -> None:
    await sign_in(page)
    await go_available(page)
    panel = page.get_by_test_id("call-panel")

    call_id = await ring(page, bridge)
    assert await page.evaluate("hotlineTest.ringing()")
    await page.get_by_test_id("decline").click()
    await bridge.wait_for("decline", call_id=call_id)
    await expect(panel).to_have_attribute("data-phase", "idle")
    await expect(page.get_by_test_id("brand-label")).to_have_text("")  # nothing stale for the next call
    assert not await page.evaluate("hotlineTest.ringing()")
    assert await page.evaluate("hotlineTest.peerState()") is None

    await ring(page, bridge)
    assert await page.evaluate("hotlineTest.ringing()")
    await bridge.cancel_offer("caller_hung_up")
    await expect(panel).to_have_attribute("data-phase", "idle")
    await expect(page.get_by_test_id("announcer")).to_contain_text("The caller hung up before you answered.")
    assert not await page.evaluate("hotlineTest.ringing()")
    assert await page.evaluate("hotlineTest.peerState()") is None


async def test_the_ringer_can_be_muted(page: Any, bridge: Any) -> None:
    await sign_in(page)
    await page.get_by_test_id("ringer-mute").check()
    await go_available(page)
    await ring(page, bridge)
    await expect(page.get_by_test_id("call-status")).to_have_text("Ringer silent")
    assert not await page.evaluate("hotlineTest.ringing()")
    await page.get_by_test_id("ringer-mute").uncheck()
    assert await page.evaluate("hotlineTest.ringing()")
    await page.keyboard.press("Escape")
    assert not await page.evaluate("hotlineTest.ringing()")
    await expect(page.get_by_test_id("call-panel")).to_have_attribute("data-phase", "ringing")


# ------------------------------------------------------ connection, restarts


async def test_a_dropped_websocket_reconnects_and_keeps_the_call(page: Any, bridge: Any) -> None:
    call_id = await answered_call(page, bridge)
    status = page.get_by_test_id("connection-status")

    await bridge.drop_sockets()
    await expect(status).to_have_text(re.compile(r"Connection lost\. Reconnecting in \d+ s…"))
    await expect(status).to_have_attribute("data-status", "waiting")
    await expect(status).to_have_text("Connected")
    assert bridge.connections == 2
    # The media never went through the socket: same leg, same call, still audible.
    await expect(page.get_by_test_id("call-panel")).to_have_attribute("data-phase", "connected")
    await expect(page.get_by_test_id("call-status")).to_have_text("Connected")
    assert bridge.legs_opened == 1
    assert await page_hears(page, CALLER_HZ)

    # Controls used while reconnecting are sent once the socket is back.
    await page.evaluate("hotlineTest.dropSocket()")  # the page's side of a drop
    await expect(status).to_have_attribute("data-status", "waiting")
    await page.get_by_test_id("mute").click()
    await page.get_by_test_id("hangup").click()
    await expect(status).to_have_text("Connected")
    await bridge.wait_for("mute", call_id=call_id, on=True)
    await bridge.wait_for("hangup", call_id=call_id)
    await expect(page.get_by_test_id("call-panel")).to_have_attribute("data-phase", "idle")
    assert bridge.connections == 3


async def test_a_reloaded_page_reattaches_to_the_live_call_with_a_fresh_media_leg(page: Any, bridge: Any) -> None:
    call_id = await answered_call(page, bridge)
    await page.reload()
    await expect(page.get_by_test_id("call-panel")).to_have_attribute("data-phase", "connected")
    await expect(page.get_by_test_id("brand-label")).to_have_text("Acme Furniture")
    assert await eventually(lambda: len(sent(bridge, "rtc_offer", call_id=call_id)) == 2), "no new media leg"
    assert await eventually(lambda: page_hears(page, CALLER_HZ)), "no caller audio after the reload"
    assert bridge.legs_opened == 2


async def test_a_failed_media_path_is_restarted_with_a_new_offer(page: Any, bridge: Any) -> None:
    call_id = await answered_call(page, bridge)
    await page.evaluate("hotlineTest.simulateMediaFailure('failed')")
    assert await eventually(lambda: len(sent(bridge, "rtc_offer", call_id=call_id)) == 2), "no ICE-restart offer"
    first, restart = sent(bridge, "rtc_offer", call_id=call_id)
    ufrag = re.compile(r"^a=ice-ufrag:(\S+)", re.M)
    assert ufrag.search(first["sdp"])[1] != ufrag.search(restart["sdp"])[1], "the second offer is not an ICE restart"
    # The fake answers a restart on a new aiortc connection, as the real worker does.
    await asyncio.sleep(0.5)
    assert await eventually(lambda: page_hears(page, CALLER_HZ)), "no caller audio after the ICE restart"
    assert bridge.legs_opened == 2


async def test_a_second_tab_takes_over_and_the_mic_check_does_not(page: Any, bridge: Any) -> None:
    await sign_in(page)
    status = page.get_by_test_id("connection-status")
    mic_check = await page.context.new_page()
    await mic_check.goto("/agent/mic-check")
    await expect(mic_check.get_by_test_id("mic-check-rtt")).to_contain_text("Round trip")
    # The mic check's probe socket only pings: the softphone keeps its place.
    await expect(status).to_have_text("Connected")
    await mic_check.close()
    # A second softphone tab does take over; this one steps aside without fighting back.
    second = await page.context.new_page()
    await second.goto("/agent")
    await expect(status).to_have_text("Open in another tab or window")
    await expect(page.get_by_test_id("reconnect-here")).to_be_visible()
    await second.close()


# ---------------------------------------------------------------- keyboard


async def test_keyboard_shortcuts(page: Any, bridge: Any) -> None:
    await sign_in(page)
    await go_available(page)

    call_id = await ring(page, bridge)
    await page.keyboard.press("d")
    await bridge.wait_for("decline", call_id=call_id)

    # Answered at once, before the page's media offer is out: the offer still goes first.
    call_id = await bridge.send_offer()
    await expect(page.get_by_test_id("call-panel")).to_have_attribute("data-phase", "ringing")
    await page.keyboard.press("a")
    await bridge.wait_for("answer", call_id=call_id)
    kinds = [m["type"] for m in bridge.received if m.get("call_id") == call_id]
    assert kinds[:2] == ["rtc_offer", "answer"]
    await expect(page.get_by_test_id("call-heading")).to_have_text("On call")

    await page.keyboard.press("m")
    await bridge.wait_for("mute", call_id=call_id, on=True)
    await page.keyboard.press("o")
    await bridge.wait_for("hold", call_id=call_id, on=True)
    await expect(page.get_by_test_id("call-heading")).to_have_text("On hold")
    await page.keyboard.press("o")
    await expect(page.get_by_test_id("call-heading")).to_have_text("On call")
    await page.keyboard.press("5")
    await bridge.wait_for("dtmf", call_id=call_id, digits="5")

    # Not while choosing in a field, and a plain H never hangs up.
    await page.get_by_test_id("mic-select").focus()
    await page.keyboard.press("m")
    await page.keyboard.press("9")
    await page.locator("body").focus()
    await page.evaluate("document.activeElement.blur()")
    await page.keyboard.press("h")
    await asyncio.sleep(0.2)
    kinds = [(m["type"], m.get("on"), m.get("digits")) for m in bridge.received]
    assert kinds.count(("mute", True, None)) == 1
    assert ("mute", False, None) not in kinds
    assert ("dtmf", None, "9") not in kinds
    assert ("hangup", None, None) not in kinds

    await page.keyboard.press("Shift+H")
    await bridge.wait_for("hangup", call_id=call_id)
    await expect(page.get_by_test_id("call-panel")).to_have_attribute("data-phase", "idle")


# ----------------------------------------------------------- accessibility


async def test_accessibility_basics(page: Any, bridge: Any) -> None:
    await page.goto("/login")
    await check_accessibility(page, "login")
    await expect(page.get_by_role("textbox", name="Login")).to_be_focused()
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await sign_in(page)
    # Keyboard focus is visible: a 3 px outline on the focused control.
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to the call")).to_be_focused()
    assert await page.evaluate("getComputedStyle(document.activeElement).outlineWidth") == "3px"
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Microphone check")).to_be_focused()

    # The microphone is already allowed here, so it opens without asking.
    await expect(page.get_by_test_id("mic-permission")).to_be_hidden()
    await expect(page.get_by_test_id("mic-select")).not_to_have_value("")
    await check_accessibility(page, "idle softphone")
    for role, name in [
        ("button", "Go available"),
        ("combobox", "Pause reason"),
        ("button", "Pause"),
        ("button", "Log out"),
        ("combobox", "Microphone"),
        ("combobox", "Speaker"),
        ("checkbox", "Mute the ringer"),
        ("meter", "Microphone level"),
        ("status", None),
    ]:
        await expect(page.get_by_role(role, name=name).first).to_be_attached()

    await go_available(page)
    await ring(page, bridge)
    await check_accessibility(page, "ringing")
    await expect(page.get_by_role("button", name="Answer")).to_have_attribute("aria-keyshortcuts", "A")
    await expect(page.get_by_role("link", name="Open the Acme Furniture knowledge base")).to_be_visible()
    await page.get_by_role("button", name="Answer").click()
    await expect(page.get_by_role("button", name="Mute")).to_be_focused()
    await check_accessibility(page, "on call")
    for name in ("Hold", "Hang up", "Star", "Hash", "1"):
        await expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()

    await page.set_viewport_size({"width": 360, "height": 740})
    await check_accessibility(page, "on call, narrow window")
    await page.emulate_media(color_scheme="dark")
    await check_accessibility(page, "on call, dark scheme")


# ---------------------------------------------------------------- mic check


async def test_mic_check_hears_the_microphone_and_measures_the_round_trip(page: Any, bridge: Any) -> None:
    await sign_in(page)
    await page.get_by_test_id("mic-check-link").click()
    await page.wait_for_url("**/agent/mic-check")
    rtt = page.get_by_test_id("mic-check-rtt")
    await expect(rtt).to_have_text(re.compile(r"^Round trip: fastest \d+ ms, average \d+ ms \(10 messages\)$"))
    await expect(page.get_by_test_id("mic-check-rtt-verdict")).to_have_text("Your connection is good for calls.")
    assert len(sent(bridge, "ping")) >= 10

    # The microphone is already allowed here, so the test starts by itself.
    await expect(page.get_by_test_id("mic-start")).to_be_hidden()
    await expect(page.get_by_test_id("mic-verdict")).to_have_text("Your microphone is working.")
    await expect(page.get_by_test_id("mic-select")).not_to_have_value("")
    await check_accessibility(page, "mic check")


async def test_the_agent_sees_their_own_earnings_today_and_this_week(page: Any, bridge: Any) -> None:
    await sign_in(page)
    await expect(page.get_by_test_id("earnings-today")).to_have_text("1.50 EUR")
    await expect(page.get_by_test_id("earnings-week")).to_have_text("12.40 EUR")
    assert await page.get_by_test_id("earnings-statement").get_attribute("href") == "/api/pay/statement?format=html"
