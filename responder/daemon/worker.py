"""A worker process ("IPsec server card"): one asyncio loop with the IKE engine, the
Xauth/Mode-Config task, the RADIUS auth client, the TUN fds and the ESP SAs.

Started by the supervisor as ``python -m responder.daemon.worker`` with its UDP
sockets (already bound, in the SO_REUSEPORT groups) and one end of a socketpair
passed as file descriptors; the first line on the socketpair is the configuration
snapshot (responder/config/snapshot.py: the worker never reads the YAML file, and
imports neither pydantic nor yaml; pyrad only with RADIUS server groups). Holds no
global resource: licenses and addresses come from the supervisor (:class:`IpcLink`). When the supervisor goes away (EOF on the
socketpair, or PR_SET_PDEATHSIG), the worker logs its subscribers out and exits.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from responder.aaa.accounting import Counters
from responder.config.snapshot import (WorkerConfig, build_responder_policy, profile_limits,
                                       worker_config)
from responder.ikev1.engine import Responder
from responder.ikev1.exchanges.transaction import TransactionTask
from responder.ikev1.transport import ResponderTransport
from responder.netif import InterfaceManager
from responder.subscriber import SubscriberEvent as Event, SubscriberTable

from . import ipc
from .collector import FullCollections
from .datapath import DataPath
from .dhpool import keep_key_pairs_ready
from .netifbatch import RemovalBatcher
from .keyexport import with_key_export
from .lockouts import LoginGuard
from .orchestrator import Orchestrator, Phase2Gate
from .steering import cookie_for_worker, spi_for_worker
from .logsetup import setup_logging
from .telemetry import WorkerTelemetry
from .udpio import DatagramSocket, RawEspSocket
from .worker_reload import WorkerReload, build_authenticator, transaction_policy

log = logging.getLogger(__name__)

__all__ = ["WorkerResponder", "IpcLink", "Worker", "main", "build_authenticator",
           "transaction_policy"]

COUNTER_INTERVAL = 5.0
#: TUN devices with a virtio_net_hdr: ESP batches written with TCP segments coalesced
#: (responder/daemon/tungso.py), one forwarding pass in the VR per run instead of per packet
TUN_VNET_HDR = True
PR_SET_PDEATHSIG = 1


class WorkerResponder(Responder):
    """The engine with responder cookies and inbound SPIs that carry this worker's
    index (responder/daemon/steering.py): `spi % workers == index`, through the
    engine's public identifier factories (it keeps the uniqueness rules)."""

    def __init__(self, *args, worker_index: int = 0, workers: int = 1, **kwargs) -> None:
        super().__init__(
            *args, **kwargs,
            cookie_factory=lambda rng: cookie_for_worker(rng, worker_index, workers),
            spi_factory=lambda rng: spi_for_worker(rng, worker_index, workers))
        self.worker_index = worker_index
        self.workers = workers


class IpcLink:
    """The orchestrator's SupervisorLink over the socketpair."""

    def __init__(self, channel: ipc.Channel, timeout: float = 10.0,
                 collections: FullCollections | None = None) -> None:
        self.channel = channel
        self.timeout = timeout
        self.collections = collections

    async def acquire(self, key: str, request: dict[str, Any]) -> dict[str, Any]:
        return await self.channel.request({"op": "acquire", "key": key, **request},
                                          timeout=self.timeout)

    def release(self, key: str) -> None:
        self._ended()
        self.channel.notify({"op": "release", "key": key})

    def session_up(self, key: str, record: dict[str, Any]) -> None:
        self.channel.notify({"op": "session-up", "key": key, "record": record})

    def session_down(self, key: str, cause: str, counters: Counters) -> None:
        self._ended()
        self.channel.notify({"op": "session-down", "key": key, "cause": cause,
                             "counters": _counter_list(counters)})

    def update(self, key: str, record: dict[str, Any]) -> None:
        self.channel.notify({"op": "update", "key": key, "record": record})

    def _ended(self) -> None:
        if self.collections is not None:
            self.collections.note_ended()


def _counter_list(c: Counters) -> list[int]:
    return [c.input_octets, c.output_octets, c.input_packets, c.output_packets]


