"""What Main and Aggressive Mode share: SA and vendor IDs, KE and nonce, identity,
the server's choice, keys, NAT-D and the float to 4500, HASH_R, and what follows."""

from __future__ import annotations

from responder.ikev1.crypto.dh import dh_group
from responder.ikev1.crypto.prf import hash_algorithm
from responder.ikev1.enums import NotifyType
from responder.ikev1.message import Message
from responder.ikev1.natt import detect_nat, floats_to_4500, natd_payload_type
from responder.ikev1.payloads import (
    Hash,
    Identification,
    KeyExchange,
    Nonce,
    NatDiscovery,
    Notification,
    Payload,
    SecurityAssociation,
    VendorId,
)
from responder.ikev1.vendor_ids import peer_features, recognize

from ..config import NattMode
from ..core import NONCE_SIZE, SessionCore, log
from ..keying import natd_payloads, phase1_keys
from ..results import Phase1Up
from ..states import PeerError
from ..wire import ProposalMismatch, phase1_sa, read_phase1_choice, vendor_ids_for
from . import transaction


def sa_and_vids(s: SessionCore) -> list[Payload]:
    return [phase1_sa(s.config.effective_ike_proposals()),
            *[VendorId(v) for v in vendor_ids_for(s.config)]]


def remember_sa_body(s: SessionCore, sent: list[Payload]) -> None:
    # HASH_I covers the SA payload as sent, hooks included (RFC 2409 §5)
    sa = next((p for p in sent if isinstance(p, SecurityAssociation)), None)
    s.p1.sa_body = sa.serialize() if sa is not None else b""


def new_ke_and_nonce(s: SessionCore) -> list[Payload]:
    group = s.config.effective_ike_proposals()[0].group
    if s.p1.chosen is not None:
        group = s.p1.chosen.proposal.group
    s.p1.dh = dh_group(group).generate(s.rng)
    s.p1.ni_b = s.rng(NONCE_SIZE)
    return [KeyExchange(s.p1.dh.public_bytes), Nonce(s.p1.ni_b)]


def identity(s: SessionCore) -> Identification:
    payload = s.config.identity.payload()
    s.p1.id_body = payload.serialize()
    return payload


def take_sa_choice(s: SessionCore, message: Message) -> None:
    sa = message.first(SecurityAssociation)
    try:
        s.p1.chosen = read_phase1_choice(sa, s.config.effective_ike_proposals())
    except ProposalMismatch as exc:
        raise PeerError(str(exc), NotifyType.NO_PROPOSAL_CHOSEN) from None
    s.p1.prf = hash_algorithm(s.p1.chosen.proposal.hash)
    s.p1.server_vids = tuple(p.data for p in message.payloads_of(VendorId))
    offered = set(s.config.natt_versions)
    version = peer_features(s.p1.server_vids).natt_version
    s.p1.natt = version if version in offered else None


def take_ke_and_nonce(s: SessionCore, message: Message) -> None:
    ke, nonce = message.first(KeyExchange), message.first(Nonce)
    if ke is None or nonce is None:
        raise PeerError("KE or nonce missing", NotifyType.PAYLOAD_MALFORMED)
    s.p1.g_xr, s.p1.nr_b = ke.key_data, nonce.data


def derive_keys(s: SessionCore) -> None:
    p1 = s.p1
    assert p1.dh is not None and p1.chosen is not None and p1.prf is not None
    proposal = p1.chosen.proposal
    p1.keys, p1.cipher = phase1_keys(
        encryption=proposal.encryption, key_length=proposal.key_length, prf=p1.prf,
        psk=s.config.psk, ni_b=p1.ni_b, nr_b=p1.nr_b, dh=p1.dh, g_xr=p1.g_xr,
        cky_i=s.cky_i, cky_r=s.cky_r)


def hash_i(s: SessionCore) -> bytes:
    p1 = s.p1
    return s.phase1_keys().hash_i(g_xi=p1.dh.public_bytes, g_xr=p1.g_xr, sai_b=p1.sa_body,
                                  idii_b=p1.id_body)


def verify_hash_r(s: SessionCore, message: Message) -> None:
    received_identity, digest = message.first(Identification), message.first(Hash)
    if received_identity is None or digest is None:
        raise PeerError("IDir or HASH_R missing", NotifyType.PAYLOAD_MALFORMED)
    p1 = s.p1
    s.phase1_keys().verify_hash_r(digest.data, g_xi=p1.dh.public_bytes, g_xr=p1.g_xr,
                                  sai_b=p1.sa_body, idir_b=received_identity.serialize())
    p1.server_identity = str(received_identity)


# ---- NAT-T
def natd(s: SessionCore) -> list[Payload]:
    p1 = s.p1
    if p1.natt is None or p1.prf is None:
        return []
    return natd_payloads(p1.prf, s.cky_i, s.cky_r, local=s.local,
                         remote=(s.config.server, s.config.server_port),
                         payload_type=natd_payload_type(p1.natt),
                         force_encap=s.config.natt is NattMode.FORCE, rng=s.rng)


def take_natd(s: SessionCore, message: Message) -> None:
    p1 = s.p1
    if p1.natt is None or p1.prf is None:
        return
    received = [p.hash_data for p in message.payloads_of(NatDiscovery)]
    p1.nat = detect_nat(p1.prf, s.cky_i, s.cky_r, received, local=s.local,
                        remote=(s.config.server, s.config.server_port),
                        force_encap=s.config.natt is NattMode.FORCE)


def float_if_needed(s: SessionCore) -> None:
    """RFC 3947 §4: move to port 4500 once a NAT is seen (or forced)."""
    p1 = s.p1
    nat_seen = p1.nat is not None and p1.nat.any
    if floats_to_4500(p1.natt) and (nat_seen or s.config.natt is NattMode.FORCE):
        s.floated = True


def initial_contact(s: SessionCore) -> list[Payload]:
    if not s.config.initial_contact:
        return []
    return [Notification(NotifyType.INITIAL_CONTACT, spi=s.cky_i + s.cky_r)]


# ---- after phase 1
def complete(s: SessionCore, now: float) -> None:
    p1 = s.p1
    s.timings.phase1 = now
    names = []
    for vid in p1.server_vids:
        known = recognize(vid)
        names.append(known.name if known else vid.hex())
    s.event_queue.append(Phase1Up(
        exchange=s.config.mode.value, transform=p1.chosen.describe(),
        natt_version=p1.natt.value if p1.natt else None,
        nat_detected=bool(p1.nat and p1.nat.any), floated=s.floated,
        server_vendor_ids=tuple(names)))
    log.info("[%s] phase 1 up (%s mode, %s%s)", s.name, s.config.mode.value,
             p1.chosen.describe(), ", floated to 4500" if s.floated else "")
    if s.config.wants_xauth:
        s.advance("await_xauth")
        s.deadline = (now + s.config.xauth_wait_timeout, "the server did not start Xauth")
        if s.am3 is not None:
            s.expect_reply(s.am3, now)
        return
    transaction.after_authentication(s, now)
