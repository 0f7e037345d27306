"""The OpenAPI document: served in public, and naming every /api/ route the app serves, and only those."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from agent_client.web_openapi import DOCUMENT
from harness.full_web import FullApp, full_app


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[tuple[FullApp, TestServer]]:
    async with full_app(tmp_path) as fa, TestServer(fa.app, host="127.0.0.1") as server:
        yield fa, server


async def test_the_document_is_public_and_covers_every_api_route(bridge: tuple[FullApp, TestServer]) -> None:
    fa, server = bridge
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/api/openapi.json")) as response:
        assert response.status == 200
        assert await response.json() == DOCUMENT
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in fa.app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and (route.resource.canonical.startswith("/api/") or route.resource.canonical == "/healthz")
    }
    documented = {(method, path) for path, operations in DOCUMENT["paths"].items() for method in operations}
    assert documented == served


def test_every_refusal_and_every_body_is_described() -> None:
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert any(status.startswith("2") for status in answers), f"{method} {path}"
            if "security" not in operation:
                assert {"401", "403", "429"} <= set(answers), f"{method} {path}: the sign-in refusals"
            elif operation["security"]:
                assert "401" in answers, f"{method} {path}"
            if "requestBody" in operation or operation.get("parameters"):
                assert "400" in answers, f"{method} {path}: a bad body or parameter"
