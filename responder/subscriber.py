"""Subscriber lifecycle: one state machine as data, a resource ledger, sans-I/O timers.

States (SPEC.md "Dynamic connection setup")::

    instantiated -> authenticating -> authorized -> interface_up -> configured -> active
         \\_____________ any teardown event ______________________________/
                                     v
                               tearing_down -> gone

The transitions are the table :data:`TRANSITIONS` ``(state, event) -> state`` (h11
``_state.py`` style). An event with no entry for the current state raises
:class:`LifecycleError` naming both: it is a bug in the caller, never ignored. The
documentation table in ``docs/subscribers.md`` is generated from it
(:func:`state_table_markdown`).

Every resource a subscriber takes is written into its :class:`ResourceLedger` together
with the function that releases it. Teardown releases every entry exactly once, in
reverse order of taking, whatever the state; a failing release is logged and the others
still run. A second teardown finds nothing left to release. A resource taken after
teardown began (a late completion of some asynchronous step) is released at once.

Nothing here reads a clock or does I/O: time comes in as ``now`` (seconds, monotonic),
timers are asked for with :meth:`Subscriber.next_deadline` and
:meth:`Subscriber.check_timers`, and the releases are plain callables provided by the
owners of each resource.
"""
from __future__ import annotations

import collections
import enum
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

log = logging.getLogger(__name__)

IPv4 = ipaddress.IPv4Address


class State(enum.Enum):
    INSTANTIATED = "instantiated"
    AUTHENTICATING = "authenticating"
    AUTHORIZED = "authorized"
    INTERFACE_UP = "interface_up"
    CONFIGURED = "configured"
    ACTIVE = "active"
    TEARING_DOWN = "tearing_down"
    GONE = "gone"


class SubscriberEvent(enum.Enum):
    # -- progress --------------------------------------------------------------------
    #: Xauth REQUEST sent (after the profile was found)
    XAUTH_STARTED = "xauth-started"
    #: AAA granted, licenses taken
    AUTH_GRANTED = "auth-granted"
    #: address assigned, TUN interface and access route made in the VR
    INTERFACE_CREATED = "interface-created"
    #: Mode-Config answered (pull) or acknowledged (push)
    CONFIG_SENT = "config-sent"
    #: a phase 2 (Quick Mode) SA pair installed; in ``active`` it is a rekey
    PHASE2_UP = "phase2-up"
    #: one phase 2 SA pair deleted while others (or a rekey) may follow
    PHASE2_DELETED = "phase2-deleted"
    #: the ledger is empty: tearing_down -> gone (sent by :meth:`Subscriber.teardown`)
    RELEASED = "released"
    # -- teardown (SPEC.md "Teardown events", plus refusals during login) ---------------
    REMOTE_DELETE = "remote-delete"
    ADMIN_LOGOUT = "admin-logout"
    WORKER_LOST = "worker-lost"
    DPD_TIMEOUT = "dpd-timeout"
    SESSION_TIMEOUT = "session-timeout"
    IDLE_TIMEOUT = "idle-timeout"
    RADIUS_DISCONNECT = "radius-disconnect"
    AUTH_FAILED = "auth-failed"
    LICENSE_REFUSED = "license-refused"
    NO_PROFILE = "no-profile"
    XAUTH_TIMEOUT = "xauth-timeout"
    #: the daemon is stopping (accounting says Admin-Reboot)
    NAS_SHUTDOWN = "nas-shutdown"
    #: the same user logged in again from the same peer with INITIAL-CONTACT (RFC 2407
    #: §4.6.3.3): the peer lost its state, so its older session is dead (Lost-Carrier)
    INITIAL_CONTACT = "initial-contact"
    #: a fault inside the NAS ended the subscriber (its VR namespace is missing, netlink
    #: refused its interface, ...): neither the user nor an operator caused it (NAS-Error)
    INTERNAL_ERROR = "internal-error"


LIVE_STATES = frozenset({State.INSTANTIATED, State.AUTHENTICATING, State.AUTHORIZED,
                         State.INTERFACE_UP, State.CONFIGURED, State.ACTIVE})
#: states in which AAA has granted access: session/idle timers run only here
AUTHORIZED_STATES = frozenset({State.AUTHORIZED, State.INTERFACE_UP, State.CONFIGURED,
                               State.ACTIVE})

