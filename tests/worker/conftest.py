"""Fixtures of the worker tests: real peers required, loopback ICE for the in-test browsers, media files."""

from __future__ import annotations

import importlib.util

import pytest
from worker_peers import Media

from audio import CALLER_HZ, write_tone_wav
from peers.require import require, require_pjsua2
from telephony.media_assets import ensure_fallback_greeting, ensure_hold_music


@pytest.fixture(autouse=True)
def _peers_installed() -> None:
    require_pjsua2()
    require(importlib.util.find_spec("aiortc") is not None, "aiortc (pip: aiortc)")


@pytest.fixture(autouse=True)
def _loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-test browsers gather on loopback only (aioice skips it otherwise)."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    cache = tmp_path_factory.mktemp("media")
    return Media(
        greeting=ensure_fallback_greeting(cache),
        music=ensure_hold_music(cache),
        caller_tone=write_tone_wav(cache / "caller440.wav", CALLER_HZ, 1.0),
    )
