"""The supervisor ("chassis"): what must be counted once across workers.

Owns the resources (licenses and address pools, resources.py), the subscriber registry
(registry.py: ``show subscribers``, routing ``logout`` and RFC 5176 requests to the
right worker), RADIUS accounting (Start / Interim / Stop, session_accounting.py;
counters come from the workers), the DAE listener and the control socket; this module
is the process management and the routing of the workers' messages between them. It
creates every UDP socket of
every worker (SO_REUSEPORT groups + the steering program, see steering.py), starts
the workers, watches them, and restarts a dead one after logging its subscribers out
(Stop with Acct-Terminate-Cause Port-Error, address and licenses returned: the
clients log in again, on whichever worker steering picks).

SIGTERM / SIGINT: every worker logs its subscribers out (Deletes, interfaces removed,
Stop with Admin-Reboot), the accounting queue is drained (a few seconds at most), the
processes exit.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from responder.aaa.accounting import Accountant, Counters
from responder.aaa.journal import next_boot_id
from responder.aaa.dae import DaeListener, DaeProcessor
from responder.aaa.radius import RadiusClient
from responder.config import build_dae_clients, build_radius_groups, radius_default_group
from responder.config.builders import build_lockout_settings
from responder.config.model import ResponderConfig
from responder.config.snapshot import worker_snapshot
from responder.licenses import LicenseManager
from responder.pools import PoolManager
from responder.subscriber import SubscriberEvent

from .durability import (accounting_off, accounting_on, build_accountant,
                         remove_leftover_interfaces, state_directory)
from .ipc import CONFIGURE, Channel, IpcError, open_channel
from .control import ControlServer
from .dae_directory import RegistryDirectory
from .lockouts import LockoutCenter, broadcaster
from .logsetup import setup_logging
from .registry import SubscriberRegistry
from .reload import effective_config, load_text
from .resources import Held, Resources
from .session_accounting import accounting_session
from .steering import attach_program, ike_program, make_reuseport_socket, natt_program

log = logging.getLogger(__name__)

__all__ = ["Supervisor", "WorkerHandle"]

RESTART_DELAY = 0.5
SHUTDOWN_TIMEOUT = 8.0
ACCOUNTING_DRAIN = 3.0


@dataclass
class WorkerHandle:
    index: int
    sockets: list[tuple[str, int, socket.socket]]
    generation: int = 0
    process: asyncio.subprocess.Process | None = None
    channel: Channel | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: float = 0.0
    restarts: int = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


class Supervisor:
    def __init__(self, cfg: ResponderConfig, config_path: str, *, log_level: str = "info") -> None:
        self.cfg = cfg
        self.config_path = str(Path(config_path).resolve())
        self.log_level = log_level
        self.workers_count = cfg.workers
        self.resources = Resources(cfg)
        self.sessions = SubscriberRegistry()
        self.stats: Counter[str] = Counter()
        self.workers: list[WorkerHandle] = []
        #: Xauth failure counters and lockouts, counted once for every worker
        self.lockouts = LockoutCenter(build_lockout_settings(cfg),
                                      broadcaster(lambda: [h.channel for h in self.workers]))
        self.boot_id = f"{int(time.time()) & 0xFFFF:04X}"
        self.accountant: Accountant | None = None
        self._accounting_task: asyncio.Task | None = None
        self._radius: RadiusClient | None = None
        self._dae: DaeListener | None = None
        self.control: ControlServer | None = None
        self._stopping = asyncio.Event()
        self._watchers: list[asyncio.Task] = []
        #: logouts of older sessions of a user logging in again (kept until done)
        self._older_logouts: set[asyncio.Task] = set()
        self.started_at = time.time()
        self.metrics = None
        if cfg.metrics.enabled:
            from .metrics import SupervisorMetrics   # prometheus-client only when wanted
            self.metrics = SupervisorMetrics(self)
        #: the last reload's outcome (``show statistics``, ``dynipsec reload``)
        self.last_reload: dict[str, Any] | None = None
        self._reloading = asyncio.Lock()

    # -- what control, metrics and the DAE directory read (view.py) --------------------------
    @property
    def licenses(self) -> LicenseManager:
        return self.resources.licenses

    @property
    def pools(self) -> PoolManager:
        return self.resources.pools

    @property
    def held(self) -> dict[str, Held]:
        return self.resources.held

    @property
    def refused(self) -> Counter[str]:
        return self.resources.refused

    @property
    def registry(self) -> Mapping[str, dict[str, Any]]:
        """Read-only: records change through ``sessions`` only, which keeps its index."""
        return MappingProxyType(self.sessions.records)

    @property
    def counters(self) -> dict[str, Counters]:
        return self.sessions.counters

    # -- start ------------------------------------------------------------------------------
    def _open_sockets(self) -> None:
        """Every worker's sockets, group by group, in worker order; steering attached."""
        n = self.workers_count
        per_worker: list[list[tuple[str, int, socket.socket]]] = [[] for _ in range(n)]
        for listen in self.cfg.listen:
            address = str(listen.address)
            for port, program in ((listen.ike_port, ike_program(n)),
                                  (listen.natt_port, natt_program(n))):
                group = [make_reuseport_socket(address, port) for _ in range(n)]
                attach_program(group[0], program)
                for index, sock in enumerate(group):
                    per_worker[index].append((address, port, sock))
        self.workers = [WorkerHandle(index, socks) for index, socks in enumerate(per_worker)]

    async def start(self) -> None:
        cfg = self.cfg
        self._open_sockets()
        self.boot_id = next_boot_id(state_directory(cfg))
        await asyncio.get_running_loop().run_in_executor(
            None, remove_leftover_interfaces, cfg)
        if cfg.aaa.radius is not None and cfg.aaa.accounting.enabled:
            self._radius = RadiusClient(build_radius_groups(cfg),
                                        default_group=radius_default_group(cfg))
            self.accountant = build_accountant(cfg, self._radius)
            accounting_on(self.accountant, cfg, self.boot_id)
            self._accounting_task = asyncio.ensure_future(self.accountant.run())
        if cfg.aaa.dae is not None:
            radius = cfg.aaa.radius
            processor = DaeProcessor(
                build_dae_clients(cfg), RegistryDirectory(self),
                nas_ip=str(radius.nas_ip) if radius and radius.nas_ip else None,
                nas_identifier=radius.nas_identifier if radius else None,
                replay_window=cfg.aaa.dae.replay_window,
                require_event_timestamp=cfg.aaa.dae.require_event_timestamp)
            self._dae = await DaeListener.start(processor, str(cfg.aaa.dae.listen), cfg.aaa.dae.port)
        self.control = ControlServer(self, cfg.control.socket)
        for handle in self.workers:
            await self._spawn(handle)
        await asyncio.gather(*(h.ready.wait() for h in self.workers))
        await self.control.start()
        if self.metrics is not None:
            await self.metrics.start(str(cfg.metrics.address), cfg.metrics.port)
        log.info("dynipsec supervisor pid %d: %d workers ready, control socket %s",
                 os.getpid(), len(self.workers), cfg.control.socket)

    async def _spawn(self, handle: WorkerHandle) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [sys.executable, "-m", "responder.daemon.worker",
                "--index", str(handle.index), "--workers", str(self.workers_count),
                "--generation", str(handle.generation), "--boot-id", self.boot_id,
                "--ipc-fd", str(child.fileno()), "--log-level", self.log_level]
        fds = [child.fileno()]
        for address, port, sock in handle.sockets:
            argv += ["--socket", f"{address}:{port}:{sock.fileno()}"]
            fds.append(sock.fileno())
        handle.ready = asyncio.Event()
        handle.process = await asyncio.create_subprocess_exec(
            *argv, pass_fds=fds, stdin=asyncio.subprocess.DEVNULL)
        child.close()
        handle.started_at = time.monotonic()
        handle.channel = await open_channel(
            parent, lambda message, h=handle: self._on_worker_message(h, message),
            name=f"supervisor<-worker{handle.index}")
        # the first line: the configuration the others run (responder/config/snapshot.py)
        handle.channel.notify({"op": CONFIGURE, "snapshot": worker_snapshot(self.cfg)})
        self._watchers.append(asyncio.ensure_future(self._watch(handle, handle.process,
                                                                 handle.channel)))
        log.info("worker %d started (pid %d, generation %d)", handle.index,
                 handle.process.pid, handle.generation)

    async def _watch(self, handle: WorkerHandle, process, channel: Channel) -> None:
        await channel.serve()          # EOF: the worker is gone (or going)
        code = await process.wait()
        self.worker_lost(handle.index, code)
        if self._stopping.is_set():
            return
        handle.generation += 1
        handle.restarts += 1
        self.stats["worker_restarts"] += 1
        await asyncio.sleep(RESTART_DELAY)
        if not self._stopping.is_set():
            await self._spawn(handle)

    def worker_lost(self, index: int, code: int | None) -> None:
        """Every subscriber of that worker: Stop (Port-Error unless it was logged out
        cleanly), address and licenses returned."""
        keys = self.resources.keys_of(index)
        keys += [k for k in self.sessions.keys_of(index) if k not in keys]
        level = logging.INFO if self._stopping.is_set() else logging.ERROR
        log.log(level, "worker %d exited (code %s); %d subscribers logged out (worker-lost)",
                index, code, len(keys))
        for key in keys:
            self._session_down(key, SubscriberEvent.WORKER_LOST.value, None)
            self._release(key)

    # -- worker messages -------------------------------------------------------------------
    def _on_worker_message(self, handle: WorkerHandle, message: dict) -> dict | None:
        op = message["op"]
        if op == "ready":
            handle.ready.set()
            handle.channel.notify(self.lockouts.snapshot())
            return None
        if op == "auth-failed":
            return self.lockouts.failed(message)
        if op == "auth-ok":
            self.lockouts.succeeded(message.get("user"))
            return None
        if op == "acquire":
            return self.acquire(handle.index, message)
        if op == "release":
            self._release(message["key"])
            return None
        if op == "session-up":
            self._session_up(message["key"], handle.index, message["record"])
            return None
        if op == "session-down":
            self._session_down(message["key"], message["cause"], message.get("counters"))
            return None
        if op == "update":
            self.sessions.update(message["key"], message["record"])
            return None
        if op == "metrics":
            if self.metrics is not None:
                self.metrics.absorb(message)
            return None
        if op == "counters":
            self.sessions.absorb(message.get("subs", {}))
            return None
        raise IpcError(f"unknown op {op!r}")

    def acquire(self, worker: int, message: dict) -> dict:
        """AAA granted: the user's failure count goes, older sessions the login replaces
        go, then licenses and an address (resources.py)."""
        if message["key"] not in self.held:   # else resources answers "duplicate"
            self.lockouts.succeeded(message.get("user"))
            self._older_sessions_go(message["key"], message)
        return self.resources.acquire(self.cfg, worker, message)

    def _older_sessions_go(self, key: str, message: dict) -> None:
        """The user logs in again from the same peer address, maybe on another worker
        (steering follows the new initiator cookie): its older session goes now if the
        peer sent INITIAL-CONTACT (initial-contact), or if that session waits in the
        remote delete grace (remote-delete: the peer deleted it and did not come back
        to it). The worker of the new login handled its own ones already."""
        peer, user = message.get("peer"), message.get("user")
        if not peer or not user:
            return
        older = [r for r in self.select(user=user)
                 if r["key"] != key and r.get("peer", "").rsplit(":", 1)[0] == peer
                 and (message.get("initial_contact") or r.get("grace"))]
        for cause in (SubscriberEvent.INITIAL_CONTACT, SubscriberEvent.REMOTE_DELETE):
            records = [r for r in older
                       if (SubscriberEvent.REMOTE_DELETE if r.get("grace")
                           else SubscriberEvent.INITIAL_CONTACT) is cause]
            if records:
                log.info("login %s of %r from %s: older session(s) %s go (%s)", key, user,
                         peer, ", ".join(r["key"] for r in records), cause.value)
                task = asyncio.ensure_future(self.logout(records, cause))
                self._older_logouts.add(task)
                task.add_done_callback(self._older_logouts.discard)

    def _release(self, key: str) -> None:
        self.resources.release(key)

    def _session_up(self, key: str, worker: int, record: dict) -> None:
        record = self.sessions.up(key, worker, record)
        self.stats["sessions_started"] += 1
        if self.accountant is not None:
            self.accountant.start_session(accounting_session(self.cfg, record),
                                          lambda key=key: self.sessions.counters_of(key))

    def _session_down(self, key: str, cause: str, counters: list[int] | None) -> None:
        record = self.sessions.down(key, counters)
        if record is None:
            return
        self.stats[f"sessions_ended_{cause}"] += 1
        if self.accountant is not None and record["acct_session_id"] in self.accountant.sessions:
            self.accountant.stop_session(record["acct_session_id"], SubscriberEvent(cause))
        if self.metrics is not None:
            self.metrics.session_ended(self.counters.get(key))
        self.sessions.forget(key)
        log.info("subscriber %s (%s, %s in %s) logged out: %s", key, record.get("user"),
                 record.get("address"), record.get("vr"), cause)

    # -- commands ---------------------------------------------------------------------------
    def select(self, *, user: str | None = None, address: str | None = None,
               vr: str | None = None, profile: str | None = None,
               session_id: str | None = None) -> list[dict]:
        return self.sessions.select(user=user, address=address, vr=vr, profile=profile,
                                    session_id=session_id)

    async def logout(self, records: list[dict],
                     cause: SubscriberEvent = SubscriberEvent.ADMIN_LOGOUT) -> int:
        by_worker: dict[int, list[str]] = {}
        for record in records:
            by_worker.setdefault(record["worker"], []).append(record["key"])
        count = 0
        for index, keys in by_worker.items():
            channel = self.workers[index].channel
            if channel is None or channel.closed:
                continue
            try:
                reply = await channel.request({"op": "logout", "keys": keys,
                                               "cause": cause.value}, timeout=10)
                count += int(reply.get("count", 0))
            except IpcError as exc:
                log.warning("logout on worker %d failed: %s", index, exc)
        return count

    async def ask_workers(self, message: dict) -> list[dict]:
        replies = []
        for handle in self.workers:
            if handle.channel is None or handle.channel.closed:
                continue
            try:
                replies.append(await handle.channel.request(message, timeout=5))
            except IpcError as exc:
                replies.append({"error": str(exc), "worker": handle.index})
        return replies

    async def refresh_counters(self) -> None:
        """Fresh data-path counters from every worker (else the last periodic push)."""
        for reply in await self.ask_workers({"op": "show", "what": "counters"}):
            self.sessions.absorb(reply.get("subs", {}))

    def aaa_counters(self) -> dict:
        """The supervisor's RADIUS client (accounting) and DAE counters; None: not in use."""
        return {"radius": self._radius.counters() if self._radius is not None else None,
                "dae": self._dae.processor.counters() if self._dae is not None else None}

    def subscriber_rows(self) -> list[dict]:
        return self.sessions.rows()

    # -- reload (SIGHUP, `dynipsec reload`) ----------------------------------------------------
    async def reload(self) -> dict[str, Any]:
        """Load the file again: a refused file changes nothing (its one-line errors are
        logged and answered); else what can change without dropping a subscriber is
        applied here and in every worker, and what needs a restart is logged and
        reported (responder/daemon/reload.py)."""
        async with self._reloading:        # two SIGHUPs in a row: one after the other
            return await self._reload()

    async def _reload(self) -> dict[str, Any]:
        from responder.config import ConfigError

        at = time.time()
        try:
            try:
                text = Path(self.config_path).read_text()
            except OSError as exc:
                raise ConfigError(self.config_path,
                                  [f"cannot read configuration: {exc.strerror}"]) from None
            new = load_text(text, self.config_path, Path(self.config_path).parent)
        except ConfigError as exc:
            log.error("reload refused, the running configuration stays: %d problem(s) in %s",
                      len(exc.problems), self.config_path)
            for line in exc.problems:
                log.error("reload: %s", line)
            self.stats["reloads_refused"] += 1
            self.last_reload = {"ok": False, "at": at, "errors": list(exc.problems)}
            return self.last_reload
        effective, plan = effective_config(self.cfg, new)
        self._apply(effective, plan.applied)
        # the workers (and any worker started later: _spawn) get what is applied here
        workers = []
        for reply in await self.ask_workers({"op": "reload",
                                             "snapshot": worker_snapshot(effective),
                                             "summary": plan.summary()}):
            workers.append({"ok": bool(reply.get("ok")), "error": reply.get("error")})
        self.stats["reloads"] += 1
        log.info("configuration reloaded: %s", plan.summary())
        for path, why in plan.restart.items():
            log.warning("reload: %s changed but needs a restart (%s); the running value stays",
                        path, why)
        self.last_reload = {"ok": True, "at": at, **plan.as_dict(), "workers": workers}
        return self.last_reload

    def _apply(self, new: ResponderConfig, applied: list[str]) -> None:
        old, self.cfg = self.cfg, new
        self.resources.apply(new, applied)
        self.lockouts.configure(build_lockout_settings(new))
        if self._dae is not None and new.aaa.dae is not None:
            self._dae.processor.clients = {ipaddress.ip_address(c.address): c
                                           for c in build_dae_clients(new)}
            self._dae.processor.replay_window = new.aaa.dae.replay_window
            self._dae.processor.require_event_timestamp = new.aaa.dae.require_event_timestamp
        if self.accountant is not None and new.aaa.radius is not None and (
                old.aaa.radius != new.aaa.radius or old.aaa.accounting != new.aaa.accounting):
            previous = self._radius
            self._radius = RadiusClient(build_radius_groups(new),
                                        default_group=radius_default_group(new))
            self.accountant.sender = self._radius
            self.accountant.group = new.aaa.accounting.server_group
            if previous is not None:   # requests in flight may still wait for it
                asyncio.get_running_loop().call_later(30, previous.close)
        self.log_level = new.logging.level
        setup_logging(new.logging.level, new.logging.format, "sup")

    # -- run / stop -------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        try:
            await self.start()
        except Exception:
            log.exception("start-up failed")
            self._stopping.set()
            await self.stop()
            return 1
        await self._stopping.wait()
        await self.stop()
        return 0

    async def stop(self) -> None:
        log.info("stopping: logging every subscriber out")
        self._stopping.set()
        if self.control is not None:
            await self.control.close()
        if self.metrics is not None:
            await self.metrics.close()
        for handle in self.workers:
            if handle.channel is not None and not handle.channel.closed:
                handle.channel.notify({"op": "shutdown"})
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT
        for handle in self.workers:
            process = handle.process
            if process is None:
                continue
            try:
                await asyncio.wait_for(process.wait(), max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                log.error("worker %d did not stop in time: killed", handle.index)
                process.kill()
                await process.wait()
        if self._watchers:
            await asyncio.wait(self._watchers, timeout=2)
        if self._dae is not None:
            self._dae.close()
        if self.accountant is not None:
            accounting_off(self.accountant, self.cfg, self.boot_id)
            if not await self.accountant.drain(ACCOUNTING_DRAIN):
                log.error("%d accounting records not delivered at shutdown (kept in the "
                          "journal for the next start)", self.accountant.pending())
            if self._accounting_task is not None:
                self._accounting_task.cancel()
        if self._radius is not None:
            self._radius.close()
        for handle in self.workers:
            for _, _, sock in handle.sockets:
                sock.close()
        log.info("stopped")