#: For each teardown event, the live states in which it can happen. Narrow scopes catch
#: callers that mix up phases (an auth failure of an active subscriber is a bug).
TEARDOWN_SCOPE: dict[SubscriberEvent, frozenset[State]] = {
    SubscriberEvent.REMOTE_DELETE: LIVE_STATES,
    SubscriberEvent.ADMIN_LOGOUT: LIVE_STATES,
    SubscriberEvent.WORKER_LOST: LIVE_STATES,
    SubscriberEvent.DPD_TIMEOUT: LIVE_STATES,
    SubscriberEvent.RADIUS_DISCONNECT: LIVE_STATES,
    SubscriberEvent.NAS_SHUTDOWN: LIVE_STATES,
    SubscriberEvent.INITIAL_CONTACT: LIVE_STATES,
    SubscriberEvent.INTERNAL_ERROR: LIVE_STATES,
    SubscriberEvent.SESSION_TIMEOUT: AUTHORIZED_STATES,
    SubscriberEvent.IDLE_TIMEOUT: AUTHORIZED_STATES,
    SubscriberEvent.NO_PROFILE: frozenset({State.INSTANTIATED}),
    SubscriberEvent.AUTH_FAILED: frozenset({State.AUTHENTICATING}),
    SubscriberEvent.XAUTH_TIMEOUT: frozenset({State.AUTHENTICATING}),
    # licenses are taken right after AAA grants, before anything else (SPEC "Licensing")
    SubscriberEvent.LICENSE_REFUSED: frozenset({State.AUTHENTICATING, State.AUTHORIZED}),
}
TEARDOWN_EVENTS = frozenset(TEARDOWN_SCOPE)


class TerminateCause(enum.IntEnum):
    """RFC 2866 §5.10 Acct-Terminate-Cause (the values this NAS uses and a few more)."""

    USER_REQUEST = 1
    LOST_CARRIER = 2
    LOST_SERVICE = 3
    IDLE_TIMEOUT = 4
    SESSION_TIMEOUT = 5
    ADMIN_RESET = 6
    ADMIN_REBOOT = 7
    PORT_ERROR = 8
    NAS_ERROR = 9
    NAS_REQUEST = 10
    NAS_REBOOT = 11
    SERVICE_UNAVAILABLE = 15
    USER_ERROR = 17


#: Teardown event -> Acct-Terminate-Cause.
TERMINATE_CAUSE: dict[SubscriberEvent, TerminateCause] = {
    # The client deleted its SAs (logged out): "User requested termination of service".
    SubscriberEvent.REMOTE_DELETE: TerminateCause.USER_REQUEST,
    # DPD (RFC 3706) found the peer gone: the tunnel's "carrier" dropped.
    SubscriberEvent.DPD_TIMEOUT: TerminateCause.LOST_CARRIER,
    SubscriberEvent.IDLE_TIMEOUT: TerminateCause.IDLE_TIMEOUT,
    SubscriberEvent.SESSION_TIMEOUT: TerminateCause.SESSION_TIMEOUT,
    SubscriberEvent.ADMIN_LOGOUT: TerminateCause.ADMIN_RESET,
    # RFC 5176 §3.6 ("Disconnect-Request ... Acct-Terminate-Cause ... Admin-Reset").
    SubscriberEvent.RADIUS_DISCONNECT: TerminateCause.ADMIN_RESET,
    # The worker process (the router's IPsec server card) holding the subscriber died. The
    # subscriber's "port" lives on that card, so this is RFC 2866's "Port Error: NAS
    # detected an error on the port which required ending the session" -- not NAS-Reboot
    # (the NAS as a whole keeps running) and not NAS-Error ("other than on the port").
    SubscriberEvent.WORKER_LOST: TerminateCause.PORT_ERROR,
    # The operator stops the daemon: "Administrator is ending service on the NAS".
    SubscriberEvent.NAS_SHUTDOWN: TerminateCause.ADMIN_REBOOT,
    # The same user came back from the same peer with INITIAL-CONTACT: the peer lost its
    # state (restarted, killed) without a Delete, as DPD would have found out later.
    SubscriberEvent.INITIAL_CONTACT: TerminateCause.LOST_CARRIER,
    # A fault inside the NAS, not on the subscriber's port (its VR namespace is missing,
    # its interface could not be made): RFC 2866's "NAS Error: NAS detected some error
    # (other than on the port) which required ending the session".
    SubscriberEvent.INTERNAL_ERROR: TerminateCause.NAS_ERROR,
    # The rest end a login before accounting Start is sent (Start follows address
    # assignment); they are mapped only so that the table is total.
    SubscriberEvent.AUTH_FAILED: TerminateCause.USER_ERROR,
    SubscriberEvent.XAUTH_TIMEOUT: TerminateCause.USER_ERROR,
    SubscriberEvent.LICENSE_REFUSED: TerminateCause.SERVICE_UNAVAILABLE,
    SubscriberEvent.NO_PROFILE: TerminateCause.SERVICE_UNAVAILABLE,
}


