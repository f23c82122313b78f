"""What every exchange task shares: state tables, payload rules, message
building and decryption on one IKE SA.

State machines are data (as in h11's `_state.py`): each exchange module
declares `TRANSITIONS = {(state, event): new_state}`; `StateTable.next`
raises `InvalidTransition` naming the exchange, state and event when a pair is
missing. The engine treats that as an out-of-order message: logged, counted,
dropped (no notify: a late retransmission must not tear an SA down).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol, Sequence

from ..buffer import Buffer
from ..crypto.iv import MessageCipher
from ..crypto.phase2 import informational_hash, verify_hash
from ..enums import ExchangeType, HeaderFlag, NotifyType, PayloadType
from ..errors import RemoteProtocolError
from ..events import Event
from ..ike_sa import IkeSa
from ..message import Header, Message, serialize_with_body
from ..payloads import Hash, Payload, SecurityAssociation, serialize_payloads
from ..policy import ResponderPolicy
from ..proposals import OfferedProposal, OfferedTransform

__all__ = [
    "InvalidTransition",
    "Dropped",
    "StateTable",
    "ExchangeContext",
    "RawPayload",
    "raw_payloads",
    "bytes_after_first_payload",
    "offered_proposals",
    "require_payloads",
    "build_cleartext",
    "build_encrypted",
    "build_protected",
    "decrypt",
    "verify_hash1",
    "verified_decrypt",
    "authenticated",
    "protocol_error",
]

log = logging.getLogger(__name__)


class InvalidTransition(RemoteProtocolError):
    """No entry (state, event) in an exchange's table: out-of-order message."""

    def __init__(self, exchange: str, state: str, event: str) -> None:
        super().__init__(NotifyType.INVALID_EXCHANGE_TYPE,
                         f"{exchange}: no transition from state {state!r} on event {event!r}")
        self.exchange = exchange
        self.state = state
        self.event = event


class Dropped(RemoteProtocolError):
    """A message that proves nothing: it did not decrypt, its HASH is wrong,
    or it is a replay. The engine counts it as `dropped_<reason>` and drops
    it: no answer (anyone can send it, from any address) and no state change,
    so the real message can still arrive."""

    notify_peer = False

    def __init__(self, reason: str, message: str, *, answer: NotifyType | None = None) -> None:
        super().__init__(answer or NotifyType.INVALID_HASH_INFORMATION, message)
        self.reason = reason
        #: before phase 1 completes: an unprotected notify that tells a real
        #: peer with the wrong key why (it changes nothing here; anyone could
        #: send that notify to the peer directly)
        self.answer = answer


@dataclass(frozen=True)
class StateTable:
    exchange: str
    transitions: Mapping[tuple[str, str], str]

    def next(self, state: str, event: str) -> str:
        try:
            return self.transitions[(state, event)]
        except KeyError:
            raise InvalidTransition(self.exchange, state, event) from None

    def rows(self) -> list[tuple[str, str, str]]:
        """(state, event, next) for documentation (docs/ikev1-engine.md)."""
        return [(s, e, n) for (s, e), n in self.transitions.items()]


def protocol_error(notify: NotifyType, message: str) -> RemoteProtocolError:
    return RemoteProtocolError(notify, message)


class ExchangeContext(Protocol):
    """What the engine hands to an exchange task (one call, one `now`)."""

    policy: ResponderPolicy
    now: float
    #: set by `authenticated`: the message decrypted, its HASH verified and it
    #: is no replay; only then may the engine treat it as the peer's (liveness,
    #: address float, reply cache)
    authenticated: bool

    def random(self, size: int) -> bytes: ...

    def emit(self, event: Event) -> None: ...

    def sa_log(self, sa: IkeSa) -> logging.LoggerAdapter: ...


# ---------------------------------------------------------------------------
# Raw payload bodies: RFC 2409 hashes are over bytes exactly as received
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RawPayload:
    payload_type: int
    body: bytes  # without the generic header (what RFC 2409 §5 calls *_b)
    start: int  # offset of the generic header in the chain
    end: int


