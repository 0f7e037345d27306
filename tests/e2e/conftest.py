"""Fixtures for end-to-end tests: a real bridge process and the peers it needs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Playwright, async_playwright

from harness.bridge import BridgeProcess
from harness.services import fresh_database
from peers.require import require_pjsua2, require_program, require_sipp


@pytest.fixture(autouse=True)
def _peers_installed() -> None:
    require_pjsua2()
    require_sipp()
    require_program("espeak-ng")


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    """Playwright, for the tests that drive Chromium (each requires the chromium program itself)."""
    require_program("chromium")
    async with async_playwright() as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The same record tests run on SQLite and on PostgreSQL (a fresh schema each time)."""
    async with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[BridgeProcess]:
    """The demo tenant on SQLite."""
    async with BridgeProcess.configured(tmp_path) as running:
        await running.wait_ready()
        yield running
        running.assert_loop_never_blocked()
