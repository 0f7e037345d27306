"""The control process: records, live state, the worker pool, the SIP front, the web.

Start-up order matters: records first (and calls a killed predecessor left
open are closed as interrupted), then media, workers, the SIP front, and
the web last, so that /healthz never reports ready before calls can land.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from agent_client.web_bridge import bridge_app
from agent_client.web_edge import Edge
from agent_client.web_sessions import SessionStore
from config.settings import Settings, sip_front_problems, sip_fronted, tls_context
from dialplan.clock import SystemClock
from dialplan.tenant import Tenant
from store.agent_states import AgentStateLog
from store.db import create_engine, migrate, ping
from store.disk_journal import DiskJournal
from store.live_mirror import MirroredLiveState
from store.live_state import LiveState, open_live_state
from store.overflow_settings import OverflowSettings
from store.recordings import Recordings
from store.records import CallRecords
from telephony.call_recordings import CallRecordings
from telephony.calls import CallService, ClientMedia
from telephony.dispatcher import Dispatcher, DispatcherSettings
from telephony.ipc import Body
from telephony.kamailio_front import DEFAULT_TEMPLATE, FrontWorker, KamailioFront, PikeLimits
from telephony.loop_watch import log_loop_stalls
from telephony.media_assets import SpeechCache, ensure_hold_music, ensure_telephony_wav, greeting_for
from telephony.overflow_control import OverflowControl
from telephony.pool import WorkerPool
from telephony.registration import Registrations
from telephony.sip_digest import DigestAuthority
from telephony.sip_events import AdapterSettings
from telephony.supervision import Supervision
from telephony.worker import WorkerConfig

log = structlog.get_logger("hotline.control")

HEARTBEAT_S = 2.0
RETRY_AFTER_S = 5


def prepare_media(tenant: Tenant, settings: Settings) -> dict[str, ClientMedia]:
    """Resolve each client's greeting and music to files (synthesising text once)."""
    cache = settings.cache_dir
    default_music = ensure_hold_music(cache)
    media: dict[str, ClientMedia] = {}
    for client in tenant.clients.values():
        greeting, kind = greeting_for(client.greeting.text, client.greeting.wav, cache)
        music = ensure_telephony_wav(Path(client.hold_music), cache) if client.hold_music else default_music
        media[client.id] = ClientMedia(str(greeting), str(music))
        log.info("client_media", client=client.id, greeting=kind)
    return media


def worker_configs(settings: Settings) -> list[WorkerConfig]:
    behind_front = sip_fronted(settings)
    configs = []
    for index in range(settings.workers):
        port = settings.worker_base_port + index if behind_front else settings.sip_port
        configs.append(
            WorkerConfig(
                index=index,
                adapter=AdapterSettings(
                    sip_host=settings.sip_host,
                    sip_port=port,
                    public_host=settings.public_host,
                    rtp_port=settings.rtp_port_min + index * settings.rtp_ports_per_worker,
                    rtp_port_range=settings.rtp_ports_per_worker,
                    capacity=settings.worker_capacity,
                    pjsip_log_level=settings.pjsip_log_level,
                    retry_after_s=RETRY_AFTER_S,
                    strict_rtp_source=settings.strict_rtp_source,
                ),
                decision_timeout_s=settings.decision_timeout_s,
                drain_timeout_s=settings.drain_timeout_s,
                behind_front=behind_front,
                ice_servers=[dict(server) for server in settings.ice_servers],
                rtc_host_addresses=list(settings.rtc_host_addresses),
                rtc_codec=settings.rtc_codec,
            )
        )
    return configs


class _PoolEvents:
    """Feeds pool events to the call service, and keeps the SIP front in step."""

    def __init__(self, calls: CallService) -> None:
        self.calls = calls
        self.front: KamailioFront | None = None
        self.registrations: Registrations | None = None

    async def on_invite(self, worker: int, body: Body) -> Body:
        return await self.calls.on_invite(worker, body)

    def on_worker_event(self, worker: int, kind: str, body: Body) -> None:
        if kind == "registration":
            if self.registrations is not None:
                self.registrations.on_event(body)
            return
        self.calls.on_worker_event(worker, kind, body)

    async def on_worker_lost(self, worker: int) -> None:
        if self.front is not None:
            try:
                await self.front.set_worker_active(worker, False)
            except Exception as exc:
                log.warning("front_update_failed", worker=worker, error=str(exc))
        await self.calls.on_worker_lost(worker)

    async def on_worker_ready(self, worker: int, generation: int) -> None:
        if self.registrations is not None:
            self.registrations.on_worker_ready(worker)
        if self.front is not None and generation > 1:
            try:
                await self.front.worker_replaced(worker)
            except Exception as exc:
                # Kamailio's probes bring the worker back anyway, at its stale load.
                log.error("front_update_failed", worker=worker, error=str(exc))


