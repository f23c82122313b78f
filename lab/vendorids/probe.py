"""One case from the initiator's side, on any transport: the probe sequence.

    view = await probe(table, case, target, driver, dpd_wait=3.0)

1. a remote-access login with the case's vendor IDs: phase 1, then Xauth if
   the server starts it, Mode-Config, Quick Mode;
2. when the server did not start Xauth: a second phase 1 without credentials
   (the static check), kept up;
3. on whichever phase 1 is up: silence for `dpd_wait` seconds (does the server
   send R-U-THERE?), then our own R-U-THERE (is it answered?);
4. the static check then asks for a dynamic subscriber's Quick Mode (own
   address <-> intranet): a static phase 1 must refuse it.

The `Driver` moves datagrams and time: memory.py over an in-memory link with a
fake clock, lab.py's probe process over UDP sockets in a client namespace.
`InitiatorView` is what the initiator saw (JSON-friendly); `outcome_of` joins
it with what was on the wire into an `Outcome`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

from clients.ikev1_initiator import (
    ChildSaUp,
    DpdAnswered,
    DpdRequest,
    InitiatorEvent,
    InitiatorConfig,
    InitiatorSession,
    Phase1Up,
    XauthDone,
)
from clients.ikev1_initiator.hooks import MessageHook
from responder.ikev1.vendor_ids import VendorKind, recognize

from lab.vendorids.cases import Case, CaseTable
from lab.vendorids.craft import CaseHook, Target, case_hook, login_config, static_check_config
from lab.vendorids.outcome import Outcome

__all__ = ["Watch", "Driver", "InitiatorView", "WireFacts", "probe", "outcome_of",
           "responder_vid_facts"]

#: seconds for each exchange step to settle
STEP_TIMEOUT = 15.0
DPD_ANSWER_TIMEOUT = 3.0


class Watch:
    """A session and every event it reported so far."""

    def __init__(self, session: InitiatorSession, hook: CaseHook) -> None:
        self.session = session
        self.hook = hook
        self.events: list[InitiatorEvent] = []

    def collect(self) -> None:
        self.events.extend(self.session.events())

    def saw(self, kind: type) -> list:
        self.collect()
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def cookie(self) -> str:
        return self.session.cky_i.hex()



class Driver(Protocol):
    def start(self, config: InitiatorConfig, hook: MessageHook) -> InitiatorSession: ...

    async def until(self, predicate: Callable[[], bool], timeout: float) -> bool: ...

    async def idle(self, seconds: float) -> None: ...

    def now(self) -> float: ...

    def flush(self, session: InitiatorSession) -> None: ...


@dataclass
class InitiatorView:
    """What the initiator saw of one case (JSON-friendly)."""

    #: "up", or "failed: <reason>" (notify in `phase1_notify`)
    phase1: str = "not started"
    phase1_notify: str | None = None
    xauth_started: bool = False
    xauth_ok: bool = False
    address: str | None = None
    #: of the login's (dynamic) or the static check's Quick Mode: "up", "refused",
    #: "failed: <reason>", "none"
    phase2: str = "none"
    phase2_notify: str | None = None
    encapsulation: int | None = None
    static_check: bool = False
    dpd_probes: bool = False
    dpd_answered: bool = False
    floated: bool = False
    #: initiator cookies (hex): the login first, then the static check
    cookies: list[str] = field(default_factory=list)
    #: Wireshark IKEv1 decryption lines of those sessions (lab evidence)
    key_lines: list[str] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        """Without the per-session details and keys (for failure messages)."""
        return {k: v for k, v in self.as_dict().items() if k not in ("sessions", "key_lines")}

    @classmethod
    def from_dict(cls, data: dict) -> "InitiatorView":
        return cls(**data)


def _settled(watch: Watch) -> Callable[[], bool]:
    return lambda: watch.session.established or watch.session.finished


async def _start(driver: Driver, config: InitiatorConfig, hook: CaseHook,
                 view: InitiatorView) -> Watch:
    watch = Watch(driver.start(config, hook), hook)
    view.cookies.append(watch.cookie)
    await driver.until(_settled(watch), STEP_TIMEOUT + config.xauth_wait_timeout)
    return watch


def _note_session(watch: Watch, view: InitiatorView, role: str) -> None:
    line = watch.session.decryption_line()
    if line:
        view.key_lines.append(line)
    view.sessions.append({"role": role, "cookie": watch.cookie,
                          "sent": [step.value for step in watch.hook.sent],
                          **watch.session.result().as_dict()})


async def _dpd(driver: Driver, watch: Watch, view: InitiatorView, dpd_wait: float) -> None:
    await driver.idle(dpd_wait)
    view.dpd_probes = bool(watch.saw(DpdRequest))
    if watch.session.finished:
        return
    watch.session.send_dpd(driver.now())
    driver.flush(watch.session)
    view.dpd_answered = await driver.until(lambda: bool(watch.saw(DpdAnswered)),
                                           DPD_ANSWER_TIMEOUT)


def _phase1(watch: Watch, view: InitiatorView) -> bool:
    """Record the phase 1 result; True when it came up."""
    session = watch.session
    if watch.saw(Phase1Up):
        view.phase1 = "up"
        view.floated = session.floated
        return True
    view.phase1 = f"failed: {session.error or session.state.value}"
    view.phase1_notify = session.error_notify
    return False


def _phase2(watch: Watch, view: InitiatorView) -> None:
    session = watch.session
    children = watch.saw(ChildSaUp)
    if children:
        view.phase2 = "up"
        view.encapsulation = int(children[-1].child.encapsulation_mode)
    elif session.error_notify:
        view.phase2, view.phase2_notify = "refused", session.error_notify
    elif session.finished:
        view.phase2 = f"failed: {session.error or session.state.value}"


async def probe(table: CaseTable, case: Case, target: Target, driver: Driver, *,
                dpd_wait: float) -> InitiatorView:
    view = InitiatorView()
    login = await _start(driver, login_config(table, case, target), case_hook(table, case), view)
    up = _phase1(login, view)
    view.xauth_started = login.hook.xauth_started
    view.xauth_ok = any(e.success for e in login.saw(XauthDone))
    if login.session.mode_config is not None:
        view.address = login.session.mode_config.address
    if up and view.xauth_started:
        _phase2(login, view)
        if login.session.established:
            await _dpd(driver, login, view, dpd_wait)
        _note_session(login, view, "login")
        login.session.close(driver.now())
        driver.flush(login.session)
        return view
    _note_session(login, view, "login")
    if not up:
        return view
    await _static_check(table, case, target, driver, view, dpd_wait)
    return view


async def _static_check(table: CaseTable, case: Case, target: Target, driver: Driver,
                        view: InitiatorView, dpd_wait: float) -> None:
    view.static_check = True
    check = await _start(driver, static_check_config(table, case, target),
                         case_hook(table, case), view)
    if not check.session.established:
        view.phase2 = f"failed: static check phase 1: {check.session.error}"
        _note_session(check, view, "static-check")
        return
    await _dpd(driver, check, view, dpd_wait)
    if not check.session.finished:
        check.session.start_quick_mode(driver.now())
        driver.flush(check.session)
        await driver.until(lambda: bool(check.saw(ChildSaUp)) or check.session.finished,
                           STEP_TIMEOUT)
    _phase2(check, view)
    _note_session(check, view, "static-check")
    if not check.session.finished:
        check.session.close(driver.now())
        driver.flush(check.session)


# ------------------------------------------------------------------ outcome
@dataclass(frozen=True)
class WireFacts:
    """What the responder put on the wire for the case's first session."""

    #: its vendor IDs (MM msg 2 / AM msg 2) in order, raw
    vendor_ids: tuple[bytes, ...]
    #: payload type of its NAT-D payloads (20 / 130), None without
    natd_payload: int | None
    #: the initiator's IKE moved to port 4500
    floated: bool
    #: the responder sent R-U-THERE / answered ours (None: not seen from the wire)
    dpd_probes: bool | None = None
    dpd_answered: bool | None = None
    #: encapsulation mode of the responder's Quick Mode answer (None: not seen)
    encapsulation: int | None = None


