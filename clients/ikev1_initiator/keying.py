"""The initiator's crypto glue: phase 1 keys and message cipher, NAT-D payloads,
the HASH payloads of protected exchanges, sealing and decrypting messages, ESP keys.

Pure functions over the responder's crypto (`responder.ikev1.crypto`), shared by
the session's exchanges and by tests that craft messages step by step.

    keys, cipher = phase1_keys(encryption=7, key_length=256, prf=prf, psk=psk, dh=dh, ...)
    data = seal(cky_i, cky_r, ExchangeType.QUICK_MODE, payloads, message_id=mid, cipher=cipher)
    message, plaintext = decrypt_message(cipher, Message.parse(data))
"""

from __future__ import annotations

from typing import Sequence

from responder.ikev1.crypto.cipher import cipher_algorithm
from responder.ikev1.crypto.dh import DHKeyPair
from responder.ikev1.crypto.iv import IVStore, MessageCipher
from responder.ikev1.crypto.phase1 import Phase1Keys
from responder.ikev1.crypto.phase2 import (
    ChildSaKeys,
    NegotiatedEspTransform,
    derive_esp_keys,
    informational_hash,
    quick_mode_hash1 as _quick_mode_hash1,
    quick_mode_hash2 as _quick_mode_hash2,
    quick_mode_hash3 as _quick_mode_hash3,
)
from responder.ikev1.crypto.prf import HashFunction
from responder.ikev1.enums import ExchangeType, HeaderFlag, PayloadType
from responder.ikev1.message import Header, Message, serialize_with_body
from responder.ikev1.natt import build_natd_hashes
from responder.ikev1.payloads import NatDiscovery, Payload, serialize_payloads

from .states import Address, Rng
from .wire import payload_chain_after_first

__all__ = [
    "child_keys",
    "decrypt_message",
    "expected_hash1",
    "informational_hash1",
    "natd_payloads",
    "phase1_keys",
    "quick_mode_hash1",
    "quick_mode_hash2",
    "quick_mode_hash3",
    "seal",
]


def phase1_keys(*, encryption: int, key_length: int | None, prf: HashFunction, psk: bytes,
                ni_b: bytes, nr_b: bytes, dh: DHKeyPair, g_xr: bytes, cky_i: bytes,
                cky_r: bytes) -> tuple[Phase1Keys, MessageCipher]:
    """SKEYID and its children for pre-shared keys (RFC 2409 §5), and the message
    cipher with its first IV (Appendix B)."""
    cipher = cipher_algorithm(encryption)
    keys = Phase1Keys.derive_pre_shared_key(
        prf=prf, cipher=cipher, key_size=cipher.key_size(key_length or None), psk=psk,
        ni_b=ni_b, nr_b=nr_b, shared_secret=dh.compute_shared(g_xr), cky_i=cky_i, cky_r=cky_r)
    iv = keys.initial_iv(dh.public_bytes, g_xr)
    return keys, MessageCipher(cipher, keys.encryption_key, IVStore(prf, cipher.block_size, iv))


def natd_payloads(prf: HashFunction, cky_i: bytes, cky_r: bytes, *, local: Address, remote: Address,
                  payload_type: int = PayloadType.NAT_D, force_encap: bool = False,
                  rng: Rng | None = None) -> list[Payload]:
    """Our NAT-D payloads: the server's address first, then ours (RFC 3947 §3.2)."""
    hashes = build_natd_hashes(prf, cky_i, cky_r, local=local, remote=remote,
                               force_encap=force_encap, rng=rng)
    return [NatDiscovery(h, payload_type) for h in hashes]


def _chain(payloads: Sequence[Payload]) -> bytes:
    _, chain = serialize_payloads(list(payloads))
    return chain


def informational_hash1(keys: Phase1Keys, message_id: int, payloads: Sequence[Payload]) -> bytes:
    """HASH(1) of Informational and Transaction: prf(SKEYID_a, M-ID | payloads)."""
    return informational_hash(keys.prf, keys.skeyid_a, message_id, _chain(payloads))


def expected_hash1(keys: Phase1Keys, message_id: int, plaintext: bytes) -> bytes:
    """The HASH(1) a received Informational or Transaction must carry: prf(SKEYID_a,
    M-ID | the payloads after its HASH)."""
    return informational_hash(keys.prf, keys.skeyid_a, message_id,
                              payload_chain_after_first(plaintext))


def quick_mode_hash1(keys: Phase1Keys, message_id: int, payloads: Sequence[Payload]) -> bytes:
    """HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [| KE] [| IDci | IDcr])."""
    return _quick_mode_hash1(keys.prf, keys.skeyid_a, message_id, _chain(payloads))


def quick_mode_hash2(keys: Phase1Keys, message_id: int, ni_b: bytes, plaintext: bytes) -> bytes:
    """The HASH(2) a server's reply must carry: prf(SKEYID_a, M-ID | Ni_b | the payloads
    after its HASH)."""
    return _quick_mode_hash2(keys.prf, keys.skeyid_a, message_id, ni_b,
                             payload_chain_after_first(plaintext))


def quick_mode_hash3(keys: Phase1Keys, message_id: int, ni_b: bytes, nr_b: bytes) -> bytes:
    """HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)."""
    return _quick_mode_hash3(keys.prf, keys.skeyid_a, message_id, ni_b, nr_b)


def seal(cky_i: bytes, cky_r: bytes, exchange: int, payloads: Sequence[Payload], *,
         message_id: int = 0, cipher: MessageCipher | None = None) -> bytes:
    """One ISAKMP message; encrypted (Informational with its own IV) when a cipher is given."""
    first, body = serialize_payloads(list(payloads))
    flags = 0
    if cipher is not None:
        body = (cipher.encrypt_informational(message_id, body)
                if exchange == ExchangeType.INFORMATIONAL else cipher.encrypt(message_id, body))
        flags = HeaderFlag.ENCRYPTION
    return serialize_with_body(Header(cky_i, cky_r, exchange, flags, message_id), first, body)


def decrypt_message(cipher: MessageCipher, message: Message) -> tuple[Message, bytes]:
    """Decrypt a parsed protected message: its payloads and the plaintext. The IV chain
    of a non-Informational exchange advances only by `cipher.accept` afterwards, with
    the ciphertext (`message.body` of the parsed message, not of the one returned)."""
    mid = message.header.message_id
    if message.header.exchange_type == ExchangeType.INFORMATIONAL:
        plaintext = cipher.decrypt_informational(mid, message.body)
    else:
        plaintext = cipher.decrypt(mid, message.body)
    return message.payloads_from_plaintext(plaintext), plaintext


def child_keys(keys: Phase1Keys, *, cipher: int, key_length: int | None, auth: int | None,
               inbound_spi: bytes, outbound_spi: bytes, ni_b: bytes, nr_b: bytes,
               pfs_secret: bytes | None = None) -> tuple[NegotiatedEspTransform, ChildSaKeys]:
    """KEYMAT of one ESP SA pair (RFC 2409 §5.5), inbound = our own SPI."""
    keying = NegotiatedEspTransform.from_attributes(cipher, key_length_bits=key_length,
                                                    auth_algorithm=auth)
    return keying, derive_esp_keys(keys.prf, keys.skeyid_d, keying, inbound_spi=inbound_spi,
                                   outbound_spi=outbound_spi, ni_b=ni_b, nr_b=nr_b,
                                   pfs_shared_secret=pfs_secret)