def _build_transitions() -> dict[tuple[State, SubscriberEvent], State]:
    table: dict[tuple[State, SubscriberEvent], State] = {
        (State.INSTANTIATED, SubscriberEvent.XAUTH_STARTED): State.AUTHENTICATING,
        (State.AUTHENTICATING, SubscriberEvent.AUTH_GRANTED): State.AUTHORIZED,
        (State.AUTHORIZED, SubscriberEvent.INTERFACE_CREATED): State.INTERFACE_UP,
        (State.INTERFACE_UP, SubscriberEvent.CONFIG_SENT): State.CONFIGURED,
        # iOS clients skip Mode-Config on reconnect (SPEC "Interoperability targets")
        (State.INTERFACE_UP, SubscriberEvent.PHASE2_UP): State.ACTIVE,
        (State.CONFIGURED, SubscriberEvent.PHASE2_UP): State.ACTIVE,
        # a late Mode-Config ACK after Quick Mode: push mode does not wait for it
        (State.ACTIVE, SubscriberEvent.CONFIG_SENT): State.ACTIVE,
        (State.ACTIVE, SubscriberEvent.PHASE2_UP): State.ACTIVE,
        (State.ACTIVE, SubscriberEvent.PHASE2_DELETED): State.ACTIVE,
        (State.TEARING_DOWN, SubscriberEvent.RELEASED): State.GONE,
    }
    for event, states in TEARDOWN_SCOPE.items():
        for state in states:
            table[(state, event)] = State.TEARING_DOWN
        # A second teardown (a timer firing while a Delete is handled, ...) is harmless.
        table[(State.TEARING_DOWN, event)] = State.TEARING_DOWN
        table[(State.GONE, event)] = State.GONE
    return table


TRANSITIONS: dict[tuple[State, SubscriberEvent], State] = _build_transitions()

#: when both timers are due, the session timeout is reported (it is the harder limit)
_TIMER_PRIORITY = {SubscriberEvent.SESSION_TIMEOUT: 0, SubscriberEvent.IDLE_TIMEOUT: 1}


class SubscriberError(Exception):
    """Base of the typed errors of this module."""


class LifecycleError(SubscriberError):
    """An event that has no transition from the current state."""

    def __init__(self, subscriber_id: int, state: State, event: SubscriberEvent) -> None:
        self.subscriber_id = subscriber_id
        self.state = state
        self.event = event
        super().__init__(f"subscriber {subscriber_id}: no transition for event "
                         f"{event.value!r} in state {state.value!r}")


class SubscriberGoneError(SubscriberError):
    """A resource was taken for a subscriber whose teardown has begun; it was released
    at once. The caller should stop the login step it was in."""


class TableFullError(SubscriberError):
    """The subscriber table or a profile's max-interfaces limit is reached."""


def state_table_markdown() -> str:
    """The transition table as markdown (docs/subscribers.md is generated from it)."""
    lines = ["| state | event | next state |", "|---|---|---|"]
    order = {s: i for i, s in enumerate(State)}
    progress = [k for k in TRANSITIONS if k[1] not in TEARDOWN_EVENTS]
    for state, event in sorted(progress, key=lambda k: (order[k[0]], k[1].value)):
        lines.append(f"| {state.value} | {event.value} | {TRANSITIONS[(state, event)].value} |")
    lines += ["", "| teardown event | from live states | Acct-Terminate-Cause |", "|---|---|---|"]
    for event in TEARDOWN_SCOPE:
        states = ", ".join(s.value for s in State if s in TEARDOWN_SCOPE[event])
        cause = TERMINATE_CAUSE[event]
        lines.append(f"| {event.value} | {states} | {cause.name.replace('_', '-').title()} ({cause.value}) |")
    return "\n".join(lines) + "\n"


# -- resource ledger ------------------------------------------------------------------------


