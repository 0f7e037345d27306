"""Kamailio as the bridge's public SIP front, in front of the media workers.

Why Kamailio and not our own proxy: with several pjsua workers the bridge
needs one SIP address that spreads calls by load, fails over, keeps dialogs
pinned to the worker that answered, stamps the caller's true source and
sheds floods and malformed SIP before any worker sees them. Kamailio does all
of that from one config file (deploy/kamailio/kamailio.cfg.tmpl); this
module renders that file and the dispatcher list, runs Kamailio as a child
process and talks to it over jsonrpcs on a Unix datagram socket.

Why a new duid per worker incarnation: dispatcher's call-load counters are
keyed by duid. A crashed worker's calls never send BYE, so its counter would
stay at capacity; and their hash entries, when they finally expire or meet a
stray BYE, decrement whatever destination still has that duid. The
replacement therefore gets a fresh duid and is re-added to the live set
(dispatcher.remove + dispatcher.add keep every other worker's counter, which
dispatcher.reload would zero).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import json
import math
import os
import re
import shutil
import signal
import socket
import string
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from telephony.sip_events import Refusal

log = structlog.get_logger("telephony.kamailio_front")
kamailio_log = structlog.get_logger("kamailio")

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "kamailio" / "kamailio.cfg.tmpl"
DS_GROUP = 1
SHM_MB = 64
PKG_MB = 8
STOP_TIMEOUT_S = 5.0
RPC_TIMEOUT_S = 2.0
# dispatcher.add/remove/reload are rate limited by reload_delta (1 s in the
# template, compared in whole seconds of wall time): an edit waits for the
# next second after the previous one, and retries until this bound.
LIST_EDIT_TIMEOUT_S = 5.0
# dispatcher swaps between two list buffers and frees the older one on the
# next edit; spacing our edits keeps a SIP process that still reads the old
# buffer safe.
LIST_EDIT_SPACING_S = 0.25
_FLAG_PROBING = 8
_FLAG_DISABLED = 4
_AF_UNIX_PATH_MAX = 107
_TAIL_LINES = 60
_ERROR_LEVELS = ("ALERT:", "BUG:", "CRITICAL:", "ERROR:")
# Kamailio logs these at ERROR/CRITICAL, but they are expected here: TCP
# helpers at shutdown, a late BYE for a call of a replaced worker, our own
# retry of a rate-limited list edit.
_EXPECTED_ERRORS = (
    "receive_fd(): EOF",
    "old destination address not found",
    "cannot find load for",
    "ongoing reload",
)
# Core parser complaints are about the sender's packet, one line per packet:
# a flood of garbage must not become a flood of error logs.
_INPUT_ERRORS = ("core/parser/", "receive_msg()")
_SCRIPT_MARK = "hotline-front:"
_STATE_NAMES = {"A": "active", "I": "inactive", "T": "trying", "D": "disabled"}


_REFUSAL_MARK = "hotline-front: refused "
# A `listen=proto:host:port` line without its own advertise clause.
_LISTEN_LINE = re.compile(r"^(listen=(?:udp|tcp):\S+)[ \t]*$", re.MULTILINE)


def _predecessor_pid(pid_path: Path, config_path: Path) -> int | None:
    """The pid in our pid file, if that process is a Kamailio running our config."""
    try:
        pid = int(pid_path.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if str(config_path).encode() in cmdline else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _refusal(line: str) -> Refusal | None:
    _, mark, payload = line.partition(_REFUSAL_MARK)
    if not mark:
        return None
    try:
        fields = json.loads(payload)
        return Refusal(
            status=int(fields["status"]),
            reason="no worker free",
            sip_call_id=str(fields["call_id"]),
            source=str(fields["source"]),
            did=str(fields["did"]),
            caller=str(fields["caller"]),
            at_mono=time.monotonic(),
            at_wall=time.time(),
        )
    except (ValueError, KeyError, TypeError):
        log.warning("kamailio_refusal_unreadable", line=line[:300])
        return None


class FrontError(RuntimeError):
    """Kamailio could not be started, reached or told something."""


class FrontRpcError(FrontError):
    """Kamailio answered an RPC with a JSON-RPC error."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {code} {message}")
        self.method = method
        self.code = code
        self.message = message


