import sys
from pathlib import Path

# Test helpers are imported as top-level modules: `from audio import tone_present`,
# `from peers.sipp import run_sipp`.
sys.path.insert(0, str(Path(__file__).parent))


# --- a test fails if anything blocks its event loop -------------------------------------------------------

from collections.abc import AsyncIterator

import pytest
from loop_guard import loop_never_blocked


@pytest.fixture(autouse=True)
async def _event_loop_never_blocked() -> AsyncIterator[None]:
    async with loop_never_blocked():
        yield
