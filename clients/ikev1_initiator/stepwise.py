"""The step-by-step IKEv1 initiator: the kit's crafting hook for tests and probes.

Each message is one method call, so a caller can interleave, repeat, corrupt or skip
messages (what `InitiatorSession` never does). The payloads, keys, hashes and
encryption are the kit's own (`wire` builds transforms and SAs, `keying` derives keys,
computes HASH payloads and seals messages, `hooks` crafts bad ones); this class only
holds one exchange's state between calls. Deterministic given `rng`. Driven in memory
by `pair.Pair`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .config import EspOffer, IkeOffer
from .hooks import Step, replace_hash
from .keying import (
    child_keys,
    decrypt_message,
    expected_hash1,
    informational_hash1,
    natd_payloads,
    phase1_keys,
    quick_mode_hash1,
    quick_mode_hash2,
    quick_mode_hash3,
    seal,
)
from .wire import esp_transform as _esp_transform
from .wire import ike_transform as _ike_transform
from .wire import isakmp_sa
from responder.ikev1.crypto.dh import dh_group
from responder.ikev1.crypto.iv import MessageCipher
from responder.ikev1.crypto.phase1 import Phase1Keys
from responder.ikev1.crypto.phase2 import NegotiatedEspTransform
from responder.ikev1.crypto.prf import hash_algorithm
from responder.ikev1.enums import (
    AuthMethod,
    EncapsulationMode,
    EncryptionAlgorithm,
    EspTransformId,
    ExchangeType,
    GroupDescription,
    HashAlgorithm,
    IpsecAttribute,
    IpsecAuthAlgorithm,
    NotifyType,
    PayloadType,
    Phase1Attribute,
    ProtocolId,
)
from responder.ikev1.exchanges.common import raw_payloads
from responder.ikev1.message import Message
from responder.ikev1.payloads import (
    Delete,
    Hash,
    Identification,
    KeyExchange,
    NatDiscovery,
    Nonce,
    Notification,
    Payload,
    Proposal,
    SecurityAssociation,
    Transform,
    VendorId,
)
from responder.ikev1.vendor_ids import DPD, NATT_RFC3947, XAUTH

Address = tuple[str, int]


def seeded_rng(seed: int):
    generator = random.Random(seed)
    return lambda n: generator.randbytes(n)


def ike_transform(number: int = 1, *, encryption: int = EncryptionAlgorithm.AES_CBC,
                  key_length: int | None = 256, hash_alg: int = HashAlgorithm.SHA,
                  group: int = GroupDescription.MODP_2048,
                  auth: int = AuthMethod.XAUTH_INIT_PSK, lifetime: int = 28800) -> Transform:
    return _ike_transform(number, IkeOffer(encryption, key_length, hash_alg, group, auth,
                                           lifetime))


def esp_transform(number: int = 1, *, cipher: int = EspTransformId.AES_CBC,
                  key_length: int | None = 128, auth: int = IpsecAuthAlgorithm.HMAC_SHA,
                  mode: int = EncapsulationMode.TUNNEL, group: int | None = None,
                  lifetime: int | None = 3600) -> Transform:
    return _esp_transform(number, EspOffer(cipher, key_length, auth), mode=mode,
                          pfs_group=group, lifetime_seconds=lifetime, lifetime_kilobytes=None)


@dataclass
class QuickModeRun:
    message_id: int
    spi: bytes
    ni_b: bytes
    group: int | None
    dh: object = None
    nr_b: bytes = b""
    responder_spi: bytes = b""
    keying: NegotiatedEspTransform | None = None
    keys: object = None
    reply: Message | None = None


@dataclass
class StepInitiator:
    psk: bytes
    rng: object
    local: Address = ("198.18.1.2", 500)
    remote: Address = ("198.18.0.1", 500)
    vendor_ids: tuple[bytes, ...] = (XAUTH.data, DPD.data, NATT_RFC3947.data)
    transforms: list[Transform] = field(default_factory=lambda: [ike_transform()])
    identity: Identification = field(default_factory=lambda: Identification.ipv4_address("198.18.1.2"))
    #: what the initiator thinks its own address is (differs when NATed)
    natd_self: Address | None = None
    cky_i: bytes = b""
    cky_r: bytes = bytes(8)
    # negotiated
    chosen: Transform | None = None
    sai_b: bytes = b""
    dh: object = None
    ni_b: bytes = b""
    nr_b: bytes = b""
    g_xr: bytes = b""
    keys: Phase1Keys | None = None
    cipher: MessageCipher | None = None
    responder_vids: list[bytes] = field(default_factory=list)
    responder_natd: list[bytes] = field(default_factory=list)
    responder_id_b: bytes = b""
    hash_r: bytes = b""

    def __post_init__(self) -> None:
        self.cky_i = self.rng(8)

    # ---------------------------------------------------------- helpers
    def _clear(self, exchange: int, payloads: list[Payload], mid: int = 0) -> bytes:
        return seal(self.cky_i, self.cky_r, exchange, payloads, message_id=mid)

    def _encrypted(self, exchange: int, payloads: list[Payload], mid: int = 0) -> bytes:
        return seal(self.cky_i, self.cky_r, exchange, payloads, message_id=mid,
                    cipher=self.cipher)

    def decrypt(self, data: bytes) -> tuple[Message, bytes]:
        received = Message.parse(data)
        message, plain = decrypt_message(self.cipher, received)
        if received.header.exchange_type != ExchangeType.INFORMATIONAL:
            self.cipher.accept(received.header.message_id, received.body)
        return message, plain

    def _sa_payload(self) -> SecurityAssociation:
        return isakmp_sa(self.transforms)

    def _group(self) -> int:
        attr = (self.chosen or self.transforms[0]).attribute(Phase1Attribute.GROUP_DESCRIPTION)
        return attr.as_int()

    def _natd(self) -> list[NatDiscovery]:
        prf = hash_algorithm(self.chosen.attribute(Phase1Attribute.HASH_ALGORITHM).as_int())
        return natd_payloads(prf, self.cky_i, self.cky_r, local=self.natd_self or self.local,
                             remote=self.remote)

    def _derive(self) -> None:
        t = self.chosen
        key_length = t.attribute(Phase1Attribute.KEY_LENGTH)
        self.keys, self.cipher = phase1_keys(
            encryption=t.attribute(Phase1Attribute.ENCRYPTION_ALGORITHM).as_int(),
            key_length=key_length.as_int() if key_length else None,
            prf=hash_algorithm(t.attribute(Phase1Attribute.HASH_ALGORITHM).as_int()),
            psk=self.psk, ni_b=self.ni_b, nr_b=self.nr_b, dh=self.dh, g_xr=self.g_xr,
            cky_i=self.cky_i, cky_r=self.cky_r)

    def _take_sa_reply(self, message: Message) -> None:
        self.cky_r = message.header.responder_cookie
        sa = message.first(SecurityAssociation)
        assert len(sa.proposals) == 1 and len(sa.proposals[0].transforms) == 1
        self.chosen = sa.proposals[0].transforms[0]
        self.responder_vids = [p.data for p in message.payloads_of(VendorId)]

    def hash_i(self) -> bytes:
        return self.keys.hash_i(g_xi=self.dh.public_bytes, g_xr=self.g_xr, sai_b=self.sai_b,
                                idii_b=self.identity.serialize())

    def verify_hash_r(self) -> None:
        self.keys.verify_hash_r(self.hash_r, g_xi=self.dh.public_bytes, g_xr=self.g_xr,
                                sai_b=self.sai_b, idir_b=self.responder_id_b)

    # ---------------------------------------------------------- Main Mode
    def main_mode_1(self) -> bytes:
        sa = self._sa_payload()
        self.sai_b = sa.serialize()
        return self._clear(ExchangeType.IDENTITY_PROTECTION,
                           [sa, *[VendorId(v) for v in self.vendor_ids]])

    def handle_main_mode_2(self, data: bytes) -> Message:
        message = Message.parse(data)
        self._take_sa_reply(message)
        return message

    def main_mode_3(self) -> bytes:
        self.dh = dh_group(self._group()).generate(self.rng)
        self.ni_b = self.rng(32)
        payloads = [KeyExchange(self.dh.public_bytes), Nonce(self.ni_b)]
        if NATT_RFC3947.data in self.responder_vids:
            payloads += self._natd()
        return self._clear(ExchangeType.IDENTITY_PROTECTION, payloads)

    def handle_main_mode_4(self, data: bytes) -> Message:
        message = Message.parse(data)
        self.g_xr = message.first(KeyExchange).key_data
        self.nr_b = message.first(Nonce).data
        self.responder_natd = [p.hash_data for p in message.payloads_of(NatDiscovery)]
        self._derive()
        return message

    def main_mode_5(self, *, initial_contact: bool = False, hash_override: bytes | None = None) -> bytes:
        payloads: list[Payload] = [self.identity, Hash(self.hash_i())]
        if initial_contact:
            payloads.append(Notification(NotifyType.INITIAL_CONTACT, spi=self.cky_i + self.cky_r))
        if hash_override:
            payloads = replace_hash(Step.MM5, hash_override).payloads(Step.MM5, payloads)
        return self._encrypted(ExchangeType.IDENTITY_PROTECTION, payloads)

    def handle_main_mode_6(self, data: bytes) -> Message:
        message, plain = self.decrypt(data)
        self.responder_id_b = raw_payloads(message.header.next_payload, plain)[0].body
        self.hash_r = message.first(Hash).data
        self.verify_hash_r()
        return message

    # ---------------------------------------------------------- Aggressive Mode
    def aggressive_1(self) -> bytes:
        sa = self._sa_payload()
        self.sai_b = sa.serialize()
        self.dh = dh_group(self._group()).generate(self.rng)
        self.ni_b = self.rng(32)
        return self._clear(ExchangeType.AGGRESSIVE, [
            sa, KeyExchange(self.dh.public_bytes), Nonce(self.ni_b), self.identity,
            *[VendorId(v) for v in self.vendor_ids]])

    def handle_aggressive_2(self, data: bytes) -> Message:
        message = Message.parse(data)
        self._take_sa_reply(message)
        self.g_xr = message.first(KeyExchange).key_data
        self.nr_b = message.first(Nonce).data
        self.responder_natd = [p.hash_data for p in message.payloads_of(NatDiscovery)]
        self.responder_id_b = message.first(Identification).serialize()
        self.hash_r = message.first(Hash).data
        self._derive()
        self.verify_hash_r()
        return message

    def aggressive_3(self, *, encrypted: bool = True, initial_contact: bool = False,
                     hash_override: bytes | None = None) -> bytes:
        payloads: list[Payload] = [Hash(self.hash_i())]
        if NATT_RFC3947.data in self.responder_vids:
            payloads += self._natd()
        if initial_contact:
            payloads.append(Notification(NotifyType.INITIAL_CONTACT, spi=self.cky_i + self.cky_r))
        if hash_override:
            payloads = replace_hash(Step.AM3, hash_override).payloads(Step.AM3, payloads)
        if encrypted:
            return self._encrypted(ExchangeType.AGGRESSIVE, payloads)
        return self._clear(ExchangeType.AGGRESSIVE, payloads)

    # ---------------------------------------------------------- Quick Mode
    def quick_mode_1(self, *, transforms: list[Transform] | None = None,
                     pfs_group: int | None = None,
                     ids: tuple[Identification, Identification] | None = None,
                     message_id: int | None = None) -> tuple[QuickModeRun, bytes]:
        run = QuickModeRun(message_id or int.from_bytes(self.rng(4), "big") | 1,
                           self.rng(4), self.rng(32), pfs_group)
        transforms = transforms or [esp_transform(group=pfs_group)]
        sa = SecurityAssociation(proposals=[
            Proposal(i + 1, ProtocolId.IPSEC_ESP, run.spi, [t]) for i, t in enumerate(transforms)])
        payloads: list[Payload] = [sa, Nonce(run.ni_b)]
        if pfs_group is not None:
            run.dh = dh_group(pfs_group).generate(self.rng)
            payloads.append(KeyExchange(run.dh.public_bytes))
        if ids is not None:
            payloads += list(ids)
        digest = quick_mode_hash1(self.keys, run.message_id, payloads)
        return run, self._encrypted(ExchangeType.QUICK_MODE, [Hash(digest), *payloads],
                                    run.message_id)

    def handle_quick_mode_2(self, run: QuickModeRun, data: bytes) -> Message:
        message, plain = self.decrypt(data)
        expected = quick_mode_hash2(self.keys, run.message_id, run.ni_b, plain)
        assert message.first(Hash).data == expected, "HASH(2) mismatch"
        run.nr_b = message.first(Nonce).data
        proposal = message.first(SecurityAssociation).proposals[0]
        run.responder_spi = proposal.spi
        transform = proposal.transforms[0]
        key_length = transform.attribute(IpsecAttribute.KEY_LENGTH)
        auth = transform.attribute(IpsecAttribute.AUTHENTICATION_ALGORITHM)
        pfs_secret = None
        if run.dh is not None:
            pfs_secret = run.dh.compute_shared(message.first(KeyExchange).key_data)
        # from the initiator's view: inbound = its own SPI
        run.keying, run.keys = child_keys(
            self.keys, cipher=transform.transform_id,
            key_length=key_length.as_int() if key_length else None,
            auth=auth.as_int() if auth else None, inbound_spi=run.spi,
            outbound_spi=run.responder_spi, ni_b=run.ni_b, nr_b=run.nr_b, pfs_secret=pfs_secret)
        run.reply = message
        return message

    def quick_mode_3(self, run: QuickModeRun) -> bytes:
        digest = quick_mode_hash3(self.keys, run.message_id, run.ni_b, run.nr_b)
        return self._encrypted(ExchangeType.QUICK_MODE, [Hash(digest)], run.message_id)

    # ---------------------------------------------------------- Informational
    def informational(self, payloads: list[Payload], message_id: int | None = None) -> bytes:
        mid = message_id or int.from_bytes(self.rng(4), "big") | 1
        digest = informational_hash1(self.keys, mid, payloads)
        return self._encrypted(ExchangeType.INFORMATIONAL, [Hash(digest), *payloads], mid)

    def r_u_there(self, sequence: int) -> bytes:
        return self.informational([Notification(NotifyType.R_U_THERE, spi=self.cky_i + self.cky_r,
                                                data=sequence.to_bytes(4, "big"))])

    def delete_phase1(self) -> bytes:
        return self.informational([Delete(ProtocolId.ISAKMP, [self.cky_i + self.cky_r])])

    def delete_esp(self, spis: list[bytes]) -> bytes:
        return self.informational([Delete(ProtocolId.IPSEC_ESP, spis)])

    def read_informational(self, data: bytes) -> Message:
        message, plain = self.decrypt(data)
        expected = expected_hash1(self.keys, message.header.message_id, plain)
        assert message.first(Hash).data == expected, "informational HASH mismatch"
        return message


__all__ = ["StepInitiator", "QuickModeRun", "ike_transform", "esp_transform", "seeded_rng",
           "PayloadType"]
