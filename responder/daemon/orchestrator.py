"""Inside a worker: engine events -> subscriber lifecycle -> AAA -> supervisor -> netif
-> Mode-Config -> ESP SAs <-> TUN (docs/architecture.md, docs/subscribers.md).

The :class:`Orchestrator` receives every event of the worker's `Responder` (engine
and Transaction task events, in order) and drives one :class:`Subscriber` per dynamic
phase 1 SA:

====================  ==================================================================
engine event          what happens
====================  ==================================================================
Phase1Established     dynamic only: map to a tunnel profile (local address + identity),
                      create the subscriber (max-interfaces), XAUTH_STARTED (the
                      Transaction task already sent the Xauth REQUEST)
XauthCredentials      AAA (local / RADIUS, domain maps) in a task; refused -> task
                      re-prompts or gives up; granted -> licenses + address from the
                      supervisor, TUN + /32 route in the VR, accounting Start, then
                      ``set_config`` (Mode-Config) and ``xauth_result(granted)``
XauthFailed           auth-failed / xauth-timeout teardown
ModeConfigDone        config-sent
Phase2Established     ESP SAs installed on the data path, phase2-up
Phase2Deleted         that child's SAs removed (rekeys keep the subscriber)
Phase1Deleted         teardown: remote-delete (after ``remote_delete_grace``), dpd-timeout
PeerDead              dpd-timeout
InitialContact        noted; once AAA grants that SA's user, the user's older subscribers
                      from the same peer address go (initial-contact, Lost-Carrier)
====================  ==================================================================

Refusals after the Xauth credentials (AAA unavailable, no license, no address,
interface trouble) end Xauth properly: STATUS=FAIL at once (no re-prompt), the client's ACK, then Delete.

Remote delete grace: when the peer deleted all its SAs, the subscriber waits
``remote_delete_grace`` seconds (interface, address, accounting kept). If the same user
logs in again from the same peer address to the same profile meanwhile (new phase 1,
Xauth with AAA again), the new IKE SA is re-attached to the waiting subscriber: same
address, interface and accounting session; the stand-in subscriber of the new phase 1
goes without a trace (it held nothing but the SA). Otherwise the grace ends in a
remote-delete logout (User-Request).

Every resource goes into the subscriber's ledger with its release; teardown (any
cause) releases them newest first: accounting Stop (supervisor), ESP SAs, interface
and route, licenses + address (supervisor), and the IKE SA (Delete notifications
unless the peer deleted it). The supervisor link is an interface
(:class:`SupervisorLink`), so the whole thing runs in unit tests with fakes.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from responder.aaa.base import AuthResult, NasInfo
from responder.aaa.accounting import Counters
from responder.config.snapshot import build_esp_policy, profile_limits
from responder.ikev1 import events as ev
from responder.ikev1 import transaction_events as tev
from responder.ikev1.ike_sa import IkeSa
from responder.ikev1.modecfg import ModeConfig
from responder.ikev1.policy import EspPolicy, Identity, Selector
from responder.subscriber import (AUTHORIZED_STATES, SubscriberEvent, Peer, ResourceKind, State,
                                  Subscriber, SubscriberGoneError, SubscriberTable,
                                  TableFullError)

from .datapath import DataPath, UnsupportedChild
from .lockouts import LoginGuard

if TYPE_CHECKING:   # the model or a worker's snapshot (same attribute names)
    from responder.config.model import ResponderConfig, TunnelProfile

log = logging.getLogger(__name__)

#: a refused acquire's kind -> the subscriber's teardown cause (otherwise LICENSE_REFUSED):
#: an unreachable supervisor is the router's own fault, not a resource the user lacked
REFUSAL_CAUSE = {"supervisor": SubscriberEvent.INTERNAL_ERROR}

__all__ = ["Orchestrator", "SupervisorLink", "select_profile", "mode_config_for",
           "Phase2Gate"]

IPv4 = ipaddress.IPv4Address


class SupervisorLink(Protocol):
    """What a worker asks of the supervisor (responder/daemon/ipc.py messages)."""

    async def acquire(self, key: str, request: dict[str, Any]) -> dict[str, Any]:
        """Licenses + address. Reply: {"ok": True, "address", "netmask", "vr", "pool"}
        or {"ok": False, "reason", "kind": "license"|"address"}."""

    def release(self, key: str) -> None:
        """Give back licenses and address of `key` (idempotent at the supervisor)."""

    def session_up(self, key: str, record: dict[str, Any]) -> None:
        """Registry entry + accounting Start."""

    def session_down(self, key: str, cause: str, counters: Counters) -> None:
        """Accounting Stop with the final counters; registry entry marked down."""

    def update(self, key: str, record: dict[str, Any]) -> None:
        """Changes for the registry (state, child SAs)."""


class Interfaces(Protocol):
    """netif.InterfaceManager behind an executor (its netlink calls block, so not in the
    worker's event loop): create is awaited, remove is queued."""

    async def create(self, vr: str, name: str, address: IPv4, mtu: int): ...

    def remove(self, iface) -> None: ...


# -- profile mapping --------------------------------------------------------------------
def select_profile(cfg: ResponderConfig, local_ip: str, identity: Identity | None) -> TunnelProfile | None:
    """SPEC "IPsec tunnel profiles" (a): the first profile whose local addresses
    (empty = any) hold the address the peer connected to AND one of whose identity
    patterns (empty = any) matches the peer's IKE identity; else the listen
    address's ``default_profile``."""
    address = IPv4(local_ip)
    for profile in cfg.tunnel_profiles:
        match = profile.match
        if match.local_addresses and address not in match.local_addresses:
            continue
        if match.identities and (identity is None
                                 or not any(p.matches(identity) for p in match.identities)):
            continue
        return profile
    for listen in cfg.listen:
        if listen.address == address and listen.default_profile:
            return cfg.profile(listen.default_profile)
    return None


def _pair(aaa: tuple, configured: list) -> list[IPv4]:
    """AAA's primary/secondary server where given, else the profile's."""
    aaa = tuple(aaa or ()) + (None, None)
    configured = list(configured) + [None, None]
    chosen = [aaa[0] or configured[0], aaa[1] or configured[1]]
    return [IPv4(a) for a in chosen if a is not None]


def mode_config_for(profile: TunnelProfile, result: AuthResult, address: IPv4,
                    netmask: IPv4 | None) -> ModeConfig:
    """The subscriber's Mode-Config (SPEC step 6): AAA's values over the profile's."""
    settings = profile.mode_config
    return ModeConfig(
        address=address,
        netmask=result.framed_netmask or netmask or IPv4("255.255.255.255"),
        dns=_pair(result.dns, settings.dns),
        wins=_pair(result.wins, settings.wins),
        split_include=tuple(profile.local_networks),
        default_domain=settings.default_domain,
        banner=settings.banner,
    )


# -- the per-SA phase 2 policy (engine's Phase2Provider) ------------------------------------
class Phase2Gate:
    """Engine hook for dynamic Quick Modes: the subscriber's profile decides the ESP
    proposals; IDci must be the subscriber's assigned address (/32)."""

    def __init__(self, fallback: EspPolicy) -> None:
        self.fallback = fallback
        self.orchestrator: "Orchestrator | None" = None

    def esp_policy(self, sa: IkeSa) -> EspPolicy:
        orchestrator = self.orchestrator
        sub = orchestrator.by_sa.get(sa.sa_id) if orchestrator else None
        if sub is None:
            return self.fallback
        return orchestrator.esp_policies[sub.profile]

    def selectors_allowed(self, sa: IkeSa, remote: Selector, local: Selector) -> bool:
        orchestrator = self.orchestrator
        sub = orchestrator.by_sa.get(sa.sa_id) if orchestrator else None
        if sub is None or sub.address is None or sub.state not in AUTHORIZED_STATES:
            return False
        wanted = ipaddress.ip_network(f"{sub.address}/32")
        if remote.network != wanted:
            log.warning("subscriber %d: Quick Mode for %s refused, its address is %s",
                        sub.id, remote, sub.address)
            return False
        return True


@dataclass
class SubscriberInfo:
    """What the worker knows about a subscriber beyond the lifecycle object."""

    key: str
    sa_id: str
    exchange: str = ""
    transform: str = ""
    vendor_features: tuple[str, ...] = ()
    local: tuple[str, int] = ("", 0)
    iface: Any = None
    netns: str | None = None
    children: dict[int, Any] = field(default_factory=dict)
    grace: asyncio.TimerHandle | None = None
    result: AuthResult | None = None
    config: ModeConfig | None = None
    #: the peer sent INITIAL-CONTACT in this phase 1
    initial_contact: bool = False
    #: the Transaction task sends STATUS=FAIL and deletes the SA after the ACK
    xauth_fail_sent: bool = False


_PHASE1_REASONS = {
    "dpd": SubscriberEvent.DPD_TIMEOUT,
    "retransmit-timeout": SubscriberEvent.DPD_TIMEOUT,
    "transaction-timeout": SubscriberEvent.XAUTH_TIMEOUT,
    "xauth-failed": SubscriberEvent.AUTH_FAILED,
}


class Orchestrator:
    def __init__(self, cfg: ResponderConfig, *, worker_index: int, responder, task,
                 authenticator, link: SupervisorLink, interfaces: Interfaces,
                 datapath: DataPath, table: SubscriberTable,
                 clock: Callable[[], float], flush: Callable[[], None],
                 aaa_timeout: float = 30.0, guard: "LoginGuard | None" = None) -> None:
        self.cfg = cfg
        self.worker_index = worker_index
        self.responder = responder
        self.task = task
        self.auth = authenticator
        self.link = link
        self.interfaces = interfaces
        self.datapath = datapath
        self.table = table
        self.clock = clock
        self.flush = flush
        self.aaa_timeout = aaa_timeout
        #: Xauth brute-force defence (lockouts.py); None: no lockout
        self.guard = guard
        self.by_sa: dict[str, Subscriber] = {}
        # subscriber id -> the IKE SA ids bound to it, so a logout need not scan by_sa
        self._sas_of: dict[int, set[str]] = {}
        self.info: dict[int, SubscriberInfo] = {}
        self.esp_policies = {p.name: build_esp_policy(p) for p in cfg.tunnel_profiles}
        self.profiles = {p.name: p for p in cfg.tunnel_profiles}
        self.stats: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._tasks: set[asyncio.Task] = set()
        self.remote_delete_grace = cfg.ike.remote_delete_grace
        self.stopping = False
        #: SAs whose INITIAL-CONTACT came before their Phase1Established
        self._initial_contact: set[str] = set()

    def key(self, sub: Subscriber) -> str:
        return f"{self.worker_index}:{sub.id}"

    # -- event dispatch -----------------------------------------------------------------
    def handle_event(self, event: ev.Event) -> None:
        handler = self._HANDLERS.get(type(event))
        if handler is None:
            return
        try:
            handler(self, event)
        except Exception:  # noqa: BLE001 - one subscriber's bug must not stop the worker
            log.exception("handling %s failed", type(event).__name__)

    def _on_phase1_established(self, event: ev.Phase1Established) -> None:
        initial_contact = event.sa_id in self._initial_contact
        self._initial_contact.discard(event.sa_id)
        if not event.dynamic:
            log.info("[%s] phase 1 from %s:%d without the Xauth VID: static, no subscriber",
                     event.sa_id, *event.peer)
            return
        if self.stopping:
            self._refuse_sa(event.sa_id, "shutting-down", "the responder is shutting down")
            return
        profile = select_profile(self.cfg, event.local[0], event.identity)
        if profile is None:
            self._refuse_sa(event.sa_id, "no-profile",
                            f"no tunnel profile for identity {event.identity} on {event.local[0]}")
            return
        try:
            sub = self.table.create(Peer(IPv4(event.peer[0]), event.peer[1]), profile.name,
                                    self.clock())
        except TableFullError as exc:
            self._refuse_sa(event.sa_id, "max-interfaces", str(exc))
            return
        self._bind_sa(event.sa_id, sub)
        info = SubscriberInfo(self.key(sub), event.sa_id, event.exchange, event.transform,
                              tuple(sorted(event.vendor_features)), event.local,
                              initial_contact=initial_contact)
        self.info[sub.id] = info
        sub.on_gone(self._forget)
        sub.ledger.take(ResourceKind.IKE_SA, event.sa_id, lambda: self._delete_ike_sa(sub, info))
        sub.handle(SubscriberEvent.XAUTH_STARTED)
        # the profile's Xauth and Mode-Config settings for this SA
        self.task.configure(self.task.context(self.clock()), event.sa_id,
                            max_attempts=profile.xauth.max_attempts,
                            xauth_timeout=profile.xauth.timeout,
                            answer_unrequested=profile.mode_config.send_unrequested)
        self.stats["subscribers_created"] += 1
        log.info("subscriber %s: %s mode phase 1 %s from %s:%d, identity %s -> profile %s",
                 info.key, event.exchange, event.sa_id, *event.peer, event.identity, profile.name)

    def _refuse_sa(self, sa_id: str, reason: str, detail: str) -> None:
        self.refused[reason] += 1
        log.warning("[%s] dynamic phase 1 refused (%s): %s", sa_id, reason, detail)
        self.responder.delete_phase1(sa_id, self.clock(), reason)
        self.flush()

    def _on_credentials(self, event: tev.XauthCredentials) -> None:
        sub = self.by_sa.get(event.sa_id)
        if sub is None or not sub.live:
            self.task.xauth_result(self.task.context(self.clock()), event.sa_id, False,
                                   final=True, reason="no-subscriber")
            self.flush()
            return
        self.table.set_username(sub, event.username)
        self._spawn(self._login(sub, event))

    def _on_xauth_failed(self, event: tev.XauthFailed) -> None:
        sub = self.by_sa.get(event.sa_id)
        if sub is None or not sub.live:
            return
        # other reasons (peer-delete, ...): the Phase1Deleted that follows decides
        if sub.state is State.AUTHENTICATING and event.reason in ("denied", "invalid-reply",
                                                                  "timeout"):
            cause = (SubscriberEvent.XAUTH_TIMEOUT if event.reason == "timeout"
                     else SubscriberEvent.AUTH_FAILED)
            self.refused["auth-failed" if cause is SubscriberEvent.AUTH_FAILED
                         else "xauth-timeout"] += 1
            log.warning("subscriber %s: Xauth user %r refused (%s)", self.key(sub),
                        event.username, event.reason)
            self._teardown(sub, cause)

    def _on_xauth_succeeded(self, event: tev.XauthSucceeded) -> None:
        log.debug("[%s] Xauth ACKed by %r", event.sa_id, event.username)

    def _on_modecfg_done(self, event: tev.ModeConfigDone) -> None:
        sub = self.by_sa.get(event.sa_id)
        if sub is not None and sub.state in (State.INTERFACE_UP, State.ACTIVE):
            sub.handle(SubscriberEvent.CONFIG_SENT)
            self._update(sub)

    def _on_phase2_established(self, event: ev.Phase2Established) -> None:
        if not event.dynamic:
            return
        sub = self.by_sa.get(event.sa_id)
        info = self.info.get(sub.id) if sub else None
        if sub is None or not sub.live or info is None or info.iface is None:
            log.warning("[%s] child %d without a live subscriber interface: deleted",
                        event.sa_id, event.child_id)
            self.responder.delete_phase2(event.sa_id, event.child_id, self.clock())
            self.flush()
            return
        try:
            self.datapath.add_child(info.key, event)
        except UnsupportedChild as exc:
            log.warning("subscriber %s: child %d refused: %s", info.key, event.child_id, exc)
            self.responder.delete_phase2(event.sa_id, event.child_id, self.clock())
            self.flush()
            return
        key = info.key
        try:
            resource = sub.ledger.take(
                ResourceKind.CHILD_SA,
                f"{event.child_id} in {event.inbound.spi.hex()} out {event.outbound.spi.hex()}",
                lambda: self.datapath.remove_child(key, event.child_id))
        except SubscriberGoneError:
            return
        info.children[event.child_id] = resource
        sub.handle(SubscriberEvent.PHASE2_UP)
        self.stats["children_installed"] += 1
        log.info("subscriber %s: child %d up (%s, SPI in %s out %s, %s)", key, event.child_id,
                 self.datapath.subscribers[key].children[event.child_id].inbound.transform.name,
                 event.inbound.spi.hex(), event.outbound.spi.hex(),
                 "UDP" if event.udp_encapsulated else "raw")
        self._update(sub)

    def _on_phase2_deleted(self, event: ev.Phase2Deleted) -> None:
        sub = self.by_sa.get(event.sa_id)
        if sub is None:
            return
        info = self.info.get(sub.id)
        resource = info.children.pop(event.child_id, None) if info else None
        if resource is not None:
            sub.ledger.release_one(resource)
            if sub.state is State.ACTIVE:
                sub.handle(SubscriberEvent.PHASE2_DELETED)
            self._update(sub)

    def _on_phase1_deleted(self, event: ev.Phase1Deleted) -> None:
        sub = self.by_sa.get(event.sa_id)
        if sub is None or not sub.live:
            return
        cause = _PHASE1_REASONS.get(event.reason, SubscriberEvent.REMOTE_DELETE)
        if (cause in (SubscriberEvent.XAUTH_TIMEOUT, SubscriberEvent.AUTH_FAILED)
                and sub.state is not State.AUTHENTICATING):
            cause = (SubscriberEvent.REMOTE_DELETE if cause is SubscriberEvent.AUTH_FAILED
                     else SubscriberEvent.DPD_TIMEOUT)
        info = self.info.get(sub.id)
        if info is not None:
            info.sa_id = ""  # the engine already removed it: nothing to delete
        if (cause is SubscriberEvent.REMOTE_DELETE and self.remote_delete_grace > 0
                and sub.state in AUTHORIZED_STATES and info is not None and not self.stopping):
            log.info("subscriber %s: peer deleted all SAs (%s); logged out in %.0fs unless "
                     "it comes back", self.key(sub), event.reason, self.remote_delete_grace)
            loop = asyncio.get_event_loop()
            info.grace = loop.call_later(self.remote_delete_grace, self._teardown, sub,
                                         SubscriberEvent.REMOTE_DELETE)
            self.link.update(info.key, {"grace": True})
            return
        self._teardown(sub, cause)

    def _on_peer_dead(self, event: ev.PeerDead) -> None:
        sub = self.by_sa.get(event.sa_id)
        if sub is not None and sub.live:
            self._teardown(sub, SubscriberEvent.DPD_TIMEOUT)

    def _on_initial_contact(self, event: ev.InitialContact) -> None:
        # Behind a NAT many clients share one address, so "this peer's older sessions"
        # needs the user too, known only after Xauth: acted upon in _login.
        log.info("[%s] INITIAL-CONTACT from %s:%d (%s)", event.sa_id, *event.peer,
                 event.identity)
        sub = self.by_sa.get(event.sa_id)
        info = self.info.get(sub.id) if sub is not None else None
        if info is not None:
            info.initial_contact = True
        elif len(self._initial_contact) < 10_000:
            self._initial_contact.add(event.sa_id)

    def _on_exchange_failed(self, event: ev.ExchangeFailed) -> None:
        self.stats[f"exchange_failed_{event.exchange.lower()}"] += 1

    _HANDLERS: dict[type, Callable[["Orchestrator", Any], None]] = {
        ev.Phase1Established: _on_phase1_established,
        tev.XauthCredentials: _on_credentials,
        tev.XauthFailed: _on_xauth_failed,
        tev.XauthSucceeded: _on_xauth_succeeded,
        tev.ModeConfigDone: _on_modecfg_done,
        ev.Phase2Established: _on_phase2_established,
        ev.Phase2Deleted: _on_phase2_deleted,
        ev.Phase1Deleted: _on_phase1_deleted,
        ev.PeerDead: _on_peer_dead,
        ev.InitialContact: _on_initial_contact,
        ev.ExchangeFailed: _on_exchange_failed,
    }

    # -- the login (after Xauth credentials) ------------------------------------------------
    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("login task failed", exc_info=task.exception())

    async def _login(self, sub: Subscriber, creds: tev.XauthCredentials) -> None:
        sa_id = creds.sa_id
        info = self.info.get(sub.id)
        if info is None or not sub.live:
            return
        profile = self.profiles[sub.profile]
        t0 = self.clock()
        if self.guard is not None and await self._refused_while_locked(sub, info, creds):
            return
        nas = NasInfo(nas_port=sub.id, calling_station_id=str(sub.peer.address),
                      called_station_id=info.local[0])
        try:
            result = await asyncio.wait_for(
                self.auth.authenticate(creds.username, creds.password, nas,
                                       profile_suffix=profile.domain_suffix),
                self.aaa_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - AAA trouble is a refusal, logged
            result = AuthResult.aaa_fault(exc, self.aaa_timeout)
        if not sub.live:
            return
        if not result.granted:
            self.stats["aaa_refused"] += 1
            log.info("subscriber %s: user %r refused by AAA (attempt %d): %s", info.key,
                     creds.username, creds.attempt, result.reason)
            if result.is_final:     # AAA unavailable: asking again cannot help
                self._refuse_login(sub, info, SubscriberEvent.AUTH_FAILED, "aaa_unavailable",
                                   f"aaa unavailable: {result.reason}")
                return
            locked = self.guard is not None and await self.guard.failed(
                creds.username, str(sub.peer.address), result)
            if not sub.live:
                return
            self.task.xauth_result(self.task.context(self.clock()), sa_id, False,
                                   result.reply_message, final=locked)
            self.flush()
            return
        waiting = self._waiting_in_grace(sub, creds.username)
        if waiting is not None:
            if self.guard is not None:
                self.guard.granted(creds.username)
            self._reattach(waiting, sub, info, result)
            return
        if info.initial_contact:
            self._drop_older_sessions(sub, creds.username)
        await self._grant(sub, info, profile, creds.username, result, t0)

    async def _refused_while_locked(self, sub: Subscriber, info: SubscriberInfo,
                                    creds: tev.XauthCredentials) -> bool:
        """A locked user name or source address: STATUS=FAIL after the back-off delay,
        AAA is not asked."""
        reason = self.guard.refusal(creds.username, str(sub.peer.address))
        if reason is None:
            return False
        await self.guard.hold_locked()
        if sub.live:
            self._refuse_login(sub, info, SubscriberEvent.AUTH_FAILED, reason,
                               f"{reason} (source {sub.peer.address}), AAA not asked")
        return True

    def _refuse_login(self, sub: Subscriber, info: SubscriberInfo, cause: SubscriberEvent,
                      counter: str, detail: str) -> None:
        """A refusal after AAA granted (license, address, interface): Xauth ends with
        STATUS=FAIL at once (no re-prompt: retrying cannot help), the task deletes the
        SA once the client ACKed it; the subscriber goes with `cause`."""
        self.refused[counter] += 1
        log.warning("subscriber %s: user %r denied: %s; cause %s", info.key, sub.username, detail,
                    cause.value)
        if info.sa_id:
            info.xauth_fail_sent = self.task.xauth_result(
                self.task.context(self.clock()), info.sa_id, False,
                f"access refused: {counter}", final=True, reason=cause.value)
        self._teardown(sub, cause)

    # -- remote delete grace and INITIAL-CONTACT ------------------------------------------
    def _waiting_in_grace(self, sub: Subscriber, username: str) -> Subscriber | None:
        """The user's subscriber from the same peer address and profile whose SAs the
        peer deleted less than `remote_delete_grace` ago, if any."""
        for other in self.table.by_user(username):
            info = self.info.get(other.id)
            if (other is not sub and other.live and info is not None and info.grace is not None
                    and other.peer.address == sub.peer.address and other.profile == sub.profile):
                return other
        return None

    def _reattach(self, waiting: Subscriber, standin: Subscriber, standin_info: SubscriberInfo,
                  result: AuthResult) -> None:
        """The waiting subscriber continues on the stand-in's new IKE SA: same address,
        interface, accounting session; Mode-Config gives the same configuration."""
        info = self.info[waiting.id]
        sa_id = standin_info.sa_id
        assert info.grace is not None
        info.grace.cancel()
        info.grace = None
        standin_info.sa_id = ""  # the stand-in's teardown must leave the SA alone
        self._bind_sa(sa_id, waiting)
        info.sa_id, info.exchange, info.transform = sa_id, standin_info.exchange, standin_info.transform
        info.vendor_features, info.local = standin_info.vendor_features, standin_info.local
        waiting.peer = standin.peer
        path = self.datapath.subscribers.get(info.key)
        if path is not None:
            path.sa_id = sa_id
        standin.teardown(SubscriberEvent.REMOTE_DELETE)  # held nothing but the SA: no trace
        self.stats["reattached"] += 1
        log.info("subscriber %s: user %r back from %s:%d within the grace: IKE SA %s "
                 "re-attached (%s kept; stand-in %s dropped)", info.key, waiting.username,
                 waiting.peer.address, waiting.peer.port, sa_id, waiting.address,
                 standin_info.key)
        self.link.update(info.key, {"ike_sa": sa_id, "peer": f"{waiting.peer.address}:"
                                    f"{waiting.peer.port}", "exchange": info.exchange,
                                    "transform": info.transform, "grace": False})
        ctx = self.task.context(self.clock())
        if info.config is not None:
            self.task.set_config(ctx, sa_id, info.config)
        self.task.xauth_result(ctx, sa_id, True)
        self.flush()

    def _drop_older_sessions(self, sub: Subscriber, username: str) -> None:
        """INITIAL-CONTACT (RFC 2407 §4.6.3.3): the peer has no state any more; its
        older subscribers of the same user from the same address go at once."""
        for other in self.table.by_user(username):
            if other is not sub and other.live and other.peer.address == sub.peer.address:
                log.info("subscriber %s: INITIAL-CONTACT from %s for user %r: older "
                         "subscriber %s logged out", self.key(sub), sub.peer.address,
                         username, self.key(other))
                self._teardown(other, SubscriberEvent.INITIAL_CONTACT)

    async def _grant(self, sub: Subscriber, info: SubscriberInfo, profile: TunnelProfile,
                     username: str, result: AuthResult, t0: float) -> None:
        key = info.key
        info.result = result
        request = {
            "user": username, "profile": profile.name,
            "vr": result.virtual_router or profile.vr,
            "pool": result.pool_name, "profile_pool": profile.pool, "profile_vr": profile.vr,
            "framed_ip": str(result.framed_ip) if result.framed_ip else None,
            # the supervisor ends this user's older sessions from the peer on other workers
            "peer": str(sub.peer.address), "initial_contact": info.initial_contact,
        }
        try:
            reply = await self.link.acquire(key, request)
        except Exception as exc:  # noqa: BLE001 - supervisor gone or slow: refuse
            reply = {"ok": False, "kind": "supervisor", "reason": f"supervisor: {exc}"}
        if reply.get("ok"):
            try:
                sub.ledger.take(ResourceKind.LICENSES,
                                f"tunnel+subscriber, address {reply['address']} in {reply['vr']}",
                                lambda: self.link.release(key))
            except SubscriberGoneError:
                return  # torn down while we waited; released at once
        if not sub.live:
            return
        if not reply.get("ok"):
            kind = reply.get("kind", "license")
            self._refuse_login(sub, info,
                               REFUSAL_CAUSE.get(kind, SubscriberEvent.LICENSE_REFUSED), kind,
                               reply.get("reason", "refused by the supervisor"))
            return
        now = self.clock()
        session_timeout = result.session_timeout if result.session_timeout is not None \
            else profile.session_timeout
        idle_timeout = result.idle_timeout if result.idle_timeout is not None \
            else profile.idle_timeout
        sub.authorize(now, session_timeout, idle_timeout)
        vr = reply["vr"]
        address = IPv4(reply["address"])
        self.table.bind_address(sub, vr, address)
        vr_cfg = self.cfg.vrs[vr]
        name = f"{vr_cfg.interface_prefix}{self.worker_index}-{sub.id}"
        mtu = profile.mtu or vr_cfg.mtu
        try:
            iface = await self.interfaces.create(vr_cfg.netns, name, address, mtu)
        except Exception as exc:  # noqa: BLE001 - netlink refused: the login ends here
            log.error("subscriber %s: internal error (NAS error): interface %s in %s failed: %s",
                      key, name, vr_cfg.netns, exc)
            if sub.live:
                self._refuse_login(sub, info, SubscriberEvent.INTERNAL_ERROR, "interface", str(exc))
            return
        if not sub.live:
            self.interfaces.remove(iface)
            return
        info.iface, info.netns = iface, vr_cfg.netns
        try:
            sub.ledger.take(ResourceKind.INTERFACE, f"{name} in {vr_cfg.netns} (+ /32 route)",
                            lambda: self._remove_interface(key, iface))
        except SubscriberGoneError:
            return
        self.datapath.add_subscriber(key, info.sa_id, iface.fd, address)
        sub.handle(SubscriberEvent.INTERFACE_CREATED)
        self.link.session_up(key, self._record(sub, info, result, reply, name, now))
        sub.ledger.take(ResourceKind.ACCOUNTING, sub.acct_session_id,
                        lambda: self.link.session_down(
                            key, (sub.teardown_event or SubscriberEvent.ADMIN_LOGOUT).value,
                            self.datapath.counters(key)))
        netmask = IPv4(reply["netmask"]) if reply.get("netmask") else None
        config = mode_config_for(profile, result, address, netmask)
        info.config = config
        ctx = self.task.context(now)
        self.task.set_config(ctx, info.sa_id, config)
        self.task.xauth_result(ctx, info.sa_id, True)
        self.flush()
        self.stats["logins_granted"] += 1
        log.info("subscriber %s: user %r granted by %s: %s in %s via %s, DNS %s, WINS %s "
                 "(%.0f ms)", key, sub.username, result.backend or "AAA", address, vr, name,
                 ",".join(map(str, config.dns)) or "-", ",".join(map(str, config.wins)) or "-",
                 (now - sub.created_at) * 1000)

    def _record(self, sub: Subscriber, info: SubscriberInfo, result: AuthResult,
                reply: dict, name: str, now: float) -> dict[str, Any]:
        profile = self.profiles[sub.profile]
        return {
            "key": info.key, "id": sub.id, "worker": self.worker_index,
            "user": sub.username, "address": str(sub.address), "vr": sub.vr,
            "netns": info.netns, "interface": name, "profile": sub.profile,
            "peer": f"{sub.peer.address}:{sub.peer.port}", "ike_sa": info.sa_id,
            "exchange": info.exchange, "transform": info.transform,
            "vendor_features": list(info.vendor_features),
            "acct_session_id": sub.acct_session_id, "backend": result.backend,
            "class": result.class_.hex() if result.class_ else None,
            "interim": profile.accounting_interim, "state": sub.state.value,
            "session_timeout": sub.session_timeout, "idle_timeout": sub.idle_timeout,
        }

    def _update(self, sub: Subscriber) -> None:
        info = self.info.get(sub.id)
        if info is None or info.iface is None:
            return
        self.link.update(info.key, {"state": sub.state.value, "children": len(info.children)})

    # -- releases ---------------------------------------------------------------------------
    def _remove_interface(self, key: str, iface) -> None:
        self.datapath.remove_subscriber(key)
        self.interfaces.remove(iface)

    def _delete_ike_sa(self, sub: Subscriber, info: SubscriberInfo) -> None:
        if info.grace is not None:
            info.grace.cancel()
            info.grace = None
        if not info.sa_id:
            return
        if sub.teardown_event is SubscriberEvent.AUTH_FAILED or info.xauth_fail_sent:
            return  # the Transaction task deletes it after the FAIL is ACKed
        self.responder.delete_phase1(info.sa_id, self.clock(),
                                     (sub.teardown_event or SubscriberEvent.ADMIN_LOGOUT).value)
        self.flush()

    def _bind_sa(self, sa_id: str, sub: Subscriber) -> None:
        previous = self.by_sa.get(sa_id)
        if previous is not None and previous is not sub:
            self._sas_of.get(previous.id, set()).discard(sa_id)
        self.by_sa[sa_id] = sub
        self._sas_of.setdefault(sub.id, set()).add(sa_id)

    def _forget(self, sub: Subscriber) -> None:
        info = self.info.pop(sub.id, None)
        for sa_id in self._sas_of.pop(sub.id, ()):
            if self.by_sa.get(sa_id) is sub:
                del self.by_sa[sa_id]
        if info is not None and info.grace is not None:
            info.grace.cancel()

    def _teardown(self, sub: Subscriber, cause: SubscriberEvent) -> None:
        if not sub.live:
            return
        self.stats[f"teardown_{cause.value}"] += 1
        failures = sub.teardown(cause)
        if failures:
            log.error("subscriber %d: %d release(s) failed", sub.id, len(failures))
        self.flush()

    # -- commands (from the supervisor) -------------------------------------------------
    def apply_config(self, cfg: ResponderConfig, authenticator) -> None:
        """A reload: new logins get `cfg`'s profiles (limits, timers, Mode-Config, phase 2
        proposals), VRs and remote delete grace, and `authenticator`; subscribers keep
        the profile they logged in with (a removed profile stays known to them)."""
        self.cfg = cfg
        self.auth = authenticator
        self.profiles = {**self.profiles, **{p.name: p for p in cfg.tunnel_profiles}}
        self.esp_policies = {**self.esp_policies,
                             **{p.name: build_esp_policy(p) for p in cfg.tunnel_profiles}}
        self.remote_delete_grace = cfg.ike.remote_delete_grace
        self.table.profile_limits = profile_limits(cfg)

    def logout(self, keys: list[str], cause: SubscriberEvent) -> int:
        count = 0
        wanted = set(keys)
        for sub in list(self.table):
            if self.key(sub) in wanted and sub.live:
                self._teardown(sub, cause)
                count += 1
        return count

    def logout_all(self, cause: SubscriberEvent) -> int:
        return self.logout([self.key(s) for s in self.table], cause)

    def change(self, key: str, session_timeout: int | None, idle_timeout: int | None) -> bool:
        for sub in self.table:
            if self.key(sub) == key and sub.live:
                if session_timeout is not None:
                    sub.change_session_timeout(session_timeout)
                if idle_timeout is not None:
                    sub.change_idle_timeout(idle_timeout)
                return True
        return False

    def tick(self, now: float) -> None:
        """Once a second: idle activity from the data path, session/idle timeouts."""
        for sub in list(self.table):
            info = self.info.get(sub.id)
            if info is not None and info.key in self.datapath.subscribers:
                sub.note_activity(self.datapath.subscribers[info.key].last_activity)
        for sub, event in self.table.expire(now):
            self.stats[f"teardown_{event.value}"] += 1
            log.info("subscriber %s: %s", self.key(sub), event.value)
        self.flush()

    def counters(self) -> dict[str, list[int]]:
        out = {}
        for key, path in self.datapath.subscribers.items():
            c = path.counters()
            out[key] = [c.input_octets, c.output_octets, c.input_packets, c.output_packets]
        return out

    def describe_ike_sas(self) -> list[dict]:
        rows = []
        for sa_id, sub in self.by_sa.items():
            sa = self.responder.sa(sa_id)
            if sa is None:
                continue
            info = self.info.get(sub.id)
            rows.append({
                "ike_sa": sa_id, "subscriber": info.key if info else None,
                "user": sub.username, "peer": f"{sa.remote[0]}:{sa.remote[1]}",
                "local": f"{sa.local[0]}:{sa.local[1]}", "exchange": sa.exchange,
                "state": sa.state, "cookies": sa.cookies.hex(),
                "transform": info.transform if info else "",
                "children": len(sa.children), "dpd": sa.dpd_supported,
                "dynamic": sa.dynamic, "vendor_ids": [v.hex() for v in sa.peer_vendor_ids],
            })
        return rows