def raw_payloads(first_type: int, data: bytes) -> list[RawPayload]:
    """Walk a payload chain that the codec already validated."""
    buf = Buffer(data)
    found: list[RawPayload] = []
    next_type = first_type
    while next_type != PayloadType.NONE and not buf.eof():
        start = buf.position
        following = buf.pull_uint8()
        buf.pull_uint8()
        length = buf.pull_uint16()
        body = buf.pull_bytes(length - 4)
        found.append(RawPayload(int(next_type), body, start, buf.position))
        next_type = following
    return found


def bytes_after_first_payload(first_type: int, data: bytes) -> bytes:
    """Everything after the HASH payload up to the end of the last payload
    (padding excluded): the input of HASH(1)/HASH(2) (RFC 2409 §5.5, §5.7)."""
    raws = raw_payloads(first_type, data)
    if not raws:
        return b""
    return data[raws[0].end:raws[-1].end]


def raw_body(first_type: int, data: bytes, payload_type: int, index: int = 0) -> bytes:
    bodies = [r.body for r in raw_payloads(first_type, data) if r.payload_type == payload_type]
    if len(bodies) <= index:
        raise protocol_error(NotifyType.PAYLOAD_MALFORMED, f"payload {payload_type} missing")
    return bodies[index]


def offered_proposals(sa: SecurityAssociation) -> list[OfferedProposal]:
    return [
        OfferedProposal(
            number=p.number,
            protocol=int(p.protocol_id),
            spi=p.spi,
            transforms=tuple(
                OfferedTransform(t.number, int(t.transform_id),
                                 tuple((a.attr_type, a.value) for a in t.attributes), raw=t)
                for t in p.transforms),
            raw=p,
        )
        for p in sa.proposals
    ]


def require_payloads(message: Message, exchange: str, *,
                     exactly_one: Iterable[type[Payload]] = (),
                     at_most_one: Iterable[type[Payload]] = (),
                     allowed: Iterable[type[Payload]] = ()) -> None:
    """Per-message payload rules, checked before any task logic runs."""
    exactly = tuple(exactly_one)
    optional = tuple(at_most_one)
    extra = tuple(allowed)
    for cls in exactly:
        count = len(message.payloads_of(cls))
        if count != 1:
            raise protocol_error(NotifyType.PAYLOAD_MALFORMED,
                                 f"{exchange}: {count} {cls.__name__} payloads, 1 expected")
    for cls in optional:
        if len(message.payloads_of(cls)) > 1:
            raise protocol_error(NotifyType.PAYLOAD_MALFORMED,
                                 f"{exchange}: more than one {cls.__name__} payload")
    known = exactly + optional + extra
    for payload in message.payloads:
        if not isinstance(payload, known):
            raise protocol_error(NotifyType.INVALID_PAYLOAD_TYPE,
                                 f"{exchange}: unexpected {type(payload).__name__} payload")


# ---------------------------------------------------------------------------
# Building messages
# ---------------------------------------------------------------------------


def _header(sa: IkeSa, exchange: int, message_id: int, flags: int = 0) -> Header:
    return Header(initiator_cookie=sa.cky_i, responder_cookie=sa.cky_r, exchange_type=exchange,
                  flags=flags, message_id=message_id)


def build_cleartext(sa: IkeSa, exchange: int, message_id: int,
                    payloads: Sequence[Payload]) -> bytes:
    first, body = serialize_payloads(payloads)
    return serialize_with_body(_header(sa, exchange, message_id), first, body)


def _cipher(sa: IkeSa) -> MessageCipher:
    if sa.cipher is None:
        raise RuntimeError(f"{sa.sa_id}: no keys yet")
    return sa.cipher


def build_encrypted(sa: IkeSa, exchange: int, message_id: int,
                    payloads: Sequence[Payload]) -> bytes:
    """Encrypt with the IV chain of `message_id` (RFC 2409 Appendix B).

    Informational exchanges are single messages: each starts from the phase
    1 IV and leaves no chain behind (crypto/iv.py explains why).
    """
    first, body = serialize_payloads(payloads)
    cipher = _cipher(sa)
    if exchange == ExchangeType.INFORMATIONAL:
        ciphertext = cipher.encrypt_informational(message_id, body)
    else:
        ciphertext = cipher.encrypt(message_id, body)
    return serialize_with_body(_header(sa, exchange, message_id, HeaderFlag.ENCRYPTION),
                               first, ciphertext)


