"""A worker's orchestrator, in memory: the real engine, Transaction task, AAA (local),
supervisor bookkeeping (licenses, pools, registry) and data path, with the project's
IKEv1 initiator as the client. Fakes: the TUN interfaces (a datagram socketpair per
subscriber) and the wire (MemoryLink)."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import random
import re
import socket

import pytest

from clients.ikev1_initiator import (ChildSaUp, ConfigReceived, IdentitySpec, InitiatorConfig,
                                     InitiatorSession, Mode)
from clients.ikev1_initiator.memory import MemoryLink
from responder.aaa.accounting import TERMINATE_CAUSE, TerminateCause
from responder.config import build_responder_policy, parse_config
from responder.daemon.datapath import DataPath
from responder.daemon.orchestrator import Orchestrator, Phase2Gate, select_profile
from responder.daemon.supervisor import Supervisor
from responder.daemon.worker import WorkerResponder, build_authenticator, transaction_policy
from responder.esp import EspSAParams, InboundSA, OutboundSA
from responder.ikev1.exchanges.transaction import TransactionTask
from responder.ikev1.policy import Identity
from responder.netif import InterfaceManager
from responder.subscriber import State, SubscriberEvent, SubscriberTable

SERVER = ("198.18.0.1", 500)

CONFIG = {
    "listen": [{"address": "198.18.0.1", "default_profile": "fallback"}],
    "workers": 1,
    "vrs": {"vr1": {"netns": "nsvr1", "interface_prefix": "ipa"},
            "vr2": {"netns": "nsvr2", "interface_prefix": "ipb"}},
    "pools": {"vr1": {"vr1": {"ranges": ["10.99.1.0/24"]}},
              "vr2": {"vr2": {"ranges": ["10.99.2.0/24"]}}},
    "ike": {"remote_delete_grace": 0, "force_encap": True},
    "pre_shared_keys": [{"identity": "keyid:vr1", "secret": "psk-vr1"},
                        {"identity": "keyid:vr2", "secret": "psk-vr2"},
                        {"local": "198.18.0.1", "secret": "psk-vr1"}],  # Main Mode
    "tunnel_profiles": [
        {"name": "vr1", "match": {"identities": ["keyid:vr1"]}, "vr": "vr1", "pool": "vr1",
         "local_networks": ["10.50.0.0/24"],
         "mode_config": {"dns": ["10.50.0.53", "10.50.0.54"],
                         "wins": ["10.50.0.137", "10.50.0.138"], "banner": "hi"}},
        {"name": "vr2", "match": {"identities": ["keyid:vr2"]}, "vr": "vr2", "pool": "vr2"},
        {"name": "fallback", "match": {"identities": ["fqdn:*.example"]}, "vr": "vr1"},
    ],
    "aaa": {"local_users": {
        "alice": {"password": "pw-alice"},
        "bob": {"password": "pw-bob", "vr": "vr2", "dns": ["10.9.9.9"]},
        "carol": {"password": "pw-carol", "address": "10.99.1.77"},
    }},
    "licenses": {"ipsec_tunnel": 2, "subscriber": 2},
    "control": {"socket": "/nonexistent/control.sock"},
}


def seeded(seed: int):
    generator = random.Random(seed)
    return lambda n: generator.randbytes(n)


class SupervisorLink:
    """The orchestrator's link, answered by the real supervisor bookkeeping."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.s = supervisor
        self.downs: list[tuple[str, str]] = []

    async def acquire(self, key, request):
        await asyncio.sleep(0)
        return self.s.acquire(0, {"key": key, **request})

    def release(self, key):
        self.s._release(key)

    def session_up(self, key, record):
        self.s._session_up(key, 0, record)

    def session_down(self, key, cause, counters):
        self.downs.append((key, cause))
        self.s._session_down(key, cause, [counters.input_octets, counters.output_octets,
                                          counters.input_packets, counters.output_packets])

    def update(self, key, record):
        self.s.registry.get(key, {}).update(record)


class FakeIface:
    def __init__(self, vr, name, address, mtu):
        self.vr, self.name, self.address, self.mtu = vr, name, address, mtu
        self.fd_sock, self.vr_side = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.fd = self.fd_sock.fileno()
        self.removed = False


class FakeInterfaces:
    def __init__(self):
        self.live: dict[str, FakeIface] = {}
        self.removed: list[str] = []

    async def create(self, vr, name, address, mtu):
        iface = FakeIface(vr, name, address, mtu)
        self.live[name] = iface
        return iface

    def remove(self, iface):
        iface.removed = True
        self.removed.append(iface.name)
        del self.live[iface.name]
        iface.fd_sock.close()
        iface.vr_side.close()