@dataclass(frozen=True)
class FrontWorker:
    index: int
    host: str
    port: int

    @property
    def uri(self) -> str:
        return f"sip:{_host_literal(self.host)}:{self.port}"


@dataclass(frozen=True)
class PikeLimits:
    """Per source IP: more than `requests` in `window_s` bans it for `block_s`."""

    requests: int = 14
    window_s: int = 2
    block_s: int = 300


# Only ${name} is a placeholder: bare $si, $du, $var(x)... are Kamailio's.
_PLACEHOLDER = r"""
\$(?:
  (?P<escaped>(?!)) |
  (?P<named>(?!)) |
  {(?P<braced>[a-z_][a-z0-9_]*)} |
  (?P<invalid>(?!))
)
"""


class KamailioTemplate(string.Template):
    """Only ${name} is ours: every bare $name in a Kamailio config is one of its pseudo-variables."""

    pattern = _PLACEHOLDER  # type: ignore[assignment]  # Template compiles the string itself


class KamailioFront:
    def __init__(
        self,
        *,
        binary: str,
        listen_host: str,
        listen_port: int,
        workers: Sequence[FrontWorker],
        capacity: int,
        run_dir: Path,
        retry_after_s: int = 5,
        pike: PikeLimits | None = PikeLimits(),
        log_level: int = 1,
        ping_interval_s: int = 1,
        no_reply_timeout_ms: int = 2000,
        ring_timeout_ms: int = 120_000,
        children: int = 2,
        tcp_children: int = 2,
        template_path: Path = DEFAULT_TEMPLATE,
        trunk_subnets: Sequence[str] = (),
        on_refusal: Callable[[Refusal], None] | None = None,
        advertise_host: str | None = None,
    ) -> None:
        _check_workers(workers)
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._binary = binary
        self._listen_host = listen_host
        self._listen_port = listen_port
        self._workers = {w.index: w for w in workers}
        self._capacity = capacity
        self._run_dir = Path(run_dir)
        self._retry_after_s = retry_after_s
        self._pike = pike
        self._log_level = log_level
        self._ping_interval_s = ping_interval_s
        self._no_reply_timeout_ms = no_reply_timeout_ms
        self._ring_timeout_ms = ring_timeout_ms
        self._children = children
        self._tcp_children = tcp_children
        self._template_path = template_path
        self._trunk_subnets = tuple(str(ipaddress.ip_network(net)) for net in trunk_subnets)
        self._on_refusal = on_refusal
        # Listening on a wildcard (0.0.0.0, ::), Kamailio would write the wildcard into Via and
        # Record-Route, where a caller's ACK and BYE can't follow it: it advertises this instead.
        self._advertise_host = advertise_host
        self._generation = dict.fromkeys(self._workers, 0)
        self._disabled: set[int] = set()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._rpc_ids = itertools.count(1)
        self._list_lock = asyncio.Lock()
        self._last_list_edit = 0.0  # wall clock, like Kamailio's reload_delta
        _check_socket_path(self._client_socket_path(10**9))

    # ---- files ---------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """Where INVITEs reach the workers from: Kamailio's own SIP socket."""
        return (self._listen_host, self._listen_port)

    @property
    def run_dir(self) -> Path:
        return self._run_dir

    @property
    def config_path(self) -> Path:
        return self._run_dir / "kamailio.cfg"

    @property
    def dispatcher_list_path(self) -> Path:
        return self._run_dir / "dispatcher.list"

    @property
    def rpc_socket_path(self) -> Path:
        return self._run_dir / "rpc.sock"

    @property
    def pid_path(self) -> Path:
        return self._run_dir / "kamailio.pid"

    def duid(self, index: int) -> str:
        self._worker(index)
        return f"w{index}g{self._generation[index]}"

    def render_config(self) -> str:
        template = KamailioTemplate(self._template_path.read_text())
        values = self._template_values()
        missing = set(template.get_identifiers()) - set(values)
        if missing:
            raise FrontError(f"template {self._template_path} needs unknown parameters {sorted(missing)}")
        config = template.substitute(values)
        if self._advertise_host is not None:
            advertise = f" advertise {_host_literal(self._advertise_host)}:{self._listen_port}"
            config = _LISTEN_LINE.sub(lambda m: m.group(1) + advertise, config)
        return config

    def render_dispatcher_list(self) -> str:
        lines = [
            "# hotline-bridge media workers, written by telephony/kamailio_front.py",
            "# setid destination flags priority attrs",
        ]
        lines += [self._list_line(index) for index in sorted(self._workers)]
        return "\n".join(lines) + "\n"

    def _template_values(self) -> dict[str, object]:
        pike = self._pike or PikeLimits()
        return {
            "listen_host": _host_literal(self._listen_host),
            "listen_port": self._listen_port,
            "run_dir": self._run_dir,
            "dispatcher_list": self.dispatcher_list_path,
            "rpc_socket": self.rpc_socket_path,
            "log_level": self._log_level,
            "children": self._children,
            "tcp_children": self._tcp_children,
            "retry_after_s": self._retry_after_s,
            "ping_interval_s": self._ping_interval_s,
            "no_reply_timeout_ms": self._no_reply_timeout_ms,
            "ring_timeout_ms": self._ring_timeout_ms,
            "load_init_expire_s": math.ceil(self._ring_timeout_ms / 1000) + 60,
            "pike_define": "#!define WITH_PIKE" if self._pike else "# pike flood protection disabled",
            "trunk_subnets": ",".join(self._trunk_subnets) or "none",
            "pike_window_s": pike.window_s,
            "pike_requests": pike.requests,
            "pike_block_s": pike.block_s,
        }

    def _list_line(self, index: int) -> str:
        flags, attrs = self._list_entry(index)
        return f"{DS_GROUP} {self._workers[index].uri} {flags} 0 {attrs}"

    def _list_entry(self, index: int) -> tuple[int, str]:
        flags = _FLAG_DISABLED if index in self._disabled else _FLAG_PROBING
        return flags, f"duid={self.duid(index)};maxload={self._capacity}"

    def write_files(self) -> None:
        self._run_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.config_path, self.render_config())
        self._write_list()

    def _write_list(self) -> None:
        _write_atomic(self.dispatcher_list_path, self.render_dispatcher_list())

    def _worker(self, index: int) -> FrontWorker:
        try:
            return self._workers[index]
        except KeyError:
            raise ValueError(f"no worker with index {index}") from None

    # ---- process -------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    async def start(self, timeout: float = 10) -> None:
        if self.running:
            raise FrontError("kamailio is already running")
        binary = _resolve_binary(self._binary)
        await self._stop_predecessor()
        self.write_files()
        _unlink_quiet(self.rpc_socket_path)
        self._tail.clear()
        self._proc = await asyncio.create_subprocess_exec(
            *self._command(binary),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # its own process group, so stop() can reap every child it forked
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        self._reader = asyncio.create_task(self._pump_output(self._proc.stdout))
        try:
            await self._wait_ready(timeout)
        except BaseException:
            await self.stop()
            raise
        log.info("kamailio_started", pid=self._proc.pid, address=self.address, workers=len(self._workers))

    def _command(self, binary: str) -> list[str]:
        # setpriv (util-linux) makes the kernel send Kamailio SIGTERM when the
        # control process dies, even by SIGKILL: an orphaned front would keep
        # the SIP port and answer callers with nobody behind it.
        guard = [setpriv, "--pdeathsig", "TERM", "--"] if (setpriv := shutil.which("setpriv")) else []
        return [
            *guard,
            binary,
            "-f", str(self.config_path),
            "-DD", "-E",
            "-m", str(SHM_MB),
            "-M", str(PKG_MB),
            "-P", str(self.pid_path),
            "-Y", str(self._run_dir),
        ]  # fmt: skip

    async def _wait_ready(self, within: float) -> None:
        proc = self._proc
        assert proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise FrontError(await self._startup_failure(proc.returncode))
            with contextlib.suppress(FrontError):
                await self.rpc("core.version", timeout=0.5)
                return
            await asyncio.sleep(0.05)
        raise FrontError(f"kamailio did not answer RPC within {within}s; last output:\n{self._tail_text()}")

    async def _startup_failure(self, returncode: int) -> str:
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), 2)
        lines = [line for line in self._tail if any(m in line for m in _ERROR_LEVELS)]
        reason = "kamailio exited during startup"
        if any("Address already in use" in line for line in self._tail):
            host, port = self.address
            reason = f"SIP address {host}:{port} is already in use"
        detail = "\n".join(lines or list(self._tail)[-10:])
        return f"{reason} (exit code {returncode}):\n{detail}"

    def _tail_text(self) -> str:
        return "\n".join(list(self._tail)[-10:])

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                log.warning("kamailio_kill", pid=proc.pid)
                _kill_group(proc.pid)
                await proc.wait()
        # Children outlive a main process that died abnormally; they share its group.
        _kill_group(proc.pid)
        await self._join_reader()
        _unlink_quiet(self.rpc_socket_path)
        log.info("kamailio_stopped", returncode=proc.returncode)

    async def _join_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is None:
            return
        try:
            await asyncio.wait_for(reader, 2)
        except TimeoutError:
            reader.cancel()

    async def _stop_predecessor(self) -> None:
        """Stop a Kamailio that a killed predecessor left running on our files."""
        pid = _predecessor_pid(self.pid_path, self.config_path)
        if pid is None:
            return
        log.warning("kamailio_stopping_predecessor", pid=pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not _alive(pid):
                return
            await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    async def _pump_output(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            if not text:
                continue
            self._tail.append(text)
            refusal = _refusal(text)
            if refusal is not None and self._on_refusal is not None:
                self._on_refusal(refusal)
            else:
                _forward(text)

    # ---- RPC -----------------------------------------------------------

    async def rpc(self, method: str, *params: object, timeout: float = RPC_TIMEOUT_S) -> object:
        """One jsonrpcs call over Kamailio's Unix datagram socket."""
        request_id = next(self._rpc_ids)
        request = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": request_id}
        reply = await self._exchange(json.dumps(request).encode(), request_id, timeout)
        error = reply.get("error")
        if isinstance(error, dict):
            raise FrontRpcError(method, int(error.get("code", 0)), str(error.get("message", "")))
        return reply.get("result")

    async def _exchange(self, payload: bytes, request_id: int, within: float) -> dict[str, object]:
        loop = asyncio.get_running_loop()
        path = self._client_socket_path(request_id)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            _unlink_quiet(path)
            sock.bind(str(path))
            try:
                await _send(loop, sock, payload, self.rpc_socket_path)
                async with asyncio.timeout(within):
                    return await _receive(loop, sock, request_id)
            except TimeoutError:
                raise FrontError(f"no RPC reply from kamailio within {within}s") from None
            finally:
                _unlink_quiet(path)

    def _client_socket_path(self, request_id: int) -> Path:
        # Kamailio answers to the sender's bound path; keep it short (108-byte limit).
        return self._run_dir / f"c{os.getpid()}.{request_id}.sock"

    # ---- dispatcher ----------------------------------------------------

    async def dispatcher_state(self) -> list[dict[str, object]]:
        """One dict per worker: index, uri, duid, flags, state, probing, maxload, load."""
        result = await self.rpc("dispatcher.list")
        by_uri = {w.uri: w.index for w in self._workers.values()}
        return [_destination(dest, by_uri) for dest in _destinations(result)]

    async def worker_replaced(self, index: int) -> None:
        """A new process serves this worker's port: start it at zero load."""
        worker = self._worker(index)
        async with self._list_lock:
            self._generation[index] += 1
            self._disabled.discard(index)
            self._write_list()
            flags, attrs = self._list_entry(index)
            await self._edit_list("dispatcher.remove", DS_GROUP, worker.uri)
            await self._edit_list("dispatcher.add", DS_GROUP, worker.uri, flags, 0, attrs)
        log.info("kamailio_worker_replaced", worker=index, duid=self.duid(index))

    async def set_worker_active(self, index: int, active: bool) -> None:
        """Admin switch: an inactive worker gets no new calls and is not probed."""
        worker = self._worker(index)
        async with self._list_lock:
            if active:
                self._disabled.discard(index)
            else:
                self._disabled.add(index)
            self._write_list()
            await self.rpc("dispatcher.set_state", "ap" if active else "d", DS_GROUP, worker.uri)

    async def reload_dispatcher(self) -> None:
        """Re-read the list file. Zeroes EVERY worker's call load: not for routine use."""
        async with self._list_lock:
            self._write_list()
            await self._edit_list("dispatcher.reload")

    async def _edit_list(self, method: str, *params: object) -> None:
        deadline = time.monotonic() + LIST_EDIT_TIMEOUT_S
        while True:
            await asyncio.sleep(self._list_edit_delay())
            try:
                await self.rpc(method, *params)
            except FrontRpcError as exc:
                if "ongoing reload" not in exc.message.lower() or time.monotonic() > deadline:
                    raise
                continue
            finally:
                self._last_list_edit = time.time()
            return

    def _list_edit_delay(self) -> float:
        next_second = math.floor(self._last_list_edit) + 1 + 0.02
        return max(0.0, max(self._last_list_edit + LIST_EDIT_SPACING_S, next_second) - time.time())


# ---- helpers -----------------------------------------------------------


def _check_workers(workers: Sequence[FrontWorker]) -> None:
    if not workers:
        raise ValueError("the front needs at least one worker")
    indices = [w.index for w in workers]
    if len(set(indices)) != len(indices):
        raise ValueError(f"duplicate worker indices: {indices}")
    uris = [w.uri for w in workers]
    if len(set(uris)) != len(uris):
        raise ValueError(f"duplicate worker addresses: {uris}")


def _check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > _AF_UNIX_PATH_MAX:
        raise FrontError(f"run_dir is too long for a Unix socket path: {path}")


def _host_literal(host: str) -> str:
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    return host


def _resolve_binary(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        raise FrontError(f"kamailio binary not found: {binary}")
    return found


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _unlink_quiet(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _forward(line: str) -> None:
    level = _level(line)
    if level == "error":
        kamailio_log.error(line)
    elif level == "info":
        kamailio_log.info(line)
    else:
        kamailio_log.debug(line)


def _level(line: str) -> str:
    if any(level in line for level in _ERROR_LEVELS):
        if any(expected in line for expected in _EXPECTED_ERRORS):
            return "info"
        if any(source in line for source in _INPUT_ERRORS):
            return "debug"
        return "error"
    return "info" if _SCRIPT_MARK in line else "debug"


async def _send(loop: asyncio.AbstractEventLoop, sock: socket.socket, payload: bytes, target: Path) -> None:
    try:
        await loop.sock_sendto(sock, payload, str(target))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise FrontError(f"kamailio RPC socket {target} is not reachable: {exc}") from exc


async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, request_id: int) -> dict[str, object]:
    while True:
        data = await loop.sock_recv(sock, 1 << 20)
        try:
            reply = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            log.warning("kamailio_rpc_garbage", size=len(data))
            continue
        if isinstance(reply, dict) and reply.get("id") == request_id:
            return reply


def _destinations(result: object) -> list[Mapping[str, object]]:
    """The DEST records of dispatcher.list, whatever nesting 5.x uses."""
    found: list[Mapping[str, object]] = []
    _collect_dests(result, found)
    return found


def _collect_dests(node: object, found: list[Mapping[str, object]]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect_dests(item, found)
    elif isinstance(node, dict):
        dest = node.get("DEST")
        if isinstance(dest, dict):
            found.append(dest)
            return
        for value in node.values():
            _collect_dests(value, found)


def _destination(dest: Mapping[str, object], by_uri: Mapping[str, int]) -> dict[str, object]:
    uri = str(dest.get("URI", ""))
    flags = str(dest.get("FLAGS", ""))
    attrs = _mapping(dest.get("ATTRS"))
    runtime = _mapping(dest.get("RUNTIME"))
    return {
        "index": by_uri.get(uri),
        "uri": uri,
        "duid": attrs.get("DUID") or _attr(str(attrs.get("BODY", "")), "duid"),
        "flags": flags,
        "state": _STATE_NAMES.get(flags[:1], "unknown"),
        "probing": flags[1:2] == "P",
        "maxload": attrs.get("MAXLOAD"),
        "load": runtime.get("DLGLOAD"),
    }


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _attr(body: str, name: str) -> str | None:
    match = re.search(rf"(?:^|;){re.escape(name)}=([^;]*)", body)
    return match.group(1) if match else None
