"""Crafted exchanges: hooks that change what the initiator sends.

Robustness tests need messages no real client sends. A session calls its hook
twice for every message it builds:

* `payloads(step, payloads)` - the payload list just before serialisation
  (and before encryption); HASH payloads are already computed, so removing or
  altering a payload afterwards yields a message whose hash no longer matches,
  which is exactly what a responder must catch;
* `wire(step, data)` - the serialised ISAKMP message (encrypted if it is),
  before the NAT-T non-ESP marker is added: truncate, pad, flip bits.

`step` names the message (`Step`). Hooks never see or change retransmissions:
those resend the bytes produced the first time.

    hook = chain(drop_payload(Step.MM3, NatDiscovery), truncate(Step.QM1, 40))
    session = InitiatorSession(config, local=..., hooks=hook)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, Sequence

from responder.ikev1.payloads import Hash, Payload, VendorId

__all__ = [
    "Step",
    "MessageHook",
    "NO_HOOK",
    "chain",
    "drop_payload",
    "replace_payloads",
    "corrupt_hash",
    "replace_hash",
    "oversize",
    "truncate",
    "mutate_wire",
]


class Step(str, Enum):
    """Every message the initiator sends."""

    MM1 = "mm1"
    MM3 = "mm3"
    MM5 = "mm5"
    AM1 = "am1"
    AM3 = "am3"
    XAUTH_REPLY = "xauth_reply"
    XAUTH_ACK = "xauth_ack"
    MODECFG_REQUEST = "modecfg_request"
    MODECFG_ACK = "modecfg_ack"
    QM1 = "qm1"
    QM3 = "qm3"
    DPD_ACK = "dpd_ack"
    DPD_PROBE = "dpd_probe"
    DELETE = "delete"


class MessageHook:
    """Identity hook; subclass and override one or both methods."""

    def payloads(self, step: Step, payloads: list[Payload]) -> list[Payload]:
        return payloads

    def wire(self, step: Step, data: bytes) -> bytes:
        return data


NO_HOOK = MessageHook()


@dataclass(frozen=True)
class _Chain(MessageHook):
    hooks: tuple[MessageHook, ...]

    def payloads(self, step: Step, payloads: list[Payload]) -> list[Payload]:
        for hook in self.hooks:
            payloads = hook.payloads(step, payloads)
        return payloads

    def wire(self, step: Step, data: bytes) -> bytes:
        for hook in self.hooks:
            data = hook.wire(step, data)
        return data


def chain(*hooks: MessageHook) -> MessageHook:
    """Apply several hooks in order."""
    return _Chain(tuple(hooks))


@dataclass(frozen=True)
class _PayloadEdit(MessageHook):
    step: Step
    edit: Callable[[list[Payload]], list[Payload]]

    def payloads(self, step: Step, payloads: list[Payload]) -> list[Payload]:
        return self.edit(list(payloads)) if step == self.step else payloads


@dataclass(frozen=True)
class _WireEdit(MessageHook):
    step: Step
    edit: Callable[[bytes], bytes]

    def wire(self, step: Step, data: bytes) -> bytes:
        return self.edit(data) if step == self.step else data


def replace_payloads(step: Step, edit: Callable[[list[Payload]], list[Payload]]) -> MessageHook:
    """Free-form payload edit of one step."""
    return _PayloadEdit(step, edit)


def mutate_wire(step: Step, edit: Callable[[bytes], bytes]) -> MessageHook:
    """Free-form byte edit of one step."""
    return _WireEdit(step, edit)


def drop_payload(step: Step, payload_type: type[Payload] | Sequence[type[Payload]]) -> MessageHook:
    """Leave out every payload of the given class(es)."""
    types = tuple(payload_type) if isinstance(payload_type, Sequence) else (payload_type,)
    return _PayloadEdit(step, lambda payloads: [p for p in payloads if not isinstance(p, types)])


def _flip_hash(payloads: list[Payload]) -> list[Payload]:
    out: list[Payload] = []
    for payload in payloads:
        if isinstance(payload, Hash) and payload.data:
            payload = Hash(bytes([payload.data[0] ^ 0x01]) + payload.data[1:])
        out.append(payload)
    return out


def corrupt_hash(step: Step) -> MessageHook:
    """Flip one bit of the HASH payload (HASH_I, HASH(1), HASH(3) ...)."""
    return _PayloadEdit(step, _flip_hash)


def replace_hash(step: Step, data: bytes) -> MessageHook:
    """Send `data` as the HASH payload's content (a HASH_I or HASH(1) of the attacker's
    choosing, e.g. one computed with another key)."""

    def swap(payloads: list[Payload]) -> list[Payload]:
        return [Hash(data) if isinstance(p, Hash) else p for p in payloads]

    return _PayloadEdit(step, swap)


def oversize(step: Step, extra_bytes: int) -> MessageHook:
    """Append Vendor ID payloads of filler until `extra_bytes` more are sent."""

    def add_filler(payloads: list[Payload]) -> list[Payload]:
        remaining = extra_bytes
        while remaining > 0:
            size = min(remaining, 0xFFFF - 4)
            payloads.append(VendorId(bytes(size)))
            remaining -= size + 4
        return payloads

    return _PayloadEdit(step, add_filler)


def truncate(step: Step, keep: int) -> MessageHook:
    """Send only the first `keep` bytes of the message (header Length unchanged)."""
    return _WireEdit(step, lambda data: data[:keep])
