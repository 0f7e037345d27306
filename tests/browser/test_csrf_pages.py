"""The real pages in Chromium against the real app: their POSTs pass the CSRF check, another site's don't."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from harness.full_web import FullApp, full_app

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.peers, pytest.mark.timeout(60)]


@pytest_asyncio.fixture(loop_scope="module")
async def served(tmp_path: Path) -> AsyncIterator[tuple[FullApp, TestServer]]:
    async with full_app(tmp_path) as fa, TestServer(fa.app, host="127.0.0.1") as server:
        yield fa, server


@pytest_asyncio.fixture(loop_scope="module")
async def evil_site() -> AsyncIterator[TestServer]:
    """Another origin (localhost is not 127.0.0.1 to a browser) with a page that posts to the bridge."""

    async def page(request: web.Request) -> web.Response:
        target = request.query["target"]
        script = f"""<script>
        window.forged = fetch({target!r}, {{method: 'POST', mode: 'no-cors', credentials: 'include',
          headers: {{'Content-Type': 'text/plain'}}, body: '{{"on": false}}'}}).then(() => 'sent', () => 'failed');
        </script>"""
        return web.Response(text=f"<!doctype html><title>evil</title>{script}", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    async with TestServer(app, host="localhost") as server:
        yield server


async def test_the_pages_posts_pass_and_another_sites_do_not(
    browser: Any, served: tuple[FullApp, TestServer], evil_site: TestServer
) -> None:
    fa, server = served
    base = str(server.make_url("/")).rstrip("/")
    context = await browser.new_context(base_url=base)
    tab = await context.new_page()
    tab.set_default_timeout(5000)
    try:
        await tab.goto("/login")
        await tab.get_by_test_id("login-user").fill("acme-admin")
        await tab.get_by_test_id("login-password").fill("acme-demo")
        await tab.get_by_test_id("login-submit").click()
        await tab.wait_for_url(f"{base}/client")
        switch = tab.get_by_test_id("overflow-switch-acme-weekend")
        await switch.wait_for()
        assert fa.overflow.current()["acme-weekend"].switched_on
        await switch.uncheck()
        await tab.wait_for_function(
            "document.querySelector('[data-testid=audit]').tBodies[0].rows.length > 0", timeout=5000
        )
        assert not fa.overflow.current()["acme-weekend"].switched_on
        assert await tab.get_by_test_id("client-error").is_hidden()

        target = f"{base}/api/overflow/lines/acme-weekend/switch"
        evil = await context.new_page()
        await evil.goto(str(evil_site.make_url("/").with_query(target=target)))
        assert await evil.evaluate("window.forged") == "sent"
        await evil.close()
        assert not fa.overflow.current()["acme-weekend"].switched_on, "the forged switch changed nothing"
        assert len(await fa.overflow.store.audit({"acme"})) == 1

        await tab.get_by_test_id("logout").click()
        await tab.wait_for_url(f"{base}/login")
        assert fa.sessions.live() == []
    finally:
        await context.close()