class ThreadedInterfaces:
    """The InterfaceManager in one thread of its own: its netlink calls block, and the
    manager's namespace switch is per thread. Every
    netlink call happens in that thread, in order; creation is awaited, removal queued
    (the fd is closed there after the data path stopped reading it)."""

    def __init__(self, vnet_hdr: bool = False) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="netif")
        self._manager: InterfaceManager = self._executor.submit(
            InterfaceManager, vnet_hdr=vnet_hdr).result()
        self._removals = RemovalBatcher(self._executor.submit, self._manager.remove_many)

    async def create(self, vr: str, name: str, address, mtu: int):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._manager.create, vr, name,
                                          address, mtu)

    def remove(self, iface) -> None:
        self._removals.add(iface)  # batched: one grace period per batch (netifbatch.py)

    #: how long a worker's exit waits for the netif thread's last removals
    CLOSE_TIMEOUT = 20.0

    def close(self, timeout: float | None = None) -> bool:
        """Remove what is left, close the handles, wait for the thread. False if the
        thread did not finish in time (then the process must exit without joining it:
        closing the TUN fds at exit removes the devices all the same)."""
        try:
            self._executor.submit(self._manager.close).result(
                self.CLOSE_TIMEOUT if timeout is None else timeout)
        except FutureTimeout:
            return False
        self._executor.shutdown(wait=True)
        return True