def responder_vid_facts(vids: tuple[bytes, ...]) -> dict:
    """Which extensions the responder's vendor IDs announce (its table's reading)."""
    kinds = [recognize(v) for v in vids]
    natt = next((e.natt_version.value for e in kinds
                 if e is not None and e.natt_version is not None), "none")
    return {
        "dpd": any(e is not None and e.kind is VendorKind.DPD for e in kinds),
        "unity": any(e is not None and e.kind is VendorKind.UNITY for e in kinds),
        "fragmentation": any(e is not None and e.kind is VendorKind.FRAGMENTATION
                             for e in kinds),
        "natt": natt,
    }


def classification(view: InitiatorView) -> tuple[str, str | None]:
    """(classification, notify) from the initiator's view."""
    if view.phase1 != "up":
        if view.phase1_notify:
            return "refused", view.phase1_notify
        return f"phase 1 {view.phase1}", None
    if view.xauth_started:
        if view.phase2 == "up":
            return "dynamic", None
        return (f"dynamic but login {'xauth denied' if not view.xauth_ok else view.phase2}",
                view.phase2_notify)
    if view.phase2 == "refused":
        return "static", view.phase2_notify
    if view.phase2 == "up":
        return "static phase 1 accepted a dynamic phase 2", None
    return f"static phase 1, phase 2 {view.phase2}", view.phase2_notify


def outcome_of(table: CaseTable, view: InitiatorView, wire: WireFacts, *, alive: bool,
               classified: tuple[str, str | None] | None = None) -> Outcome:
    """The Outcome: classification from the initiator (or `classified`, when the
    gateway's own state decided it), extensions and NAT-T from the wire, DPD and
    encapsulation from the wire where it showed them, else from the initiator."""
    kind, notify = classified or classification(view)
    facts = responder_vid_facts(wire.vendor_ids)
    return Outcome(
        classification=kind, notify=notify,
        dpd_echoed=facts["dpd"],
        dpd_answered=view.dpd_answered if wire.dpd_answered is None else wire.dpd_answered,
        dpd_probes=view.dpd_probes if wire.dpd_probes is None else wire.dpd_probes,
        natt_version=facts["natt"], natd_payload=wire.natd_payload,
        encapsulation=view.encapsulation if wire.encapsulation is None else wire.encapsulation,
        floated=wire.floated, unity_echoed=facts["unity"],
        fragmentation_echoed=facts["fragmentation"],
        responder_vids=tuple(table.name_of(v) for v in wire.vendor_ids), alive=alive)
