"""IKEv1 CBC IV bookkeeping (RFC 2409 Appendix B) and message-body encryption.

* Phase 1: the first encrypted message uses hash(g^xi | g^xr) truncated to the
  block size; every later phase 1 message uses the last ciphertext block of
  the previous phase 1 message, sent or received, in order.
* Every other exchange (Quick Mode, Transaction, Informational) starts from
  hash(last phase 1 CBC output block | M-ID), truncated, and then chains on
  the last ciphertext block of the previous message *of that exchange*.  So
  the IV is kept per message ID; interleaved exchanges on one ISAKMP SA do not
  disturb each other.
* Informational exchanges are one message each: strongSwan (keymat_v1.c
  get_iv/update_iv/confirm_iv, a short per-M-ID list) and vpnc use a new M-ID
  for every informational, including each DPD R-U-THERE-ACK and Delete, so
  every informational starts from the phase 1 IV.  The reference captures
  confirm it (vpnc-aggr frames 13, 15, 22, 23).  :meth:`IVStore.fresh_iv`
  gives that IV without remembering anything.

Only messages that decrypted *and* verified may advance a chain (strongSwan's
"confirm" step), otherwise a forged datagram would desynchronise the SA.
"""
from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass, field

from .cipher import CipherAlgorithm, pad
from .prf import HashFunction

PHASE1_MESSAGE_ID = 0

# strongSwan keeps 3 per-M-ID IVs; a few more costs nothing and tolerates a
# rekeying Quick Mode overlapping Mode-Config and DPD.
DEFAULT_MAX_EXCHANGES = 8


def message_id_bytes(message_id: int) -> bytes:
    """The M-ID as it appears on the wire (header bytes 20..23, big-endian)."""
    return struct.pack("!I", message_id)


class IVStore:
    """Current CBC IV per message ID of one ISAKMP SA."""

    def __init__(
        self,
        prf: HashFunction,
        block_size: int,
        initial_phase1_iv: bytes,
        *,
        max_exchanges: int = DEFAULT_MAX_EXCHANGES,
    ) -> None:
        if len(initial_phase1_iv) != block_size:
            raise ValueError("phase 1 IV must be one cipher block")
        self._prf = prf
        self._block_size = block_size
        self._phase1_iv = initial_phase1_iv
        self._exchanges: OrderedDict[int, bytes] = OrderedDict()
        self._max_exchanges = max_exchanges

    @property
    def phase1_iv(self) -> bytes:
        """The phase 1 chain: the last phase 1 CBC output block so far."""
        return self._phase1_iv

    def iv_for(self, message_id: int) -> bytes:
        """IV for the next message (sent or received) with this M-ID."""
        if message_id == PHASE1_MESSAGE_ID:
            return self._phase1_iv
        return self._exchanges.get(message_id) or self.fresh_iv(message_id)

    def fresh_iv(self, message_id: int) -> bytes:
        """hash(last phase 1 CBC block | M-ID) truncated: first IV of an exchange."""
        return self._prf.hash(self._phase1_iv + message_id_bytes(message_id))[: self._block_size]

    def update(self, message_id: int, last_cipher_block: bytes) -> None:
        """Advance the chain of ``message_id`` after a message was sent or accepted."""
        if len(last_cipher_block) != self._block_size:
            raise ValueError("an IV update is exactly one cipher block")
        if message_id == PHASE1_MESSAGE_ID:
            self._phase1_iv = last_cipher_block
            return
        self._exchanges[message_id] = last_cipher_block
        self._exchanges.move_to_end(message_id)
        while len(self._exchanges) > self._max_exchanges:
            self._exchanges.popitem(last=False)

    def forget(self, message_id: int) -> None:
        """Drop a finished exchange's chain (a later message with it starts afresh)."""
        self._exchanges.pop(message_id, None)


@dataclass
class MessageCipher:
    """Encrypts and decrypts ISAKMP bodies of one SA, keeping the IV chains.

    ``encrypt`` advances the chain at once (the message is sent);
    ``decrypt`` does not: call ``accept`` once the message verified.
    """

    cipher: CipherAlgorithm
    key: bytes = field(repr=False)
    ivs: IVStore

    def encrypt(self, message_id: int, payload_chain: bytes) -> bytes:
        """Pad and encrypt the payloads that follow the ISAKMP header."""
        ciphertext = self.cipher.encrypt(
            self.key, self.ivs.iv_for(message_id), pad(payload_chain, self.cipher.block_size)
        )
        self.ivs.update(message_id, ciphertext[-self.cipher.block_size :])
        return ciphertext

    def encrypt_informational(self, message_id: int, payload_chain: bytes) -> bytes:
        """Informational: always from the phase 1 IV, nothing remembered."""
        return self.cipher.encrypt(
            self.key, self.ivs.fresh_iv(message_id), pad(payload_chain, self.cipher.block_size)
        )

    def decrypt(self, message_id: int, ciphertext: bytes) -> bytes:
        """Plaintext including padding; raises CiphertextMalformed on a bad length."""
        return self.cipher.decrypt(self.key, self.ivs.iv_for(message_id), ciphertext)

    def decrypt_informational(self, message_id: int, ciphertext: bytes) -> bytes:
        return self.cipher.decrypt(self.key, self.ivs.fresh_iv(message_id), ciphertext)

    def accept(self, message_id: int, ciphertext: bytes) -> None:
        """The received message verified: chain the next IV of its exchange on it."""
        self.ivs.update(message_id, ciphertext[-self.cipher.block_size :])
