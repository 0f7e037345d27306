"""Headless Chromium (Debian's) against the fake bridge, for the softphone pages.

One Chromium serves a whole test module (a fresh context, so fresh cookies and
storage, per test): launching it per test would cost about a second each. So
these tests run on a module-wide event loop: mark a module with
`pytest.mark.asyncio(loop_scope="module")`.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from loop_guard import loop_never_blocked

from audio import AGENT_HZ, write_tone_wav
from harness.softphone import CHROMIUM, CHROMIUM_FLAGS
from peers.require import require, require_program


def _require_python(module: str, pip_name: str) -> None:
    require(importlib.util.find_spec(module) is not None, f"{pip_name} (pip: {pip_name})")


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def _event_loop_never_blocked() -> AsyncIterator[None]:
    """tests/conftest.py's check, on the module-wide loop these tests run on."""
    async with loop_never_blocked():
        yield


@pytest.fixture(scope="session")
def agent_tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent's microphone plays 1000 Hz, so the bridge can tell it apart from the caller's 440 Hz."""
    return write_tone_wav(tmp_path_factory.mktemp("tones") / "agent-1000hz.wav", AGENT_HZ, 4.0, rate=48000)


# The imports happen in plain fixtures: importing aiortc and av takes most of
# a second, which inside an async fixture would block the event loop.


@pytest.fixture
def fake_bridge_class(monkeypatch: pytest.MonkeyPatch) -> Any:
    _require_python("aiortc", "aiortc")
    import aioice.ice

    from .fake_bridge import FakeBridge

    # aioice skips loopback addresses, and this host may have nothing else.
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    return FakeBridge


@pytest.fixture(scope="module")
def playwright_api() -> Any:
    _require_python("playwright", "playwright")
    require_program("chromium")
    from playwright import async_api

    return async_api


@pytest_asyncio.fixture(loop_scope="module")
async def bridge(fake_bridge_class: Any) -> AsyncIterator[Any]:
    fake = fake_bridge_class()
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser(playwright_api: Any, agent_tone: Path) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=shutil.which("chromium") or CHROMIUM,
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={agent_tone}"],
        )
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(playwright_api: Any, browser: Any, bridge: Any) -> AsyncIterator[Any]:
    playwright_api.expect.set_options(timeout=5000)
    context = await browser.new_context(base_url=bridge.url)
    tab = await context.new_page()
    tab.set_default_timeout(5000)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    await context.close()
    assert not errors, f"the page threw: {errors}"