def hash_payloads(sa: IkeSa, message_id: int, payloads: Sequence[Payload],
                  prefix: bytes = b"") -> Hash:
    """HASH(1) of Informational/Transaction (RFC 2409 §5.7) or, with a prefix
    (Ni_b), HASH(2) of Quick Mode (§5.5): prf(SKEYID_a, M-ID | prefix | ...)."""
    assert sa.keys is not None  # local invariant, not a peer check
    _, chain = serialize_payloads(payloads)
    return Hash(informational_hash(sa.keys.prf, sa.keys.skeyid_a, message_id, prefix + chain))


def build_protected(sa: IkeSa, exchange: int, message_id: int,
                    payloads: Sequence[Payload], prefix: bytes = b"") -> bytes:
    """HASH payload first, then `payloads`, encrypted."""
    digest = hash_payloads(sa, message_id, payloads, prefix)
    return build_encrypted(sa, exchange, message_id, [digest, *payloads])


# ---------------------------------------------------------------------------
# Receiving protected messages
# ---------------------------------------------------------------------------


def decrypt(sa: IkeSa, message: Message) -> tuple[Message, bytes]:
    """Decrypt and parse; the IV chain is NOT advanced (call `accept`)."""
    if not message.encrypted:
        raise protocol_error(NotifyType.INVALID_FLAGS, "message must be encrypted")
    cipher = _cipher(sa)
    mid = message.header.message_id
    if message.header.exchange_type == ExchangeType.INFORMATIONAL:
        plaintext = cipher.decrypt_informational(mid, message.body)
    else:
        plaintext = cipher.decrypt(mid, message.body)
    return message.payloads_from_plaintext(plaintext), plaintext


def accept(sa: IkeSa, message: Message) -> None:
    """The message verified: chain the next IV of its exchange on it."""
    if message.header.exchange_type != ExchangeType.INFORMATIONAL:
        _cipher(sa).accept(message.header.message_id, message.body)


def verify_hash1(sa: IkeSa, message: Message, plaintext: bytes, prefix: bytes = b"") -> None:
    """First payload must be HASH(1) = prf(SKEYID_a, M-ID | [prefix |] rest)."""
    assert sa.keys is not None
    if not message.payloads or not isinstance(message.payloads[0], Hash):
        raise protocol_error(NotifyType.INVALID_HASH_INFORMATION, "HASH payload must come first")
    rest = bytes_after_first_payload(message.header.next_payload, plaintext)
    expected = informational_hash(sa.keys.prf, sa.keys.skeyid_a, message.header.message_id,
                                  prefix + rest)
    verify_hash(expected, message.payloads[0].data)


#: RFC 2409 §5: nonces are 8 to 256 bytes
NONCE_LENGTHS = range(8, 257)


def check_nonce(data: bytes) -> bytes:
    if len(data) not in NONCE_LENGTHS:
        raise protocol_error(NotifyType.PAYLOAD_MALFORMED,
                             f"nonce of {len(data)} bytes (8-256 allowed)")
    return data


def verified_decrypt(sa: IkeSa, message: Message, prefix: bytes = b"") -> tuple[Message, bytes]:
    """Decrypt and check HASH(1) (RFC 2409 §5.5, §5.7). Garbage or a wrong
    hash is `Dropped`: without the keys anyone can send it."""
    try:
        decrypted, plaintext = decrypt(sa, message)
        verify_hash1(sa, decrypted, plaintext, prefix)
    except RemoteProtocolError as exc:
        raise Dropped("unauthenticated", f"does not verify: {exc}") from None
    return decrypted, plaintext


def authenticated(ctx: ExchangeContext, sa: IkeSa, message_id: int | None = None, *,
                  seen: OrderedDict[int, None] | None = None) -> None:
    """The message verified. Its message ID must be new on this SA (RFC 2408
    §3.1: unique per SA), else it is a captured one played back: `Dropped`.
    `seen` is the bounded window of IDs it goes in (`IkeSa.note_message_id`;
    informationals, sent often for DPD, have their own so that they cannot
    push the few Quick Mode and Transaction IDs out)."""
    if message_id is not None and not sa.note_message_id(
            message_id, ctx.policy.limits.max_message_ids, seen):
        raise Dropped("replay", f"message id {message_id:#010x} already received")
    ctx.authenticated = True
