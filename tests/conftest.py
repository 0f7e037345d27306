import sys
from pathlib import Path

# Test helpers are imported as top-level modules: `from audio import tone_present`,
# `from peers.sipp import run_sipp`.
sys.path.insert(0, str(Path(__file__).parent))


# --- a test fails if anything blocks its event loop -------------------------------------------------------

import gc
from collections.abc import AsyncIterator

import pytest
from loop_guard import loop_never_blocked


@pytest.fixture(autouse=True)
def _earlier_tests_garbage_collected() -> None:
    """A whole-heap collection can hold the loop for a quarter of a second once a thousand tests have
    run in this process (0.26 s measured, caught while SQLAlchemy closed a connection). Collect before the test's
    loop is watched, then freeze what survives, so the test's own collections scan only its own objects."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
async def _event_loop_never_blocked() -> AsyncIterator[None]:
    async with loop_never_blocked():
        yield