class Control:
    def __init__(self, settings: Settings, tenant: Tenant) -> None:
        self.settings = settings
        self.tenant = tenant
        self.node = socket.gethostname()
        self.clock = SystemClock()
        self.started = time.monotonic()
        self.state = "starting"
        self._stop = asyncio.Event()
        self._signals = 0

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT, then drain. Raises StartupError if a part can't start."""
        s = self.settings
        fronted = _check_sip_front(s)
        s.var_dir.mkdir(parents=True, exist_ok=True)
        # Parts stop in the reverse order they started; every record is closed
        # after the workers have reported their calls' ends.
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(log_loop_stalls(log))
            engine = create_engine(s.database_url)
            stack.push_async_callback(engine.dispose)
            async with _starting(f"database {_redact(s.database_url)}"):
                await migrate(engine)
            records = CallRecords(engine, disk_journal=DiskJournal(s.var_dir / "journal"))
            # Replays what a run killed during a database outage left, before calls are closed as interrupted.
            await records.start()
            stack.push_async_callback(records.stop)
            recovered = await records.close_interrupted(node=self.node, reason="bridge restarted")
            if recovered:
                log.warning("calls_recovered_as_interrupted", count=len(recovered))
            # Stopped after the dispatcher and the web: the agents' last changes are written.
            # Through the records' journal: buffered to disk with them while the database is away.
            states = AgentStateLog(engine, self.node, journal=records.journal)
            await states.start()
            stack.push_async_callback(states.stop)
            await states.recover()
            async with _starting(f"live state {s.redis_url or 'in-process'}"):
                live = await open_live_state(s.redis_url, s.redis_prefix)
                if s.redis_url is not None:
                    # Redis may restart (it keeps nothing on disk): this node keeps serving, then writes back.
                    live = MirroredLiveState(live, node=self.node)
            stack.push_async_callback(live.close)
            media = await asyncio.to_thread(prepare_media, self.tenant, s)
            overflow = OverflowControl(tenant=self.tenant, store=OverflowSettings(engine), clock=self.clock)
            await overflow.start()
            calls = CallService(
                tenant=self.tenant,
                records=records,
                live=live,
                clock=self.clock,
                media=media,
                digest=DigestAuthority(default_realm=_digest_realm(self.tenant)),
                node=self.node,
                front=(_reachable(s.sip_host), s.sip_port) if fronted else None,
                retry_after_s=RETRY_AFTER_S,
            )
            calls.overflows = overflow
            stack.push_async_callback(self._close_calls, calls)
            if dropped := await calls.forget_queued_before_restart():
                log.warning("queue_entries_dropped", count=dropped, why="their calls ended with the last run")
            events = _PoolEvents(calls)
            recordings = CallRecordings(
                s.var_dir / "recordings", Recordings(engine, records.journal), calls.record, self.tenant, self.clock
            )
            if finished := await recordings.recover(records):
                log.warning("recordings_recovered", count=finished, why="the last run ended before storing them")
            purge = asyncio.create_task(recordings.purge_forever())
            stack.callback(purge.cancel)
            configs = worker_configs(s)
            pool = WorkerPool(configs, events)
            stack.push_async_callback(pool.stop)
            dispatcher = Dispatcher(
                tenant=self.tenant,
                live=live,
                clock=self.clock,
                workers=pool,
                recorder=calls,
                settings=DispatcherSettings(
                    ring_timeout_s=s.ring_timeout_s,
                    reconnect_grace_s=s.agent_grace_s,
                    ice_servers=s.ice_servers,
                    codec=s.rtc_codec,
                ),
                prompts=SpeechCache(s.cache_dir),
                recordings=recordings,
                states=states,
            )
            calls.listener = dispatcher
            dispatcher.overflows = overflow
            dispatcher.start()
            stack.push_async_callback(dispatcher.stop)
            supervision = Supervision(
                tenant=self.tenant,
                dispatcher=dispatcher,
                live=live,
                workers=pool,
                recorder=calls,
                clock=self.clock,
                ice_servers=s.ice_servers,
                codec=s.rtc_codec,
            )
            stack.push_async_callback(supervision.stop)
            async with _starting("SIP workers"):
                await pool.start()
            registrations = Registrations(overflow=overflow, workers=pool, clock=self.clock)
            events.registrations = registrations
            registrations.start()
            stack.push_async_callback(registrations.stop)
            front = await self._start_front(configs, calls, stack) if fronted else None
            events.front = front
            async with _starting(f"{'HTTPS' if s.tls else 'HTTP'} on {s.http_host}:{s.http_port}"):
                runner = await self._start_web(
                    records,
                    lambda: self._health(engine, live, pool, front, calls),
                    lambda: _worker_stats(pool),
                    dispatcher,
                    supervision,
                    overflow,
                    recordings,
                )
            stack.push_async_callback(runner.cleanup)
            heartbeat = asyncio.create_task(self._heartbeat(calls))
            stack.callback(heartbeat.cancel)
            self._install_signals()
            self.state = "ready"
            log.info(
                "bridge_ready",
                sip=f"{s.sip_host}:{s.sip_port}",
                http=f"{'https' if s.tls else 'http'}://{s.http_host}:{s.http_port}",
                workers=s.workers,
                sip_front=_front_description(s, fronted),
                state=live.describe(),
                database=_redact(s.database_url),
            )
            await self._stop.wait()
            self.state = "draining"
            log.info("bridge_draining", timeout_s=s.drain_timeout_s)
            await pool.drain(s.drain_timeout_s)
            await calls.wait_idle(5.0)
        return 0

    async def _start_front(
        self, configs: list[WorkerConfig], calls: CallService, stack: contextlib.AsyncExitStack
    ) -> KamailioFront:
        front = self._front(configs, calls)
        if self.settings.kamailio == "auto":
            async with _starting("Kamailio SIP front"):
                await front.start()
            stack.push_async_callback(front.stop)
        else:
            # The operator runs Kamailio; give them the config to run it with,
            # and keep its dispatcher in step with worker replacements over RPC.
            front.write_files()
            log.info("kamailio_external", config=str(front.config_path), rpc=str(front.rpc_socket_path))
        return front

    @staticmethod
    async def _close_calls(calls: CallService) -> None:
        left = await calls.close_remaining("bridge shut down")
        log.info("bridge_stopped", interrupted=left)

    def _front(self, configs: list[WorkerConfig], calls: CallService) -> KamailioFront:
        s = self.settings
        trunks = sorted({str(net) for line in self.tenant.lines for net in line.trunk_sources})
        return KamailioFront(
            binary=s.kamailio_binary,
            listen_host=s.sip_host,
            listen_port=s.sip_port,
            workers=[FrontWorker(c.index, _reachable(c.adapter.sip_host), c.adapter.sip_port) for c in configs],
            capacity=s.worker_capacity,
            run_dir=s.run_dir / "kamailio",
            retry_after_s=RETRY_AFTER_S,
            template_path=s.kamailio_template or DEFAULT_TEMPLATE,
            trunk_subnets=trunks,
            on_refusal=calls.on_front_refusal,
            pike=PikeLimits(requests=s.pike_requests, window_s=s.pike_window_s, block_s=s.pike_ban_s),
            advertise_host=None if _reachable(s.sip_host) == s.sip_host else s.public_host,
        )

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)

    def _on_signal(self) -> None:
        self._signals += 1
        self._stop.set()

    async def _start_web(
        self,
        records: CallRecords,
        health: Any,
        workers: Any,
        desk: Dispatcher,
        supervision: Supervision,
        overflow: OverflowControl,
        recordings: CallRecordings,
    ) -> web.AppRunner:
        s = self.settings
        app = bridge_app(
            tenant=self.tenant,
            records=records,
            health=health,
            workers=workers,
            desk=desk,
            supervision=supervision,
            overflow=overflow,
            recordings=recordings,
            sessions=SessionStore(absolute_ttl_s=s.session_lifetime_s, idle_ttl_s=s.session_idle_s),
            edge=Edge(tls=s.tls, behind_tls_proxy=s.behind_tls_proxy),
        )
        # Checked when the settings were read; loaded again here, where a failure is a StartupError.
        ssl_context = tls_context(s.tls_cert, s.tls_key) if s.tls_cert and s.tls_key else None
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, s.http_host, s.http_port, reuse_address=True, ssl_context=ssl_context)
        await site.start()
        return runner

    async def _heartbeat(self, calls: CallService) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await calls.heartbeat()
            except Exception:
                log.exception("heartbeat_failed")

    async def _health(
        self, engine: Any, live: LiveState, pool: WorkerPool, front: KamailioFront | None, calls: CallService
    ) -> dict[str, Any]:
        db = {**await _probe(ping(engine)), "buffering": calls.records.buffering, "buffered": calls.records.buffered}
        if calls.records.buffering:
            db.update(ready=False, note="call records are buffered locally until the database has them all")
        state = await _probe(live.ping())
        workers = pool.status()
        sip_ready = all(w["state"] == "ready" for w in workers)
        sip: dict[str, Any] = {"ready": sip_ready, "fronted": front is not None, "workers": workers}
        if front is not None and self.settings.kamailio == "auto":
            sip["front"] = {"running": front.running, "address": f"{front.address[0]}:{front.address[1]}"}
            sip["ready"] = sip_ready and front.running
        elif front is not None:
            sip["front"] = {"mode": "external", "address": f"{front.address[0]}:{front.address[1]}"}
        ready = self.state == "ready" and sip["ready"] and db["ready"] and state["ready"]
        return {
            "status": "ready" if ready else ("draining" if self.state == "draining" else "degraded"),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "sip": sip,
            "db": db,
            "state": {**state, "backend": live.describe()},
            "calls": {"open": len(calls.open_call_ids())},
        }


