"""Quick Mode (RFC 2409 §5.5): SA, nonce, optional PFS KE and our selectors under
HASH(1); the server's HASH(2) checked, ESP keys derived, HASH(3) sent."""

from __future__ import annotations

from responder.ikev1.crypto.dh import dh_group
from responder.ikev1.crypto.phase2 import verify_hash
from responder.ikev1.enums import ExchangeType, NotifyType
from responder.ikev1.message import Header, Message
from responder.ikev1.payloads import (
    Hash,
    Identification,
    KeyExchange,
    Nonce,
    Payload,
    SecurityAssociation,
)

from ..core import NONCE_SIZE, QuickModeData, SessionCore, log
from ..hooks import Step
from ..keying import child_keys, quick_mode_hash1, quick_mode_hash2, quick_mode_hash3
from ..results import ChildSa, ChildSaUp
from ..states import InvalidTransition, PeerError, State
from ..wire import (
    EspChoice,
    ProposalMismatch,
    encapsulation_mode,
    esp_sa,
    read_esp_choice,
    selector_payload,
    selector_text,
)


def after_config(s: SessionCore, now: float) -> None:
    if s.config.quick_mode:
        start(s, now)
    else:
        s.advance("phase1_only")


def local_selector(s: SessionCore) -> str:
    if s.config.local_selector:
        return s.config.local_selector
    if s.mode_config and s.mode_config.address:
        return f"{s.mode_config.address}/32"
    return f"{s.local[0]}/32"


def start(s: SessionCore, now: float) -> None:
    s.advance("start_quick_mode")
    config = s.config
    mode = encapsulation_mode(s.floated, s.p1.natt)
    qm = QuickModeData(s.new_message_id(), s.new_spi(), s.rng(NONCE_SIZE), None, mode,
                       local_selector(s), config.remote_selector)
    sa = esp_sa(config.esp_proposals, qm.spi, mode=mode, pfs_group=config.pfs_group,
                lifetime_seconds=config.esp_lifetime_seconds,
                lifetime_kilobytes=config.esp_lifetime_kilobytes)
    payloads: list[Payload] = [sa, Nonce(qm.ni_b)]
    if config.pfs_group is not None:
        qm.dh = dh_group(config.pfs_group).generate(s.rng)
        payloads.append(KeyExchange(qm.dh.public_bytes))
    payloads += [selector_payload(qm.local_selector), selector_payload(qm.remote_selector)]
    digest = quick_mode_hash1(s.phase1_keys(), qm.message_id, payloads)
    datagram, _ = s.emit(Step.QM1, ExchangeType.QUICK_MODE, [Hash(digest), *payloads],
                         message_id=qm.message_id, encrypt=True)
    s.qm = qm
    s.expect_reply(datagram, now)


def receive(s: SessionCore, header: Header, data: bytes, now: float) -> None:
    qm = s.qm
    if s.state is not State.QM_SENT or qm is None or header.message_id != qm.message_id:
        raise InvalidTransition(s.state, "quick_mode_message")
    message, plaintext = s.decrypt(header, data)
    _verify_hash2(s, qm, message, plaintext)
    try:
        choice = read_esp_choice(message.first(SecurityAssociation), s.config.esp_proposals,
                                 mode=qm.mode, pfs_group=s.config.pfs_group)
    except ProposalMismatch as exc:
        raise PeerError(str(exc), NotifyType.NO_PROPOSAL_CHOSEN) from None
    nonce = message.first(Nonce)
    if nonce is None:
        raise PeerError("Quick Mode reply without nonce", NotifyType.PAYLOAD_MALFORMED)
    child = _derive_child(s, qm, choice, message, nonce.data)
    s.accept(header, data)
    s.advance("qm2")
    s.reply_arrived()
    digest = quick_mode_hash3(s.phase1_keys(), qm.message_id, qm.ni_b, nonce.data)
    datagram, _ = s.emit(Step.QM3, ExchangeType.QUICK_MODE, [Hash(digest)],
                         message_id=qm.message_id, encrypt=True)
    s.remember_answer(data, [datagram])
    s.qm = None
    s.children.append(child)
    s.children_ever.append(child)
    s.timings.quick_mode = now
    s.event_queue.append(ChildSaUp(child))
    log.info("[%s] child SA up: %s <-> %s, SPIs in %s out %s", s.name, child.local_selector,
             child.remote_selector, child.inbound_spi.hex(), child.outbound_spi.hex())


def _verify_hash2(s: SessionCore, qm: QuickModeData, message: Message, plaintext: bytes) -> None:
    received = message.payloads[0] if message.payloads else None
    if not isinstance(received, Hash):
        raise PeerError("Quick Mode reply without HASH(2)", NotifyType.INVALID_HASH_INFORMATION)
    expected = quick_mode_hash2(s.phase1_keys(), qm.message_id, qm.ni_b, plaintext)
    verify_hash(expected, received.data, "HASH(2)")


def _derive_child(s: SessionCore, qm: QuickModeData, choice: EspChoice, message: Message,
                  nr_b: bytes) -> ChildSa:
    pfs_secret = None
    if qm.dh is not None:
        ke = message.first(KeyExchange)
        if ke is None:
            raise PeerError("PFS requested but no KE in the reply", NotifyType.PAYLOAD_MALFORMED)
        pfs_secret = qm.dh.compute_shared(ke.key_data)
    proposal = choice.proposal
    _, keys = child_keys(s.phase1_keys(), cipher=proposal.cipher, key_length=proposal.key_length,
                         auth=proposal.auth, inbound_spi=qm.spi, outbound_spi=choice.spi,
                         ni_b=qm.ni_b, nr_b=nr_b, pfs_secret=pfs_secret)
    ids = message.payloads_of(Identification)
    local, remote = qm.local_selector, qm.remote_selector
    if len(ids) >= 2:  # the server may narrow our selectors
        local, remote = selector_text(ids[0]), selector_text(ids[1])
    return ChildSa(message_id=qm.message_id, inbound_spi=qm.spi, outbound_spi=choice.spi,
                   cipher=proposal.cipher, key_length=proposal.key_length,
                   integrity=proposal.auth, encapsulation_mode=qm.mode,
                   local_selector=local, remote_selector=remote,
                   lifetime_seconds=choice.lifetime_seconds, pfs_group=choice.pfs_group,
                   keys=keys)
