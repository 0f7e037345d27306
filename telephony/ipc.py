"""The channel between the control process and a media worker.

Why a Unix socketpair carrying length-prefixed JSON:
- it is created before the worker starts and handed down as a file
  descriptor, so there is no address to configure, guess or secure;
- the kernel closes it when either process dies, even by SIGKILL, so the
  other side learns of the death at once (EOF) instead of by timeout;
- a stream preserves order, which a call's timeline depends on;
- asyncio streams read it natively, and JSON keeps it debuggable and
  versioned without another dependency. The volume is a few small messages
  per call; media never crosses it.

Frames are a 4-byte big-endian length and a JSON object:
`{"v": 1, "t": "req" | "res" | "err" | "evt", "id": int, "k": kind, "b": body}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME = 1 << 20
_HEADER = struct.Struct(">I")

Body = dict[str, Any]
RequestHandler = Callable[[str, Body], Awaitable[Body]]
EventHandler = Callable[[str, Body], None]

log = structlog.get_logger("telephony.ipc")


class ChannelClosed(ConnectionError):
    """The peer went away; pending requests fail with this."""


class RemoteError(RuntimeError):
    """The peer's handler raised; the message is the peer's."""


class ProtocolError(ValueError):
    """A frame that is not a valid message of this protocol."""


def encode(message: Body) -> bytes:
    payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    return _HEADER.pack(len(payload)) + payload


def decode(payload: bytes) -> Body:
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(message, dict) or message.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported frame: {str(message)[:120]}")
    if message.get("t") not in {"req", "res", "err", "evt"} or not isinstance(message.get("k", ""), str):
        raise ProtocolError(f"unsupported frame: {str(message)[:120]}")
    return message


class Channel:
    """Requests with replies in both directions, plus ordered one-way events.

    Events are handed to `on_event` synchronously, in arrival order, by the
    read loop; requests run as tasks so a slow handler never stalls events.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        on_request: RequestHandler,
        on_event: EventHandler,
        name: str,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_request = on_request
        self._on_event = on_event
        self.name = name
        self._max_frame = max_frame
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Body]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _send(self, message: Body) -> None:
        if self._closed:
            raise ChannelClosed(f"{self.name}: channel closed")
        message["v"] = PROTOCOL_VERSION
        self._writer.write(encode(message))

    def notify(self, kind: str, body: Body) -> None:
        self._send({"t": "evt", "k": kind, "b": body})

    async def request(self, kind: str, body: Body, timeout: float) -> Body:
        request_id = next(self._ids)
        future: asyncio.Future[Body] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._send({"t": "req", "id": request_id, "k": kind, "b": body})
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._pending.pop(request_id, None)

    async def drain(self) -> None:
        if not self._closed:
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()

    async def run(self) -> None:
        """Read until the peer closes; then fail every pending request."""
        try:
            while True:
                try:
                    header = await self._reader.readexactly(_HEADER.size)
                except asyncio.IncompleteReadError:
                    return
                (size,) = _HEADER.unpack(header)
                if size > self._max_frame:
                    raise ProtocolError(f"frame of {size} bytes exceeds the {self._max_frame}-byte limit")
                try:
                    payload = await self._reader.readexactly(size)
                except asyncio.IncompleteReadError:
                    return
                self._dispatch(decode(payload))
        except ConnectionError:
            return
        finally:
            self._close()

    def _dispatch(self, message: Body) -> None:
        kind = message.get("t")
        body = message.get("b") or {}
        if kind == "evt":
            try:
                self._on_event(message["k"], body)
            except Exception:
                log.exception("ipc_event_handler_failed", channel=self.name, kind=message.get("k"))
        elif kind == "req":
            task = asyncio.create_task(self._serve(message["id"], message["k"], body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            future = self._pending.get(message.get("id", -1))
            if future is None or future.done():
                return
            if kind == "res":
                future.set_result(body)
            else:
                future.set_exception(RemoteError(str(body.get("error", "remote error"))))

    async def _serve(self, request_id: int, kind: str, body: Body) -> None:
        try:
            result = await self._on_request(kind, body)
        except Exception as exc:
            log.exception("ipc_request_handler_failed", channel=self.name, kind=kind)
            reply: Body = {"t": "err", "id": request_id, "b": {"error": f"{type(exc).__name__}: {exc}"}}
        else:
            reply = {"t": "res", "id": request_id, "b": result}
        with contextlib.suppress(ChannelClosed):
            self._send(reply)

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ChannelClosed(f"{self.name}: peer closed the channel"))
        self._pending.clear()
        with contextlib.suppress(Exception):
            self._writer.close()

    async def close(self) -> None:
        self._close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