class StartupError(RuntimeError):
    """A part of the bridge could not start; the message says which and why."""


def _check_sip_front(settings: Settings) -> bool:
    """Whether Kamailio fronts the workers; a StartupError, before anything starts, if it can't."""
    if problems := sip_front_problems(settings):
        raise StartupError("; ".join(problems))
    fronted = sip_fronted(settings)
    if fronted and settings.kamailio == "auto" and shutil.which(settings.kamailio_binary) is None:
        why = (
            "HOTLINE_SIP_FRONT=always"
            if settings.sip_front == "always"
            else f"HOTLINE_SIP_FRONT=auto with {settings.workers} workers"
            if settings.workers > 1
            else f"HOTLINE_SIP_FRONT=auto with the SIP address {settings.sip_host}, which is not loopback"
        )
        raise StartupError(
            f"the Kamailio SIP front is needed ({why}) but {settings.kamailio_binary!r} is not installed: "
            "install it (Debian/Ubuntu: apt-get install kamailio) or point HOTLINE_KAMAILIO_BIN at it; "
            "or set HOTLINE_SIP_FRONT=never (one worker only) knowing that the worker then faces the network "
            "alone, with no flood guard: pjsua aborts under an INVITE flood"
        )
    return fronted


def _reachable(host: str) -> str:
    """Where Kamailio reaches a worker bound to `host`, and so where the workers see its INVITEs come from.

    A wildcard bind (0.0.0.0, ::) is reached over loopback: Kamailio's packets then come from
    127.0.0.1 (or ::1) at its SIP port, which only it can bind, and the source it stamps is believed.
    Compared with the wildcard itself they would never match, and every caller would look like the
    front's own address.
    """
    address = ipaddress.ip_address(host)
    if not address.is_unspecified:
        return host
    return "127.0.0.1" if address.version == 4 else "::1"


