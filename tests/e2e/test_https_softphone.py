"""`hotline serve` over HTTPS, end to end: a real agent in Chromium takes a real SIP call through it.

The bridge serves its web port with a certificate made here (HOTLINE_TLS_CERT /
HOTLINE_TLS_KEY). Chromium trusts exactly that certificate (pinned by its
public key), so the page is a real secure origin: the microphone, the Secure
session cookie and the `wss://` agent socket are what an agent at home gets.
A pjsua2 caller plays 440 Hz, the agent's fake microphone 1000 Hz; who hears
what is decided from the caller's recording and the page's received audio.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.async_api import Playwright, WebSocket, expect

from audio import AGENT_HZ, CALLER_HZ, read_wav, tone_present, write_tone_wav
from harness.bridge import BridgeProcess
from harness.certs import self_signed
from harness.softphone import answer_call, go_available, hears, launch, signed_in, wait_hears
from harness.tenants import TENANTS
from peers.peer_process import start_caller

pytestmark = [pytest.mark.peers]

SOFTPHONE_TENANT = TENANTS / "softphone.toml"


def spki_pin(cert: Path) -> str:
    """Chromium's pin of a certificate: base64 of the SHA-256 of its SubjectPublicKeyInfo."""
    public_key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


async def cleartext_answer(port: int) -> bytes:
    """What the HTTPS port answers to a plain-HTTP request (until it closes, or 3 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(3.0):
            return await reader.read(65536)
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)


async def test_an_agent_takes_a_call_through_a_bridge_serving_https(playwright: Playwright, tmp_path: Path) -> None:
    cert, key = await asyncio.to_thread(self_signed, tmp_path)
    caller_tone = await asyncio.to_thread(write_tone_wav, tmp_path / "caller-440.wav", CALLER_HZ, 60.0)
    agent_tone = await asyncio.to_thread(write_tone_wav, tmp_path / "agent-1000.wav", AGENT_HZ, 60.0, rate=48000)
    pin = await asyncio.to_thread(spki_pin, cert)
    https = BridgeProcess.configured(
        tmp_path, tenant=SOFTPHONE_TENANT, HOTLINE_TLS_CERT=str(cert), HOTLINE_TLS_KEY=str(key)
    )
    async with https as bridge:
        assert bridge.http("/login").startswith("https://")
        await bridge.wait_ready()  # over HTTPS, verifying the bridge's certificate

        # No cleartext service on the port: a plain HTTP request gets no HTTP answer.
        answer = await cleartext_answer(bridge.http_port)
        assert not answer.startswith(b"HTTP/"), f"plain HTTP was served on the HTTPS port: {answer[:80]!r}"

        browser = await launch(playwright, agent_tone, extra_args=[f"--ignore-certificate-errors-spki-list={pin}"])
        try:
            sockets: list[WebSocket] = []
            page = await signed_in(
                browser, bridge, "alice", "alice-demo", watch=lambda p: p.on("websocket", lambda ws: sockets.append(ws))
            )
            origin = f"https://127.0.0.1:{bridge.http_port}"
            assert page.url == f"{origin}/agent"
            assert await page.evaluate("window.isSecureContext") is True
            cookies = {c["name"]: c for c in await page.context.cookies(origin)}
            session = cookies["hotline_session"]
            assert (session["secure"], session["httpOnly"], session["sameSite"]) == (True, True, "Strict")
            assert [ws.url for ws in sockets] == [f"wss://127.0.0.1:{bridge.http_port}/ws/agent"]
            assert not sockets[0].is_closed()

            await go_available(page)
            record = tmp_path / "caller.wav"
            async with await start_caller(
                bridge.uri("1001"), play=caller_tone, record=record, max_seconds=60, from_user="0612345678"
            ) as caller:
                media_t0 = float((await caller.wait_for("media_active", timeout=15))["t"])
                await expect(page.get_by_test_id("caller-number")).to_contain_text("0612345678")
                answered = await answer_call(page, "Acme Furniture")
                await wait_hears(page, CALLER_HZ, timeout=8.0)
                await asyncio.sleep(3.0)
                assert await hears(page, CALLER_HZ) > 0.3, "the agent hears the caller"
                assert await hears(page, AGENT_HZ) < 0.05, "the agent doesn't hear herself"
                hung_up = time.monotonic()
                await page.get_by_test_id("hangup").click()
                result = await caller.wait(timeout=15)
        finally:
            await browser.close()

        assert result.recording is not None
        samples, rate = await asyncio.to_thread(read_wav, result.recording)
        talk = samples[int((answered + 0.5 - media_t0) * rate) : int((hung_up - 0.3 - media_t0) * rate)]
        assert len(talk) > rate, "at least a second of conversation in the caller's recording"
        assert tone_present(talk, rate, AGENT_HZ), "the caller hears the agent"
        assert not tone_present(talk, rate, CALLER_HZ), "the caller doesn't hear himself"

        calls = await bridge.wait_for_calls(lambda cs: cs and cs[0]["outcome"])
        assert (calls[0]["outcome"], calls[0]["answered_by"], calls[0]["ended_by"]) == ("answered", "alice", "agent")
        bridge.assert_loop_never_blocked()


@pytest.mark.parametrize("problem", ["missing key", "key of another certificate"])
async def test_https_start_refuses_a_missing_or_mismatched_key(problem: str, tmp_path: Path) -> None:
    cert, _key = await asyncio.to_thread(self_signed, tmp_path)
    if problem == "missing key":
        key = tmp_path / "absent.pem"
        expected = f"hotline: HOTLINE_TLS_KEY: no such file: {key}"
    else:
        other = tmp_path / "other"
        other.mkdir()
        _other_cert, key = await asyncio.to_thread(self_signed, other)
        expected = "hotline: HOTLINE_TLS_CERT, HOTLINE_TLS_KEY: not a PEM certificate and its unencrypted key: "
    bridge = BridgeProcess.configured(tmp_path, HOTLINE_TLS_CERT=str(cert), HOTLINE_TLS_KEY=str(key))
    async with bridge:
        assert bridge.process is not None
        code = await asyncio.wait_for(bridge.process.wait(), timeout=20)
    assert code == 2, bridge.log_text()
    assert expected in bridge.log_text()
