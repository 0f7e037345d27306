"""Schemathesis against the bridge's own OpenAPI document: no server error, every answer as documented.

The whole app (harness.full_web) is served on 127.0.0.1 by aiohttp's test
server on the test's loop, under the loop guard; schemathesis runs in a
process of its own (harness/api_fuzz.py says what it tries and why apart).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from agent_client.web_auth import Principal, Role
from agent_client.web_openapi import DOCUMENT
from harness.full_web import FullApp, full_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[FullApp, str]]:
    async with full_app(tmp_path) as fa, TestServer(fa.app, host="127.0.0.1") as server:
        yield fa, str(server.make_url("/")).rstrip("/")


async def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(
    served: tuple[FullApp, str],
) -> None:
    fa, base_url = served
    bob = fa.sessions.create(Principal("bob", Role.AGENT, frozenset()))
    known = {
        "closed_call": fa.calls["acme"],
        "live_call": fa.live["acme"],
        "line": fa.lines["acme"],
        "session_id": bob.id,
    }
    started = time.monotonic()
    fuzzer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "harness.api_fuzz",
        base_url,
        json.dumps(known),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=TESTS.parent,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])},
    )
    out, err = await fuzzer.communicate()
    elapsed = time.monotonic() - started
    assert fuzzer.returncode == 0, err.decode()[-3000:]
    report = json.loads(out)
    statuses = {int(status): n for status, n in report["statuses"].items()}
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    print(
        f"\nschemathesis {report['version']}: {report['operations']} operations, {report['requests']} requests, "
        f"{server_errors} server errors, {len(report['failures'])} failures in {elapsed:.1f} s; "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    for label, seen in report["by_operation"].items():
        print(f"  {label}: {seen}")
    assert report["operations"] == sum(len(operations) for operations in DOCUMENT["paths"].values())
    assert not report["failures"], "\n\n".join(report["failures"][:10])
    assert server_errors == 0
    assert elapsed < 90