class Rig:
    def __init__(self, tmp_path, **changes):
        data = {**CONFIG, **changes}
        self.cfg = parse_config(data)
        self.supervisor = Supervisor(self.cfg, str(tmp_path / "config.yaml"))
        self.link = SupervisorLink(self.supervisor)
        gate = Phase2Gate(build_responder_policy(self.cfg).dynamic_esp)
        self.engine = WorkerResponder(build_responder_policy(self.cfg), rng=seeded(1),
                                      phase2_provider=gate, worker_index=0, workers=1)
        self.task = TransactionTask.attach(self.engine, transaction_policy(self.cfg))
        self.interfaces = FakeInterfaces()
        self.sent: list[tuple[bytes, tuple, tuple]] = []
        self.datapath = DataPath(lambda d, l, r: self.sent.append((d, l, r)), self._peer_of)
        auth, _ = build_authenticator(self.cfg)
        self.wire = MemoryLink(self, SERVER)
        self.orchestrator = Orchestrator(
            self.cfg, worker_index=0, responder=self.engine, task=self.task,
            authenticator=auth, link=self.link, interfaces=self.interfaces,
            datapath=self.datapath, table=SubscriberTable(session_prefix="T"),
            clock=lambda: self.wire.now, flush=self.drain)
        gate.orchestrator = self.orchestrator

    def _peer_of(self, sa_id):
        sa = self.engine.sa(sa_id)
        return (sa.local, sa.remote) if sa else None

    # responder-like for MemoryLink: every engine call is followed by its events
    def receive_datagram(self, data, local, remote, now):
        self.engine.receive_datagram(data, local, remote, now)
        self.drain()

    def datagrams_to_send(self):
        return self.engine.datagrams_to_send()

    def get_timer(self):
        return self.engine.get_timer()

    def handle_timer(self, now):
        self.engine.handle_timer(now)
        self.drain()

    def drain(self):
        for event in self.engine.events():
            self.orchestrator.handle_event(event)

    async def run_until(self, done, rounds: int = 400) -> bool:
        for _ in range(rounds):
            self.wire.pump()
            for _ in range(3):
                await asyncio.sleep(0)
            if done():
                return True
            self.wire.advance(0.05)
        return done()

    def session(self, user, password, group="vr1", port=10_000, mode=Mode.AGGRESSIVE):
        cfg = InitiatorConfig(server=SERVER[0], identity=IdentitySpec.parse(f"keyid:{group}"),
                              psk=f"psk-{group}".encode(), mode=mode, xauth_user=user,
                              xauth_password=password.encode(), remote_selector="10.50.0.0/24")
        session = InitiatorSession(cfg, local=("198.18.1.2", port),
                                   local_natt=("198.18.1.2", port + 1), rng=seeded(port))
        self.wire.add(session)
        return session


def events(session, kind):
    return [e for e in session.events() if isinstance(e, kind)]


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 20))


def test_profile_selection(tmp_path):
    cfg = parse_config(CONFIG)
    assert select_profile(cfg, "198.18.0.1", Identity(11, "vr2")).name == "vr2"
    assert select_profile(cfg, "198.18.0.1", Identity(2, "a.example")).name == "fallback"
    # no pattern matches: the listen address's default profile
    assert select_profile(cfg, "198.18.0.1", Identity(1, "198.18.1.9")).name == "fallback"
    assert select_profile(cfg, "192.0.2.1", Identity(1, "198.18.1.9")) is None


