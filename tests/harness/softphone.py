"""Debian's Chromium as the agent's softphone, driven by Playwright, against a real bridge.

    browser = await launch(playwright, microphone=agent_tone_wav)
    page = await signed_in(browser, bridge, "alice", "alice-demo")
    await go_available(page)

The browser's microphone plays a WAV file (the agent's tone); the page's
`window.hotlineTest` (agent_client/README.md) tells what it receives.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, Playwright, expect

from harness.bridge import BridgeProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
]


async def launch(playwright: Playwright, microphone: Path, *, extra_args: Sequence[str] = ()) -> Browser:
    return await playwright.chromium.launch(
        executable_path=shutil.which("chromium") or CHROMIUM,
        headless=True,
        args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={microphone}", *extra_args],
    )


async def signed_in(
    browser: Browser,
    bridge: BridgeProcess,
    login: str,
    password: str,
    *,
    watch: Callable[[Page], None] | None = None,
    **context_options: Any,
) -> Page:
    """A new context signed in as `login` on the agent page; `watch` sees the page before it loads anything."""
    context = await browser.new_context(**context_options)
    page = await context.new_page()
    if watch is not None:
        watch(page)
    await page.goto(bridge.http("/login"))
    await page.get_by_test_id("login-user").fill(login)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()
    await page.wait_for_url("**/agent")
    await expect(page.get_by_test_id("connection-status")).to_contain_text("onnected", timeout=10_000)
    return page


async def go_available(page: Page) -> None:
    await expect(page.get_by_test_id("go-available")).to_be_enabled(timeout=10_000)
    await page.get_by_test_id("go-available").click()
    await expect(page.get_by_test_id("state-label")).to_have_text("Available", ignore_case=True, timeout=5_000)


async def answer_call(page: Page, brand: str, *, ring_s: float = 0.0) -> float:
    """Wait for the screen-pop, check the brand before answering, answer after `ring_s` of ringing.

    Returns the monotonic time of the click.
    """
    await expect(page.get_by_test_id("brand-label")).to_have_text(brand, timeout=15_000)
    await expect(page.get_by_test_id("answer")).to_be_enabled()
    await asyncio.sleep(ring_s)
    clicked = time.monotonic()
    await page.get_by_test_id("answer").click()
    return clicked


async def answer_to_tone_ms(page: Page, freq: float) -> float | None:
    """From the last Answer click to `freq` first arriving in the page, once it has (page clock)."""
    value = await page.evaluate(
        f"window.hotlineTest.firstRemoteToneAt({freq}) === null ? null"
        f" : window.hotlineTest.firstRemoteToneAt({freq}) - window.hotlineTest.answerClickedAt"
    )
    return None if value is None else float(value)


async def hears(page: Page, freq: float) -> float:
    """The share of the audio the page receives now that is at `freq` (window.hotlineTest.remoteFrequencyEnergy)."""
    return float(await page.evaluate(f"window.hotlineTest.remoteFrequencyEnergy({freq})"))


async def wait_hears(page: Page, freq: float, timeout: float = 5.0, share: float = 0.3) -> None:
    """Until the page hears `freq` with at least `share` of what it receives; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    energy = 0.0
    while time.monotonic() < deadline:
        energy = await hears(page, freq)
        if energy >= share:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{page.url}: {freq} Hz not heard (share {energy:.2f})")