def _front_description(settings: Settings, fronted: bool) -> str:
    if not fronted:
        return f"none (HOTLINE_SIP_FRONT={settings.sip_front}: the lone worker binds the SIP address)"
    kind = "kamailio, run by the operator" if settings.kamailio == "external" else "kamailio"
    return f"{kind} (HOTLINE_SIP_FRONT={settings.sip_front})"


@contextlib.asynccontextmanager
async def _starting(what: str) -> AsyncIterator[None]:
    try:
        yield
    except StartupError:
        raise
    except Exception as exc:
        raise StartupError(f"{what}: {type(exc).__name__}: {exc}") from exc


async def _worker_stats(pool: WorkerPool) -> dict[str, Any]:
    async def one(status: dict[str, Any]) -> dict[str, Any]:
        if status["state"] != "ready":
            return status
        try:
            return {**status, "media": await pool.request(status["index"], "stats", {}, timeout=2)}
        except Exception as exc:
            return {**status, "media": None, "error": f"{type(exc).__name__}: {exc}"}

    return {"workers": list(await asyncio.gather(*(one(s) for s in pool.status())))}


async def _probe(check: Any) -> Mapping[str, Any]:
    try:
        async with asyncio.timeout(2):
            seconds = await check
    except Exception as exc:
        return {"ready": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ready": True, "latency_ms": round(seconds * 1000, 2)}


def _digest_realm(tenant: Tenant) -> str:
    # The tenant file allows one realm for all digest lines.
    return next((line.digest.realm for line in tenant.lines if line.digest is not None), "hotline")


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if at and ":" in creds:
        return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
    return url