def test_login_esp_and_remote_delete(tmp_path):
    async def main():
        rig = Rig(tmp_path)
        session = rig.session("alice", "pw-alice", mode=Mode.MAIN)
        assert await rig.run_until(lambda: session.established)
        seen = list(session.events())
        config = [e for e in seen if isinstance(e, ConfigReceived)]
        child = [e for e in seen if isinstance(e, ChildSaUp)]
        assert config and child
        sup = rig.supervisor
        # supervisor: licenses, address, registry (what show subscribers answers)
        (key, record), = sup.registry.items()
        assert record["user"] == "alice" and record["vr"] == "vr1" and record["netns"] == "nsvr1"
        address = ipaddress.IPv4Address(record["address"])
        assert address in ipaddress.ip_network("10.99.1.0/24")
        assert [s.in_use for s in sup.licenses.stats()] == [1, 1]
        iface, = rig.interfaces.live.values()
        assert (iface.vr, iface.name, iface.address) == ("nsvr1", "ipa0-1", address)
        sub, = rig.orchestrator.table
        assert sub.state is State.ACTIVE
        # the ESP data path both ways, with the client's keys
        ua = child[0].child
        keys = ua.keys
        out_client = OutboundSA(EspSAParams(
            spi=int.from_bytes(keys.outbound.spi, "big"), enc_id=ua.cipher,
            auth_id=ua.integrity, key_bits=ua.key_length,
            enc_key=keys.outbound.encryption_key, auth_key=keys.outbound.integrity_key,
            salt=keys.outbound.salt, encap_udp=True))
        inner = _ipv4(str(address), "10.50.0.10")
        assert rig.datapath.esp_received(out_client.encapsulate(inner), ("198.18.0.1", 4500),
                                         session.local_natt) == inner
        assert iface.vr_side.recv(2048) == inner
        # a forged source is dropped
        assert rig.datapath.esp_received(out_client.encapsulate(_ipv4("10.99.1.200", "10.50.0.10")),
                                         ("198.18.0.1", 4500), session.local_natt) is None
        reply = _ipv4("10.50.0.10", str(address))
        path = rig.datapath.subscribers[key]
        assert rig.datapath.send_to_subscriber(path, reply)
        esp, local, remote = rig.sent[-1]
        assert local == ("198.18.0.1", 4500)
        in_client = InboundSA(EspSAParams(
            spi=int.from_bytes(keys.inbound.spi, "big"), enc_id=ua.cipher,
            auth_id=ua.integrity, key_bits=ua.key_length,
            enc_key=keys.inbound.encryption_key, auth_key=keys.inbound.integrity_key,
            salt=keys.inbound.salt, encap_udp=True))
        assert in_client.decapsulate(esp) == reply
        # the client logs out: everything goes back, Stop says remote-delete
        rig.wire.pump()
        session.close(rig.wire.now)
        assert await rig.run_until(lambda: not sup.registry)
        assert rig.link.downs == [(key, "remote-delete")]
        assert not sup.held and [s.in_use for s in sup.licenses.stats()] == [0, 0]
        assert all(st.used == 0 for st in sup.pools.stats())
        assert rig.interfaces.removed == ["ipa0-1"] and not rig.datapath.subscribers
        assert len(rig.orchestrator.table) == 0 and not rig.orchestrator.by_sa

    run(main())


def _ipv4(src: str, dst: str) -> bytes:
    payload = b"\x08\x00\x00\x00" + os.urandom(12)
    header = bytearray(20)
    header[0] = 0x45
    header[2:4] = (20 + len(payload)).to_bytes(2, "big")
    header[8], header[9] = 64, 1
    header[12:16] = ipaddress.IPv4Address(src).packed
    header[16:20] = ipaddress.IPv4Address(dst).packed
    return bytes(header) + payload


def test_aaa_vr_address_and_dns_override_the_profile(tmp_path):
    async def main():
        rig = Rig(tmp_path)
        bob = rig.session("bob", "pw-bob", group="vr1", port=11_000)
        carol = rig.session("carol", "pw-carol", group="vr1", port=12_000)
        assert await rig.run_until(lambda: bob.established and carol.established)
        rows = {r["user"]: r for r in rig.supervisor.registry.values()}
        assert rows["bob"]["vr"] == "vr2" and rows["bob"]["netns"] == "nsvr2"
        assert ipaddress.IPv4Address(rows["bob"]["address"]) in ipaddress.ip_network("10.99.2.0/24")
        assert rows["carol"]["address"] == "10.99.1.77"
        bob_config = [e.config for e in bob.events() if isinstance(e, ConfigReceived)][0]
        assert bob_config.dns == ("10.9.9.9", "10.50.0.54")  # primary from AAA
        assert bob_config.wins == ("10.50.0.137", "10.50.0.138")

    run(main())


def test_wrong_password_is_retried_then_refused(tmp_path):
    async def main():
        rig = Rig(tmp_path)
        session = rig.session("alice", "wrong")
        assert await rig.run_until(lambda: session.finished)
        assert not session.established
        assert rig.orchestrator.refused["auth-failed"] == 1
        assert rig.orchestrator.stats["aaa_refused"] == 3  # three attempts
        sup = rig.supervisor
        assert not sup.registry and not sup.held
        assert [s.in_use for s in sup.licenses.stats()] == [0, 0]
        assert not rig.interfaces.live and len(rig.orchestrator.table) == 0

    run(main())


