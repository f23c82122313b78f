"""Run a vendor-ID case in memory: the project's initiator against the sans-I/O
responder, on a fake clock, in milliseconds.

    outcome, view = run_case(load_cases(), case)
    problems = compare(case.expected(), outcome)

The responder is configured exactly like the lab's DynipsecGateway (the same
`render_config` of the default access plan, through the daemon's own policy
builders) with the real Transaction task; the daemon's AAA, address and
subscriber layers are stood in for by `MemoryGateway`: local users of the
plan, addresses from the group's pool, a dynamic Quick Mode only for the
assigned address. A NAT on the path is a `NatLink` rewriting the client's
source address and ports as a masquerading NAT does.
"""
from __future__ import annotations

import asyncio
import ipaddress
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from clients.ikev1_initiator import InitiatorConfig, InitiatorSession
from clients.ikev1_initiator.hooks import MessageHook
from clients.ikev1_initiator.memory import MemoryLink, Wire
from lab.gateways.dynipsec import render_config
from lab.gateways.plan import AccessPlan, default_plan
from responder.config import build_responder_policy, parse_config
from responder.daemon.worker import transaction_policy
from responder.ikev1.engine import Responder
from responder.ikev1.errors import CodecError
from responder.ikev1.exchanges.quick_mode import DefaultPhase2Provider
from responder.ikev1.exchanges.transaction import TransactionTask
from responder.ikev1.message import Message, parse_header
from responder.ikev1.modecfg import ModeConfig
from responder.ikev1.natt_framing import Port4500Kind, classify_port4500
from responder.ikev1.payloads import NatDiscovery, VendorId
from responder.ikev1.transaction_events import XauthCredentials

from lab.vendorids.cases import Case, CaseTable
from lab.vendorids.craft import Target
from lab.vendorids.outcome import Outcome
from lab.vendorids.probe import InitiatorView, WireFacts, outcome_of, probe

__all__ = ["MEMORY_DPD", "MemoryGateway", "NatLink", "run_case", "memory_target",
           "wire_facts"]

#: the in-memory responder's DPD interval and timeout (seconds of fake time)
MEMORY_DPD = (5.0, 20.0)
CLIENT = ("198.18.1.2", 500)
NAT_INSIDE = ("192.168.100.11", 500)
NAT_PUBLIC = "198.18.100.1"
Address = tuple[str, int]


def _seeded(seed: int) -> Callable[[int], bytes]:
    generator = random.Random(seed)
    return generator.randbytes


class MemoryGateway:
    """Responder + Transaction task + a tiny AAA/address layer, responder-like for
    MemoryLink. An exception escaping the engine is kept in `crash`."""

    def __init__(self, plan: AccessPlan, *, seed: int = 1,
                 dpd: tuple[float, float] = MEMORY_DPD) -> None:
        cfg = parse_config(render_config(plan, control_socket="/nonexistent/control.sock",
                                         dpd=dpd))
        self.plan = plan
        self.assigned: dict[str, ipaddress.IPv4Network] = {}
        policy = build_responder_policy(cfg)
        provider = DefaultPhase2Provider(policy.dynamic_esp, check=self._selectors_allowed)
        self.engine = Responder(policy, rng=_seeded(seed), phase2_provider=provider)
        self.task = TransactionTask.attach(self.engine, transaction_policy(cfg))
        group = plan.groups[0]
        self.group = group
        self._hosts = ipaddress.ip_network(group.pool).hosts()
        self.now = 0.0
        self.crash: str | None = None

    def _selectors_allowed(self, sa, remote, local) -> bool:
        wanted = self.assigned.get(sa.sa_id)
        return wanted is not None and remote.network == wanted

    def _guard(self, call: Callable[[], Any]) -> None:
        if self.crash is not None:
            return
        try:
            call()
        except Exception as exc:  # the error boundary must never let one out
            self.crash = f"{type(exc).__name__}: {exc}"
        self._drain()

    def receive_datagram(self, data: bytes, local: Address, remote: Address, now: float) -> None:
        self.now = now
        self._guard(lambda: self.engine.receive_datagram(data, local, remote, now))

    def datagrams_to_send(self) -> list:
        return [] if self.crash else self.engine.datagrams_to_send()

    def get_timer(self) -> float | None:
        return None if self.crash else self.engine.get_timer()

    def handle_timer(self, now: float) -> None:
        self.now = now
        self._guard(lambda: self.engine.handle_timer(now))

    def _drain(self) -> None:
        for event in self.engine.events():
            if isinstance(event, XauthCredentials):
                self._authenticate(event)

    def _authenticate(self, event: XauthCredentials) -> None:
        ctx = self.task.context(self.now)
        granted = self.plan.users.get(event.username, "").encode() == event.password
        if granted:
            address = next(self._hosts)
            self.assigned[event.sa_id] = ipaddress.ip_network(f"{address}/32")
            group = self.group
            self.task.set_config(ctx, event.sa_id, ModeConfig(
                address, group.netmask, dns=list(group.dns), wins=list(group.wins)))
        self.task.xauth_result(ctx, event.sa_id, granted)


