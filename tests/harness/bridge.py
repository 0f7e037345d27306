"""Run `hotline serve` for real, as a separate process, and talk to it.

    async with BridgeProcess.configured(tmp_path) as bridge:
        await bridge.wait_ready()
        ... dial f"sip:1001@127.0.0.1:{bridge.sip_port}" ...
        calls = await bridge.calls()

The process gets its own var dir, database, SIP/HTTP/RTP ports, and asyncio's
debug mode. It logs every callback that holds its event loop
(`event_loop_stalled`); `assert_loop_never_blocked()` turns such a line at
the tests' bar (tests/loop_guard.py) into a failure.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
from loop_guard import stalls_in_log

from peers.ports import free_port_range, free_tcp_port
from peers.stopping import stop_child

REPO = Path(__file__).resolve().parents[2]
ADMIN_AUTH = "Basic " + base64.b64encode(b"admin:admin-demo").decode()


RTP_PORTS_PER_WORKER = 100


def _tcp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_block(workers: int) -> tuple[int, int, int]:
    """One block of ports free right now: the SIP port, the workers' SIP ports, their RTP ranges.

    Kamailio and pjsua listen on UDP *and* TCP, so SIP ports must be free for
    both; the block lies below the kernel's ephemeral range, where no outgoing
    connection can take a port meanwhile.
    """
    sip_ports = 1 + (workers if workers > 1 else 0)
    for _ in range(50):
        start = free_port_range(sip_ports + workers * RTP_PORTS_PER_WORKER + 1, even=False)
        if all(_tcp_free(port) for port in range(start, start + sip_ports)):
            rtp_min = start + sip_ports
            return start, start + 1, rtp_min + (rtp_min % 2)
    raise RuntimeError("no block of free ports for the bridge")


@dataclass
class BridgeProcess:
    var_dir: Path
    sip_port: int
    http_port: int
    database_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    log_path: Path | None = None
    _log_file: Any = None
    starts: int = 0

    @classmethod
    def configured(
        cls,
        tmp_path: Path,
        *,
        database_url: str | None = None,
        workers: int = 1,
        tenant: Path | None = None,
        **env: str,
    ) -> BridgeProcess:
        var_dir = tmp_path / "var"
        extra = dict(env)
        extra["HOTLINE_WORKERS"] = str(workers)
        sip_port, worker_base, rtp_min = _port_block(workers)
        if workers > 1:
            extra.setdefault("HOTLINE_WORKER_BASE_PORT", str(worker_base))
        extra.setdefault("HOTLINE_RTP_PORT_MIN", str(rtp_min))
        extra.setdefault("HOTLINE_RTP_PORTS_PER_WORKER", str(RTP_PORTS_PER_WORKER))
        if tenant is not None:
            extra["HOTLINE_TENANT_FILE"] = str(tenant)
        return cls(
            var_dir=var_dir,
            sip_port=sip_port,
            http_port=free_tcp_port(),
            database_url=database_url or f"sqlite:///{var_dir / 'hotline.db'}",
            extra_env=extra,
        )

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HOTLINE_VAR_DIR=str(self.var_dir),
            HOTLINE_DATABASE_URL=self.database_url,
            HOTLINE_SIP_HOST="127.0.0.1",
            HOTLINE_SIP_PORT=str(self.sip_port),
            HOTLINE_HTTP_HOST="127.0.0.1",
            HOTLINE_HTTP_PORT=str(self.http_port),
            HOTLINE_LOG_FORMAT="console",
            HOTLINE_DRAIN_TIMEOUT="5",
            PYTHONASYNCIODEBUG="1",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def uri(self, did: str) -> str:
        return f"sip:{did}@127.0.0.1:{self.sip_port}"

    async def start(self) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.log_path = self.var_dir.parent / f"bridge-{self.starts}.log"
        self._log_file = self.log_path.open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hotline",
            "serve",
            env=self.env,
            cwd=str(REPO),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            start_new_session=True,
        )

    @property
    def tls(self) -> bool:
        """Whether the web port serves HTTPS (HOTLINE_TLS_CERT, an absolute path, given): `http()` is https://."""
        return bool(self.extra_env.get("HOTLINE_TLS_CERT"))

    def client_session(self) -> aiohttp.ClientSession:
        """An aiohttp session for this bridge's web port; over HTTPS it trusts the bridge's own certificate only."""
        if not self.tls:
            return aiohttp.ClientSession()
        trust = ssl.create_default_context(cafile=self.extra_env["HOTLINE_TLS_CERT"])
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust))

    async def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: object = None
        async with self.client_session() as http:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.returncode is not None:
                    raise AssertionError(f"bridge exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    async with http.get(self.http("/healthz")) as resp:
                        last = await resp.json()
                        if resp.status == 200:
                            return dict(last)  # type: ignore[call-overload]
                except aiohttp.ClientError as exc:
                    last = exc
                await asyncio.sleep(0.1)
        raise AssertionError(f"bridge not ready after {timeout}s: {last}\n{self.log_tail()}")

    def http(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.http_port}{path}"

    async def get_json(self, path: str, *, auth: str | None = ADMIN_AUTH) -> tuple[int, Any]:
        headers = {"Authorization": auth} if auth else {}
        async with self.client_session() as http, http.get(self.http(path), headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def calls(self, **query: str) -> list[dict[str, Any]]:
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        status, body = await self.get_json("/api/calls" + (f"?{qs}" if qs else ""))
        assert status == 200, body
        return list(body["calls"])

    async def call(self, call_id: str) -> dict[str, Any]:
        status, body = await self.get_json(f"/api/calls/{call_id}")
        assert status == 200, body
        return dict(body)

    async def wait_for_calls(self, predicate: Any, timeout: float = 10.0, **query: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        calls: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            calls = await self.calls(**query)
            if predicate(calls):
                return calls
            await asyncio.sleep(0.1)
        raise AssertionError(f"calls never matched within {timeout}s: {calls}")

    async def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        self._close_log()

    async def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                code = await self.process.wait()
        finally:
            self._close_log()
        return code

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            self._close_log()
            return
        try:
            with contextlib.suppress(TimeoutError):
                await self.terminate(timeout=20)
        finally:
            # Whatever happened (a timeout, a cancellation), SIGKILL the whole session if it is still there,
            # workers included, bounded: a bridge that will not go fails naming itself rather than hanging.
            await stop_child(process, f"bridge (SIP port {self.sip_port})", first=None, grace=0, group=True)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        parts = []
        for path in sorted(self.var_dir.parent.glob("bridge-*.log")):
            parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def assert_loop_never_blocked(self) -> None:
        blocked = stalls_in_log(self.log_text())
        assert not blocked, "the event loop was blocked:\n" + "\n".join(blocked[:10])

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
        if exc is not None:
            sys.stderr.write(f"\n--- bridge log ---\n{self.log_tail(120)}\n")
