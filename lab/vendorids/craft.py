"""A case as the project's initiator sends it: configurations and the VID hook.

The hook replaces whatever vendor IDs the initiator would send by the case's,
at the case's places (Main/Aggressive Mode msg 1, AM msg 3; order relative to
the SA payload), and notes which messages went out (an Xauth REPLY means the
server started Xauth). The initiator's NAT-T behaviour follows the NAT-T VIDs
the case announces in its first message.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from clients.ikev1_initiator.config import (
    IdentitySpec,
    IkeOffer,
    InitiatorConfig,
    Mode,
    NattMode,
    RetransmitSettings,
)
from clients.ikev1_initiator.hooks import MessageHook, Step
from responder.ikev1.enums import AuthMethod
from responder.ikev1.payloads import Payload, SecurityAssociation, VendorId
from responder.ikev1.vendor_ids import NattVersion, recognize

from lab.vendorids.cases import Case, CaseTable, Placement

__all__ = ["Target", "CaseHook", "case_hook", "login_config", "static_check_config",
           "first_message_vids"]

AUTH_METHODS = {"psk": AuthMethod.PRE_SHARED_KEY, "xauth-psk": AuthMethod.XAUTH_INIT_PSK}


@dataclass(frozen=True)
class Target:
    """Where and as whom a case logs in (the gateway's access plan)."""

    server: str
    group: str
    main_mode_psk: str = field(repr=False)
    group_psk: str = field(repr=False)
    user: str
    password: str = field(repr=False)
    #: the VR intranet (remote selector of the Quick Mode)
    intranet: str
    #: the client's own address (local selector of the static check)
    client_address: str
    #: seconds the login waits for the server's Xauth REQUEST
    xauth_wait: float = 2.0
    retransmit: RetransmitSettings = RetransmitSettings(timeout=1.0, backoff=1.5, tries=3)

    def psk(self, mode: str) -> bytes:
        return (self.main_mode_psk if mode == "main" else self.group_psk).encode()


@dataclass
class CaseHook(MessageHook):
    """Puts the case's VIDs in place; `sent` lists the steps sent (first time each)."""

    first: Step
    placements: list[tuple[Step, str, list[bytes]]]
    sent: list[Step] = field(default_factory=list)

    def payloads(self, step: Step, payloads: list[Payload]) -> list[Payload]:
        if step not in self.sent:
            self.sent.append(step)
        if step == self.first:
            payloads = [p for p in payloads if not isinstance(p, VendorId)]
        for where, order, vids in self.placements:
            if where == step:
                payloads = _place(payloads, order, [VendorId(v) for v in vids])
        return payloads

    @property
    def xauth_started(self) -> bool:
        return Step.XAUTH_REPLY in self.sent


def _place(payloads: list[Payload], order: str, vids: list[Payload]) -> list[Payload]:
    at = next((i for i, p in enumerate(payloads) if isinstance(p, SecurityAssociation)), None)
    if order == "last" or at is None:
        return payloads + vids
    if order == "before-sa":
        return payloads[:at] + vids + payloads[at:]
    if order == "after-sa":
        return payloads[:at + 1] + vids + payloads[at + 1:]
    half = len(vids) // 2  # around-sa
    return payloads[:at] + vids[:half] + [payloads[at]] + vids[half:] + payloads[at + 1:]


def _step(case: Case, placement: Placement) -> Step:
    if placement.message == "am3":
        return Step.AM3
    return Step.MM1 if case.mode == "main" else Step.AM1


def case_hook(table: CaseTable, case: Case) -> CaseHook:
    first = Step.MM1 if case.mode == "main" else Step.AM1
    placements = [(_step(case, p), p.order,
                   [v for item in p.vendor_ids for v in table.vid_bytes(case, item)])
                  for p in table.placements(case)]
    return CaseHook(first, placements)


def first_message_vids(table: CaseTable, case: Case) -> list[bytes]:
    return [v for p in table.placements(case) if p.message == "first"
            for item in p.vendor_ids for v in table.vid_bytes(case, item)]


def _natt_versions(vids: list[bytes]) -> tuple[NattVersion, ...]:
    """The NAT-T versions the client announces, so it speaks what it offered."""
    versions: list[NattVersion] = []
    for vid in vids:
        entry = recognize(vid)
        if entry is not None and entry.natt_version is not None \
                and entry.natt_version not in versions:
            versions.append(entry.natt_version)
    return tuple(versions)


def _base(table: CaseTable, case: Case, target: Target, identity: str) -> dict:
    versions = _natt_versions(first_message_vids(table, case))
    auth = AUTH_METHODS[case.auth]
    return dict(
        server=target.server, identity=IdentitySpec.parse(identity), psk=target.psk(case.mode),
        mode=Mode(case.mode),
        ike_proposals=tuple(IkeOffer.parse(text, auth) for text in table.proposals(case)),
        send_xauth_vid=False, send_dpd_vid=False, send_unity_vid=False,
        natt=NattMode.ON if versions else NattMode.OFF, natt_versions=versions,
        remote_selector=target.intranet, retransmit=target.retransmit,
        xauth_wait_timeout=target.xauth_wait)


def login_config(table: CaseTable, case: Case, target: Target) -> InitiatorConfig:
    """A remote-access login: Xauth credentials, Mode-Config, Quick Mode for the
    assigned address <-> the intranet."""
    return InitiatorConfig(**_base(table, case, target, f"keyid:{target.group}"),
                           xauth_user=target.user, xauth_password=target.password.encode(),
                           mode_config=True, quick_mode=True)


def static_check_config(table: CaseTable, case: Case, target: Target) -> InitiatorConfig:
    """Phase 1 only, no Xauth credentials; its later Quick Mode asks for a dynamic
    subscriber's selectors (own address <-> intranet) on a static phase 1."""
    return InitiatorConfig(**_base(table, case, target, f"keyid:{target.group}"),
                           mode_config=False, quick_mode=False,
                           local_selector=f"{target.client_address}/32")