@dataclass
class NatLink:
    """A masquerading NAT in front of a responder-like object: the client's
    (address, port) becomes (public, port + 30000) on the way in, and back."""

    inner: Any
    public: str = NAT_PUBLIC
    inside: dict[Address, Address] = field(default_factory=dict)

    def _outside(self, address: Address) -> Address:
        mapped = (self.public, address[1] + 30000)
        self.inside[mapped] = address
        return mapped

    def receive_datagram(self, data: bytes, local: Address, remote: Address, now: float) -> None:
        self.inner.receive_datagram(data, local, self._outside(remote), now)

    def datagrams_to_send(self) -> list:
        return [_Reply(d.data, d.local, self.inside.get(d.remote, d.remote))
                for d in self.inner.datagrams_to_send()]

    def get_timer(self) -> float | None:
        return self.inner.get_timer()

    def handle_timer(self, now: float) -> None:
        self.inner.handle_timer(now)


@dataclass(frozen=True)
class _Reply:
    data: bytes
    local: Address
    remote: Address


class MemoryDriver:
    """probe.Driver over a MemoryLink: waiting advances the fake clock."""

    def __init__(self, link: MemoryLink, local: Address) -> None:
        self.link = link
        self.local = local
        self._seed = 100

    def start(self, config: InitiatorConfig, hook: MessageHook) -> InitiatorSession:
        self._seed += 1
        port = self.local[1] + 2 * (self._seed - 101)
        session = InitiatorSession(config, local=(self.local[0], port),
                                   local_natt=(self.local[0], port + 4000),
                                   rng=_seeded(self._seed), hooks=hook)
        self.link.add(session)
        return session

    async def until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        return self.link.run_until(predicate, limit=timeout, step=0.25)

    async def idle(self, seconds: float) -> None:
        self.link.advance(seconds)

    def now(self) -> float:
        return self.link.now

    def flush(self, session: InitiatorSession) -> None:
        self.link.pump()


def memory_target(plan: AccessPlan, client_address: str, user: str) -> Target:
    group = plan.groups[0]
    return Target(server=plan.gateway, group=group.group, main_mode_psk=plan.main_mode_psk,
                  group_psk=group.psk, user=user, password=plan.users[user],
                  intranet=group.intranet, client_address=client_address, xauth_wait=2.0)


def _unframe(wire: Wire, port: int) -> bytes | None:
    if port != 4500:
        return wire.data
    try:
        kind, content = classify_port4500(wire.data)
    except CodecError:
        return None
    return content if kind is Port4500Kind.IKE else None


def wire_facts(link: MemoryLink, cookie: bytes) -> WireFacts:
    """The responder's VIDs and NAT-D types for one initiator cookie, and whether
    the initiator's IKE went to port 4500, read from the simulated wire."""
    vids: tuple[bytes, ...] = ()
    natd: int | None = None
    for wire in link.to_client:
        data = _unframe(wire, wire.source[1])
        if data is None or len(data) < 28 or data[:8] != cookie:
            continue
        try:
            header = parse_header(data)
            if header.encrypted:
                continue
            message = Message.parse(data)
        except CodecError:
            continue
        found = tuple(p.data for p in message.payloads_of(VendorId))
        if found and not vids:
            vids = found
        types = [int(p.payload_type) for p in message.payloads_of(NatDiscovery)]
        if types and natd is None:
            natd = types[0]
    floated = any(w.destination[1] == 4500 and _unframe(w, 4500) is not None
                  and (_unframe(w, 4500) or b"")[:8] == cookie for w in link.to_server)
    return WireFacts(vids, natd, floated)


def _still_answers(gateway: MemoryGateway, plan: AccessPlan) -> bool:
    """A fresh strongSwan-like Main Mode msg 1 still gets msg 2."""
    if gateway.crash is not None:
        return False
    from clients.ikev1_initiator import IdentitySpec

    config = InitiatorConfig(server=plan.gateway, identity=IdentitySpec.parse("keyid:vr1"),
                             psk=plan.main_mode_psk.encode(), quick_mode=False,
                             mode_config=False)
    link = MemoryLink(gateway, (plan.gateway, 500), now=gateway.now + 1000)
    session = InitiatorSession(config, local=("198.18.1.250", 500), rng=_seeded(7))
    link.add(session)
    link.run_until(lambda: session.state.value != "mm1_sent" or session.finished, limit=10)
    return gateway.crash is None and session.cky_r != bytes(8)


def run_case(table: CaseTable, case: Case, *, plan: AccessPlan | None = None,
             user: str = "user001", seed: int = 1) -> tuple[Outcome, InitiatorView]:
    """One case against a fresh in-memory responder."""
    plan = plan or default_plan()
    gateway = MemoryGateway(plan, seed=seed)
    client = NAT_INSIDE if case.nat else CLIENT
    responder = NatLink(gateway) if case.nat else gateway
    link = MemoryLink(responder, (plan.gateway, 500))
    driver = MemoryDriver(link, client)
    target = memory_target(plan, client[0], user)
    view = asyncio.run(probe(table, case, target, driver, dpd_wait=MEMORY_DPD[0] + 1.0))
    wire = wire_facts(link, bytes.fromhex(view.cookies[0]))
    outcome = outcome_of(table, view, wire, alive=_still_answers(gateway, plan))
    return outcome, view