def test_license_refusal_and_admin_logout(tmp_path):
    async def main():
        rig = Rig(tmp_path, licenses={"ipsec_tunnel": 1, "subscriber": 5})
        first = rig.session("alice", "pw-alice", port=13_000)
        assert await rig.run_until(lambda: first.established)
        second = rig.session("carol", "pw-carol", port=14_000)
        assert await rig.run_until(lambda: second.finished)
        assert not second.established
        assert rig.supervisor.refused["tunnel-license"] == 1
        assert rig.orchestrator.refused["license"] == 1
        assert len(rig.supervisor.registry) == 1
        # admin logout: Delete to the client, Stop with admin-logout, license back
        key = next(iter(rig.supervisor.registry))
        assert rig.orchestrator.logout([key], SubscriberEvent.ADMIN_LOGOUT) == 1
        assert await rig.run_until(lambda: first.finished)
        assert rig.link.downs == [(key, "admin-logout")]
        assert [s.in_use for s in rig.supervisor.licenses.stats()] == [0, 0]
        third = rig.session("carol", "pw-carol", port=15_000)
        assert await rig.run_until(lambda: third.established)

    run(main())


def test_worker_lost_releases_everything(tmp_path):
    async def main():
        rig = Rig(tmp_path)
        session = rig.session("alice", "pw-alice")
        assert await rig.run_until(lambda: session.established)
        sup = rig.supervisor
        assert sup.registry and sup.held
        sup.worker_lost(0, -9)
        assert not sup.registry and not sup.held
        assert [s.in_use for s in sup.licenses.stats()] == [0, 0]
        assert sup.stats["sessions_ended_worker-lost"] == 1

    run(main())


class MissingNamespaceInterfaces:
    """The real interface manager with an empty netns directory: every VR namespace is
    missing, so creation fails as it does when a VR's namespace was deleted. Remembers
    the subscribers present at the failed creation."""

    def __init__(self, netns_dir, table):
        self.manager = InterfaceManager(netns_dir=str(netns_dir))
        self.table = table
        self.subscribers_at_failure: list = []
        self.live: dict = {}

    async def create(self, vr, name, address, mtu):
        self.subscribers_at_failure = list(self.table)
        return self.manager.create(vr, name, address, mtu)

    def remove(self, iface):
        self.manager.remove(iface)


def test_missing_vr_namespace_refuses_the_login_as_an_internal_error(tmp_path, caplog):
    async def main():
        rig = Rig(tmp_path)
        interfaces = MissingNamespaceInterfaces(tmp_path / "netns", rig.orchestrator.table)
        rig.orchestrator.interfaces = rig.interfaces = interfaces
        session = rig.session("alice", "pw-alice")
        assert await rig.run_until(lambda: session.finished)
        assert not session.established
        (sub,) = interfaces.subscribers_at_failure
        assert sub.teardown_event is SubscriberEvent.INTERNAL_ERROR
        assert TERMINATE_CAUSE[sub.teardown_event] is TerminateCause.NAS_ERROR
        # refused before accounting Start: no Start, so no Stop; everything went back
        assert rig.link.downs == [] and not rig.supervisor.registry and not rig.supervisor.held
        assert [s.in_use for s in rig.supervisor.licenses.stats()] == [0, 0]
        assert rig.orchestrator.stats["teardown_internal-error"] == 1
        return sub.id

    caplog.set_level(logging.INFO)
    sub_id = run(main())
    log = caplog.text
    assert re.search(r"user 'alice' denied: VR namespace 'nsvr1' not found .*; cause internal-error", log)
    assert "internal error (NAS error): interface ipa0-1 in nsvr1 failed" in log
    assert f"subscriber {sub_id} (alice) teardown: internal-error" in log
    assert "Xauth user 'alice' failed after 1 attempts (internal-error)" in log
    assert "admin-logout" not in log


class UnreachableSupervisorLink(SupervisorLink):
    async def acquire(self, key, request):
        await asyncio.sleep(0)
        raise ConnectionResetError("supervisor socket closed")


def test_an_unreachable_supervisor_refuses_the_login_as_an_internal_error(tmp_path, caplog):
    async def main():
        rig = Rig(tmp_path)
        rig.orchestrator.link = rig.link = UnreachableSupervisorLink(rig.supervisor)
        session = rig.session("alice", "pw-alice")
        assert await rig.run_until(lambda: session.finished)
        assert not session.established
        assert rig.orchestrator.stats["teardown_internal-error"] == 1
        assert rig.orchestrator.refused["supervisor"] == 1
        assert rig.interfaces.live == {}

    caplog.set_level(logging.INFO)
    run(main())
    assert re.search(r"user 'alice' denied: supervisor: supervisor socket closed; cause internal-error",
                     caplog.text)
    assert "license-refused" not in caplog.text