class ResourceKind(enum.Enum):
    LICENSES = "licenses"
    ADDRESS = "address"
    INTERFACE = "interface"
    ROUTE = "route"
    CHILD_SA = "child-sa"
    IKE_SA = "ike-sa"
    ACCOUNTING = "accounting"
    OTHER = "other"


@dataclass
class Resource:
    kind: ResourceKind
    detail: str
    release: Callable[[], object] = field(repr=False)
    released: bool = False


@dataclass(frozen=True)
class ReleaseFailure:
    resource: Resource
    error: BaseException


class ResourceLedger:
    """What one subscriber holds, with how to give each thing back."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._entries: list[Resource] = []
        self.closed = False

    def take(self, kind: ResourceKind, detail: str, release: Callable[[], object]) -> Resource:
        """Record a resource that is already held. On a closed ledger (teardown began)
        the resource is released at once and :class:`SubscriberGoneError` is raised."""
        resource = Resource(kind, detail, release)
        if self.closed:
            self._release(resource)
            raise SubscriberGoneError(f"{self.owner}: {kind.value} {detail} taken during "
                                      "teardown; released again")
        self._entries.append(resource)
        return resource

    def release_one(self, resource: Resource) -> ReleaseFailure | None:
        """Release one entry early (a child SA deleted by a rekey). Idempotent."""
        if resource.released:
            return None
        failure = self._release(resource)
        self._entries.remove(resource)
        return failure

    def release_all(self) -> list[ReleaseFailure]:
        """Close the ledger and release everything, newest first, each exactly once."""
        self.closed = True
        failures = []
        while self._entries:
            failure = self._release(self._entries.pop())
            if failure:
                failures.append(failure)
        return failures

    def _release(self, resource: Resource) -> ReleaseFailure | None:
        resource.released = True  # before calling: a raising release is not retried
        try:
            resource.release()
        except Exception as exc:  # noqa: BLE001 - one failure must not stop the others
            log.error("%s: releasing %s %s failed: %s", self.owner, resource.kind.value,
                      resource.detail, exc, exc_info=True)
            return ReleaseFailure(resource, exc)
        log.debug("%s: released %s %s", self.owner, resource.kind.value, resource.detail)
        return None

    def held(self) -> list[Resource]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


# -- the subscriber ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    address: IPv4
    port: int = 500


@dataclass
class Subscriber:
    """One dynamic subscriber. Create through :meth:`SubscriberTable.create`."""

    id: int
    peer: Peer
    profile: str
    created_at: float
    acct_session_id: str
    state: State = State.INSTANTIATED
    username: str | None = None
    vr: str | None = None
    address: IPv4 | None = None
    teardown_event: SubscriberEvent | None = None
    # timers (seconds; None = no limit), started when AAA grants access
    authorized_at: float | None = None
    last_activity: float | None = None
    session_timeout: float | None = None
    idle_timeout: float | None = None
    ledger: ResourceLedger = field(init=False, repr=False)
    _gone_hooks: list[Callable[["Subscriber"], None]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.ledger = ResourceLedger(f"subscriber {self.id}")

    # -- state machine -------------------------------------------------------------------
    @property
    def live(self) -> bool:
        """False once teardown began. Check after every ``await`` in a login step."""
        return self.state in LIVE_STATES

    def handle(self, event: SubscriberEvent) -> State:
        """Apply one event; raises :class:`LifecycleError` if it has no transition."""
        try:
            new_state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise LifecycleError(self.id, self.state, event) from None
        if new_state is not self.state:
            log.debug("subscriber %d: %s --%s--> %s", self.id, self.state.value, event.value,
                      new_state.value)
        self.state = new_state
        return new_state

    def authorize(self, now: float, session_timeout: float | None = None,
                  idle_timeout: float | None = None) -> None:
        """AUTH_GRANTED plus the timers AAA (or the profile) gave."""
        self.handle(SubscriberEvent.AUTH_GRANTED)
        self.authorized_at = self.last_activity = now
        self.session_timeout = session_timeout or None   # 0 means "no limit" (RFC 2865 §5.27)
        self.idle_timeout = idle_timeout or None

    def teardown(self, event: SubscriberEvent) -> list[ReleaseFailure]:
        """Begin and finish teardown: release every resource once, newest first.

        Safe to call again (and in any state for any teardown event the table allows):
        the first event stays the recorded cause; later calls release nothing.
        """
        if event not in TEARDOWN_EVENTS:
            raise LifecycleError(self.id, self.state, event)
        was_live = self.live
        self.handle(event)
        if not was_live:
            return []
        self.teardown_event = event
        log.info("subscriber %d (%s) teardown: %s", self.id, self.username or "-", event.value)
        failures = self.ledger.release_all()
        self.handle(SubscriberEvent.RELEASED)
        for hook in self._gone_hooks:
            hook(self)
        return failures

    def on_gone(self, hook: Callable[["Subscriber"], None]) -> None:
        self._gone_hooks.append(hook)

    # -- timers (sans-I/O) -----------------------------------------------------------------
    def note_activity(self, now: float) -> None:
        """Data-path activity (a packet in either direction): resets the idle timer."""
        if self.last_activity is None or now > self.last_activity:
            self.last_activity = now

    def change_session_timeout(self, seconds: float | None) -> None:
        """RADIUS CoA Session-Timeout. Counted, like the Access-Accept's, from the start of
        the session (RFC 2865 §5.27: "maximum number of seconds of service"): a value
        already exceeded ends the session at the next timer check."""
        self.session_timeout = seconds or None

    def change_idle_timeout(self, seconds: float | None) -> None:
        self.idle_timeout = seconds or None

    def _deadlines(self) -> Iterator[tuple[float, SubscriberEvent]]:
        if self.state not in AUTHORIZED_STATES or self.authorized_at is None:
            return
        if self.session_timeout is not None:
            yield self.authorized_at + self.session_timeout, SubscriberEvent.SESSION_TIMEOUT
        if self.idle_timeout is not None and self.last_activity is not None:
            yield self.last_activity + self.idle_timeout, SubscriberEvent.IDLE_TIMEOUT

    def next_deadline(self) -> float | None:
        """When :meth:`check_timers` should next be called (None: no timer runs)."""
        return min((when for when, _ in self._deadlines()), default=None)

    def check_timers(self, now: float) -> list[SubscriberEvent]:
        """The timeout events due at ``now``, session timeout first. Does not tear down:
        the caller passes the first event to :meth:`teardown` (or the table's)."""
        due = [event for when, event in self._deadlines() if now >= when]
        return sorted(due, key=_TIMER_PRIORITY.__getitem__)


# -- the table ---------------------------------------------------------------------------------


class SubscriberTable:
    """Live subscribers with the indexes admin commands and RFC 5176 need.

    Bounded: ``capacity`` overall and ``profile_limits[profile]`` (max-interfaces) per
    profile. Subscribers leave the table by themselves when they reach ``gone``.
    Acct-Session-Id is ``<session_prefix><id as 8 hex digits>``: unique and stable per
    subscriber; the prefix (the daemon's boot identifier) keeps it unique across restarts.
    """

    def __init__(self, capacity: int = 100_000, profile_limits: dict[str, int] | None = None,
                 session_prefix: str = "") -> None:
        self.capacity = capacity
        self.profile_limits = dict(profile_limits or {})
        self.session_prefix = session_prefix
        self._next_id = 1
        self._by_id: dict[int, Subscriber] = {}
        self._by_session: dict[str, Subscriber] = {}
        self._by_address: dict[tuple[str, IPv4], Subscriber] = {}
        self._by_user: dict[str, set[int]] = collections.defaultdict(set)
        self._by_peer: dict[IPv4, set[int]] = collections.defaultdict(set)
        self._per_profile: collections.Counter[str] = collections.Counter()
        self.refused: collections.Counter[str] = collections.Counter()

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Subscriber]:
        return iter(list(self._by_id.values()))

    def count(self, profile: str) -> int:
        return self._per_profile[profile]

    def create(self, peer: Peer, profile: str, now: float) -> Subscriber:
        """Instantiate a subscriber after phase 1 (SPEC step 3); raises
        :class:`TableFullError` at the table's or the profile's limit."""
        limit = self.profile_limits.get(profile)
        if limit is not None and self._per_profile[profile] >= limit:
            self.refused["max-interfaces"] += 1
            raise TableFullError(f"profile {profile!r} is at its max-interfaces limit "
                                 f"({limit} of {limit} in use)")
        if len(self._by_id) >= self.capacity:
            self.refused["capacity"] += 1
            raise TableFullError(f"subscriber table full ({self.capacity} subscribers)")
        sub_id, self._next_id = self._next_id, self._next_id + 1
        sub = Subscriber(id=sub_id, peer=peer, profile=profile, created_at=now,
                         acct_session_id=f"{self.session_prefix}{sub_id:08X}")
        self._by_id[sub_id] = sub
        self._by_session[sub.acct_session_id] = sub
        self._by_peer[peer.address].add(sub_id)
        self._per_profile[profile] += 1
        sub.on_gone(self._forget)
        return sub

    def set_username(self, sub: Subscriber, username: str) -> None:
        if sub.username is not None:
            self._discard(self._by_user, sub.username, sub.id)
        sub.username = username
        self._by_user[username].add(sub.id)

    def bind_address(self, sub: Subscriber, vr: str, address: IPv4) -> None:
        """Index the subscriber's VR and address (after the pool gave it)."""
        key = (vr, IPv4(address))
        other = self._by_address.get(key)
        if other is not None and other is not sub:
            raise SubscriberError(f"{address} in VR {vr!r} already belongs to subscriber {other.id}")
        if sub.vr is not None and sub.address is not None:
            self._by_address.pop((sub.vr, sub.address), None)
        sub.vr, sub.address = vr, IPv4(address)
        self._by_address[key] = sub

    def _forget(self, sub: Subscriber) -> None:
        self._by_id.pop(sub.id, None)
        self._by_session.pop(sub.acct_session_id, None)
        if sub.vr is not None and sub.address is not None:
            if self._by_address.get((sub.vr, sub.address)) is sub:
                del self._by_address[(sub.vr, sub.address)]
        if sub.username is not None:
            self._discard(self._by_user, sub.username, sub.id)
        self._discard(self._by_peer, sub.peer.address, sub.id)
        self._per_profile[sub.profile] -= 1

    @staticmethod
    def _discard(index: dict, key, sub_id: int) -> None:
        ids = index.get(key)
        if ids is not None:
            ids.discard(sub_id)
            if not ids:
                del index[key]

    # -- lookups ---------------------------------------------------------------------------
    def get(self, sub_id: int) -> Subscriber | None:
        return self._by_id.get(sub_id)

    def by_session_id(self, acct_session_id: str) -> Subscriber | None:
        return self._by_session.get(acct_session_id)

    def by_address(self, vr: str, address: IPv4 | str) -> Subscriber | None:
        return self._by_address.get((vr, IPv4(address)))

    def by_user(self, username: str) -> list[Subscriber]:
        return [self._by_id[i] for i in sorted(self._by_user.get(username, ()))]

    def by_peer(self, address: IPv4 | str) -> list[Subscriber]:
        return [self._by_id[i] for i in sorted(self._by_peer.get(IPv4(address), ()))]

    def select(self, *, user: str | None = None, vr: str | None = None,
               address: IPv4 | str | None = None, profile: str | None = None,
               acct_session_id: str | None = None) -> list[Subscriber]:
        """Subscribers matching ALL given criteria (admin logout, RFC 5176 §3 session
        identification). No criteria selects everyone."""
        candidates: Iterable[Subscriber]
        if acct_session_id is not None:
            found = self.by_session_id(acct_session_id)
            candidates = [found] if found else []
        elif user is not None:
            candidates = self.by_user(user)
        else:
            candidates = list(self._by_id.values())
        wanted_address = IPv4(address) if address is not None else None
        return [s for s in candidates
                if (user is None or s.username == user)
                and (vr is None or s.vr == vr)
                and (wanted_address is None or s.address == wanted_address)
                and (profile is None or s.profile == profile)]

    # -- timers ----------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """Earliest timer of all subscribers. O(n): fine for the daemon's 1 s tick at 10k
        subscribers; a heap would be the next step if it ever shows up in a profile."""
        return min((d for s in self._by_id.values() if (d := s.next_deadline()) is not None),
                   default=None)

    def expire(self, now: float) -> list[tuple[Subscriber, SubscriberEvent]]:
        """Tear down every subscriber whose session or idle timer ran out."""
        expired = []
        for sub in list(self._by_id.values()):
            events = sub.check_timers(now)
            if events:
                sub.teardown(events[0])
                expired.append((sub, events[0]))
        return expired


if __name__ == "__main__":  # python -m responder.subscriber  -> the table for docs/subscribers.md
    # import by module name: run as __main__, this file's SubscriberEvent is another class
    from responder.subscriber import state_table_markdown as _generated_table
    print(_generated_table(), end="")