class Worker:
    def __init__(self, cfg: WorkerConfig, index: int, workers: int,
                 sockets: list[tuple[str, int, socket.socket]], ipc_sock: socket.socket,
                 generation: int = 0, boot_id: str = "0000") -> None:
        self.cfg = cfg
        self.index = index
        self.workers = workers
        self.sockets = sockets
        self.ipc_sock = ipc_sock
        self.generation = generation
        self.boot_id = boot_id
        self.collections = FullCollections()
        self._stopped = asyncio.Event()
        #: set when a thread could not be joined at shutdown (main() then exits at once)
        self.abandoned_threads = False
        self._transports: dict[tuple[str, int], DatagramSocket] = {}
        self._raw: dict[str, RawEspSocket] = {}

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        cfg = self.cfg
        policy = build_responder_policy(cfg)
        gate = Phase2Gate(policy.dynamic_esp)
        responder = WorkerResponder(policy, phase2_provider=gate, worker_index=self.index,
                                    workers=self.workers)
        task = TransactionTask.attach(responder, transaction_policy(cfg))
        authenticator, radius = build_authenticator(cfg)
        self.channel = await ipc.open_channel(self.ipc_sock, self._on_message,
                                              name=f"worker{self.index}")
        self.telemetry = WorkerTelemetry(self.index, responder, loop.time, self.generation)
        link = self.telemetry.wrap_link(IpcLink(self.channel, collections=self.collections))
        self._open_raw_esp(loop)
        self.datapath = DataPath(self._send_esp, self._peer_of, loop=loop,
                                 send_raw=self._send_raw_esp if self._raw else None,
                                 send_many=self._send_esp_many, vnet_hdr=TUN_VNET_HDR,
                                 on_peer_activity=responder.note_peer_activity)
        self.interfaces = ThreadedInterfaces(vnet_hdr=TUN_VNET_HDR)
        table = SubscriberTable(profile_limits=profile_limits(cfg),
                                session_prefix=f"{self.boot_id}{self.index:02X}{self.generation % 256:02X}")
        self.responder = responder
        self.orchestrator = Orchestrator(
            cfg, worker_index=self.index, responder=responder, task=task,
            authenticator=authenticator, link=link, interfaces=self.interfaces,
            datapath=self.datapath, table=table, clock=loop.time, flush=self._flush_soon,
            guard=LoginGuard(lambda m: self.channel.request(m, timeout=5), loop.time,
                             notify=self.channel.notify))
        gate.orchestrator = self.orchestrator
        self.reloader = WorkerReload(self.index, responder=responder, gate=gate,
                                     orchestrator=self.orchestrator, radius=radius)
        self.rt = ResponderTransport(responder, esp_handler=self.datapath.esp_received,
                                     event_handler=with_key_export(cfg.ike.key_export_file,
                                                                   self.telemetry.handle_event),
                                     loop=loop)
        self.telemetry.attach(self.orchestrator, self)
        for address, port, sock in self.sockets:
            local = (address, port)
            # batched reads (udpio.py); on 4500 ESP skips the IKE transport
            receiver = self._on_4500 if port != 500 else self.rt.datagram_received
            transport = DatagramSocket(loop, sock, local, receiver,
                                       on_batch_end=self.datapath.flush if port != 500 else None)
            self._transports[local] = transport
            self.rt.attach(local, transport)
        serve = asyncio.ensure_future(self.channel.serve())
        serve.add_done_callback(lambda _: self._stop("supervisor channel closed"))
        # Not loop.add_signal_handler: that installs a wakeup fd that any forked helper
        # would inherit, and its own SIGTERM would then wake OUR handler through the
        # pipe. SIGINT (a terminal's ^C) is the supervisor's to handle.
        signal.signal(signal.SIGTERM, lambda signum, frame: loop.call_soon_threadsafe(
            self._stop, f"signal {signum}"))
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.collections.start()
        ticker = asyncio.ensure_future(self._ticker())
        key_pairs = asyncio.ensure_future(keep_key_pairs_ready())
        self.channel.notify({"op": "ready", "worker": self.index, "pid": os.getpid()})
        log.info("worker %d (generation %d) serving %s", self.index, self.generation,
                 ", ".join(f"{a}:{p}" for a, p, _ in self.sockets))
        await self._stopped.wait()
        await self._shutdown()
        ticker.cancel()
        self.collections.stop()
        key_pairs.cancel()
        serve.cancel()
        self.telemetry.close()
        self.reloader.close()
        return 0

    def _stop(self, why: str) -> None:
        if not self._stopped.is_set():
            log.info("worker %d stopping: %s", self.index, why)
            self._stopped.set()

    async def _shutdown(self) -> None:
        """Log everyone out (Deletes, interfaces, accounting Stop via the supervisor)."""
        self.orchestrator.stopping = True
        count = self.orchestrator.logout_all(Event.NAS_SHUTDOWN)
        self._flush()
        if count:
            log.info("worker %d: %d subscribers logged out", self.index, count)
        log.info("worker %d: data path %s; sockets %s", self.index, self.datapath.stats,
                 {f"{a}:{p}": (t.received, t.wakeups, t.send_drops, t.gso_sends)
                  for (a, p), t in {**self._transports,
                                    **{(a, 50): r for a, r in self._raw.items()}}.items()})
        await self.channel.drain()
        await asyncio.sleep(0.05)  # let the Deletes leave the socket buffers
        self.rt.close()
        for raw in self._raw.values():
            raw.close()
        if not self.interfaces.close():
            log.error("worker %d: interface removal did not finish in %.0f s; exiting without "
                      "it (the kernel removes the devices with their fds)", self.index,
                      ThreadedInterfaces.CLOSE_TIMEOUT)
            self.abandoned_threads = True

    # -- I/O helpers ----------------------------------------------------------------------
    _flush_pending = False

    def _flush_soon(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        self.rt.poke()

    def _open_raw_esp(self, loop) -> None:
        """One raw ESP socket per listen address (peers without NAT that do not force
        encapsulation), unless ike.force_encap makes every peer use UDP 4500."""
        if self.cfg.ike.force_encap:
            return
        for address in dict.fromkeys(a for a, _, _ in self.sockets):
            try:
                self._raw[address] = RawEspSocket(loop, address, self._on_raw_esp,
                                                  index=self.index, workers=self.workers,
                                                  on_batch_end=lambda: self.datapath.flush())
            except OSError as exc:
                log.warning("worker %d: no raw ESP socket on %s (%s): peers must use "
                            "UDP encapsulation", self.index, address, exc)

    def _on_4500(self, data: bytes, local, remote) -> None:
        # RFC 3948 §2: a non-zero first word is an SPI (ESP); marker and keepalive: IKE side
        if len(data) > 8 and data[:4] != b"\0\0\0\0":
            self.datapath.esp_received(data, local, remote)
        else:
            self.rt.datagram_received(data, local, remote)

    def _on_raw_esp(self, esp: bytes, local, remote) -> None:
        self.datapath.esp_received(esp, local, remote)

    def _send_raw_esp(self, data: bytes, local_ip: str, remote_ip: str) -> None:
        raw = self._raw.get(local_ip)
        if raw is not None:
            raw.send_esp(data, remote_ip)

    def _send_esp_many(self, packets: list[bytes], local, remote) -> None:
        transport = self._transports.get(local)
        if transport is not None:
            transport.send_batch(packets, remote)

    def _send_esp(self, data: bytes, local, remote) -> None:
        transport = self._transports.get(local)
        if transport is not None:
            transport.sendto(data, remote)

    def _peer_of(self, sa_id: str):
        sa = self.responder.sa(sa_id)
        return (sa.local, sa.remote) if sa is not None else None

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        last_counters = 0.0
        while True:
            await asyncio.sleep(1.0)
            now = loop.time()
            self.orchestrator.tick(now)
            self.collections.tick(held=len(self.datapath.subscribers))
            for _key, sa_id, child_id in self.datapath.expired(now):
                log.info("[%s] child %d: ESP SA lifetime expired, deleting it", sa_id, child_id)
                self.responder.delete_phase2(sa_id, child_id, now)
                self._flush_soon()
            if now - last_counters >= COUNTER_INTERVAL:
                last_counters = now
                counters = self.orchestrator.counters()
                if counters:
                    self.channel.notify({"op": "counters", "subs": counters})

    # -- supervisor requests ----------------------------------------------------------------
    def _on_message(self, message: dict) -> dict | None:
        op = message["op"]
        if op == "logout":
            cause = Event(message.get("cause", Event.ADMIN_LOGOUT.value))
            if message.get("all"):
                return {"count": self.orchestrator.logout_all(cause)}
            return {"count": self.orchestrator.logout(list(message.get("keys", [])), cause)}
        if op == "change":
            return {"ok": self.orchestrator.change(message["key"], message.get("session_timeout"),
                                                   message.get("idle_timeout"))}
        if op == "show":
            return self._show(message.get("what", ""))
        if op == "lockout":
            self.orchestrator.guard.apply(message)
            return None
        if op == "reload":
            reply = self.reloader.apply(message["snapshot"], message.get("summary", ""))
            self.cfg = self.reloader.cfg
            return reply
        if op == "metrics":
            return self.telemetry.on_message(message)
        if op == "shutdown":
            self._stop("supervisor asked")
            return {"ok": True}
        raise ipc.IpcError(f"unknown op {op!r}")

    def _show(self, what: str) -> dict:
        o = self.orchestrator
        if what == "ike-sa":
            return {"rows": o.describe_ike_sas()}
        if what == "counters":
            return {"subs": o.counters()}
        if what == "ipsec-sa":
            return {"rows": self.datapath.describe_children()}
        if what == "statistics":
            return {"engine": dict(self.responder.stats), "worker": dict(o.stats),
                    "refused": dict(o.refused), "datapath": dict(self.datapath.stats),
                    "transaction": dict(o.task.stats), "ike_sas": self.responder.sa_count,
                    "subscribers": len(o.table),
                    "radius": self.reloader.radius.counters() if self.reloader.radius else None}
        raise ipc.IpcError(f"unknown show {what!r}")


def _set_parent_death_signal() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        pass


def read_configuration(ipc_sock: socket.socket) -> WorkerConfig:
    """The supervisor's first line: the configuration snapshot."""
    message = ipc.read_first_message(ipc_sock)
    if message["op"] != ipc.CONFIGURE:
        raise ipc.IpcError(f"expected {ipc.CONFIGURE!r} first, got {message['op']!r}")
    return worker_config(message["snapshot"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dynipsec-worker",
        description="the configuration comes as the first line on --ipc-fd")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--generation", type=int, default=0)
    parser.add_argument("--boot-id", default="0000")
    parser.add_argument("--ipc-fd", type=int, required=True)
    parser.add_argument("--socket", action="append", default=[],
                        help="ADDRESS:PORT:FD of an inherited bound UDP socket")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    _set_parent_death_signal()
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format=f"%(asctime)s w{args.index} %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    ipc_sock = socket.socket(fileno=args.ipc_fd)
    cfg = read_configuration(ipc_sock)
    setup_logging(args.log_level, cfg.logging.format, f"w{args.index}")
    sockets = []
    for spec in args.socket:
        address, port, fd = spec.rsplit(":", 2)
        sockets.append((address, int(port), socket.socket(fileno=int(fd))))
    worker = Worker(cfg, args.index, args.workers, sockets, ipc_sock, args.generation,
                    args.boot_id)
    code = asyncio.run(worker.run())
    if worker.abandoned_threads:
        # a stuck thread would be joined at interpreter exit, and the worker never end
        logging.shutdown()
        os._exit(code)
    return code


if __name__ == "__main__":
    t0 = time.monotonic()
    sys.exit(main())
