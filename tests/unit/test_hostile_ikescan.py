"""ike-scan's probes against the engine in memory.

The datagrams are built the way ike-scan 1.9 builds them (ike-scan.c,
isakmp.c): Main Mode with the default eight transforms (3DES/DES x SHA1/MD5 x
MODP-1024/768, PSK, 28800 s as a 4-byte TLV), no vendor IDs; `--aggressive
--id=...` with KE for group 2 (128 bytes), a 20-byte nonce and ID_USER_FQDN;
the options that bend the packet (`--headerlen`, `--mbz`, `--spisize`,
`--doi`, `--situation`, `--exchange`); and the retries / `--showbackoff`
pattern (the same probe again, then silence while the gateway's resends are
timed). A gateway answers the good probe like strongSwan does, refuses the
others with one cleartext notify or silence, and keeps no state for them.
"""

from __future__ import annotations

import struct

import pytest

from responder.ikev1.enums import (
    ExchangeType,
    IdType,
    NotifyType,
    PayloadType,
)
from responder.ikev1.message import Message
from responder.ikev1.payloads import (
    DataAttribute,
    Hash,
    Identification,
    KeyExchange,
    Nonce,
    Notification,
    Proposal,
    SecurityAssociation,
    Transform,
    VendorId,
    serialize_payloads,
)
from responder.ikev1.policy import Identity, PresharedKey, ResponderPolicy

from clients.ikev1_initiator.pair import PSK, make_pair
from tests.unit.test_hostile_cve import notify_types, raw

MM = ExchangeType.IDENTITY_PROTECTION
AM = ExchangeType.AGGRESSIVE

#: ike-scan's default transform set, in its order: (enc, hash, auth, group)
IKE_SCAN_DEFAULT = [(5, 2, 1, 2), (5, 1, 1, 2), (1, 2, 1, 2), (1, 1, 1, 2),
                    (5, 2, 1, 1), (5, 1, 1, 1), (1, 2, 1, 1), (1, 1, 1, 1)]
GROUP = Identity(IdType.KEY_ID, "vpngroup")


def ike_scan_transform(number: int, enc: int, hash_alg: int, auth: int, group: int) -> Transform:
    return Transform(number=number, transform_id=1, attributes=[
        DataAttribute.tv(1, enc), DataAttribute.tv(2, hash_alg), DataAttribute.tv(3, auth),
        DataAttribute.tv(4, group), DataAttribute.tv(11, 1),
        DataAttribute.tlv(12, struct.pack("!I", 28800))])


def ike_scan_sa(transforms=IKE_SCAN_DEFAULT, spi: bytes = b"") -> SecurityAssociation:
    return SecurityAssociation(proposals=[Proposal(1, 1, spi, [
        ike_scan_transform(n + 1, *t) for n, t in enumerate(transforms)])])


def main_mode_probe(cookie: bytes = b"ikescan1", **kw) -> bytes:
    return raw(cookie, bytes(8), MM, [ike_scan_sa(**kw)])


def aggressive_probe(identity: str, cookie: bytes = b"ikescanA") -> bytes:
    return raw(cookie, bytes(8), AM, [
        ike_scan_sa(), KeyExchange(bytes([0x5A]) * 128), Nonce(bytes(range(20))),
        Identification(IdType.USER_FQDN, identity.encode())])


def test_default_main_mode_probe_is_answered_like_a_gateway():
    pair = make_pair()
    r = pair.responder
    probe = main_mode_probe()
    [reply] = pair.send(probe)
    message = Message.parse(reply)
    assert message.header.exchange_type == MM
    assert message.header.initiator_cookie == b"ikescan1"
    assert message.header.responder_cookie != bytes(8)
    [proposal] = message.first(SecurityAssociation).proposals
    # the first acceptable transform, echoed as offered (3DES-SHA1-PSK-MODP1024)
    assert [t.serialize() for t in proposal.transforms] == \
        [ike_scan_transform(1, *IKE_SCAN_DEFAULT[0]).serialize()]
    assert not message.payloads_of(KeyExchange) and not message.payloads_of(Hash)
    assert r.sa_count == 1 and r.stats["phase1_started"] == 1


def test_only_unacceptable_transforms_get_no_proposal_chosen():
    pair = make_pair()
    # ike-scan --trans=1,1,1,1 (DES-MD5-PSK-MODP768) only
    assert notify_types(pair.send(main_mode_probe(transforms=[(1, 1, 1, 1)]))) == \
        [NotifyType.NO_PROPOSAL_CHOSEN]
    assert pair.responder.sa_count == 0


def test_retries_and_showbackoff_on_main_mode():
    """ike-scan's retries are the identical probe: the same reply, one SA.
    `--showbackoff` then waits: Main Mode msg 2 is never resent, the half-open
    SA is gone after the half-open timeout."""
    pair = make_pair()
    r = pair.responder
    probe = main_mode_probe()
    [first] = pair.send(probe)
    for _ in range(3):
        assert pair.send(probe) == [first]
    assert r.sa_count == 1 and r.stats["retransmit_answered"] == 3
    assert pair.advance(r.policy.limits.half_open_timeout + 1) == []
    assert r.sa_count == 0 and r.stats["half_open_timeout"] == 1
    # a later probe with the same cookie starts afresh
    [again] = pair.send(probe)
    assert Message.parse(again).header.responder_cookie != Message.parse(first).header.responder_cookie


def test_showbackoff_on_aggressive_mode_sees_no_resend():
    """`--showbackoff` waits for resends of AM msg 2: there are none (a
    spoofed source must not make the gateway send more than it got); the
    half-open SA goes at the half-open timeout."""
    policy = ResponderPolicy(psks=(PresharedKey(PSK, identity=GROUP),))
    pair = make_pair(policy)
    r = pair.responder
    probe = raw(b"ikescanB", bytes(8), AM, [
        ike_scan_sa(), KeyExchange(bytes([0x5A]) * 128), Nonce(bytes(range(20))),
        Identification.key_id("vpngroup")])
    [am2] = pair.send(probe)
    assert Message.parse(am2).first(Hash) is not None
    assert pair.advance(300) == []
    assert r.sa_count == 0 and r.stats["half_open_timeout"] == 1


def test_aggressive_unknown_group_only_group_keys_is_refused_without_hash():
    """ike-scan --aggressive --id=nosuchgroup: AUTHENTICATION_FAILED in clear,
    nothing to attack offline."""
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK, identity=GROUP),)))
    replies = pair.send(aggressive_probe("nosuchgroup"))
    assert notify_types(replies) == [NotifyType.AUTHENTICATION_FAILED]
    message = Message.parse(replies[0])
    assert not message.payloads_of(Hash) and not message.payloads_of(KeyExchange)
    assert pair.responder.sa_count == 0


def test_aggressive_unknown_group_gets_no_hash_when_a_main_mode_key_exists():
    policy = ResponderPolicy(psks=(PresharedKey(b"main-mode-key"),
                                   PresharedKey(PSK, identity=GROUP)))
    pair = make_pair(policy)
    replies = pair.send(aggressive_probe("nosuchgroup"))
    for reply in replies:
        message = Message.parse(reply)
        assert not message.payloads_of(Hash) and not message.payloads_of(KeyExchange)
    assert notify_types(replies) == [NotifyType.AUTHENTICATION_FAILED]
    assert pair.responder.sa_count == 0


def _header_len(delta):
    def bend(data: bytes) -> bytes:
        return data[:24] + struct.pack("!I", len(data) + delta) + data[28:]
    return bend


def _set_byte(offset: int, value: int):
    def bend(data: bytes) -> bytes:
        return data[:offset] + bytes([value]) + data[offset + 1:]
    return bend


# offsets in the default probe: header 28, SA payload header 4, DOI 4, situation 4,
# proposal header 4 + (#, proto, spi size, count), transform header 4 + (#, id, 2 reserved)
SA_AT = 28
BENT = {
    "headerlen+4": _header_len(4),
    "headerlen-4": _header_len(-4),
    "headerlen=0": lambda d: d[:24] + bytes(4) + d[28:],
    "mbz-sa-reserved": _set_byte(SA_AT + 1, 0xFF),
    "mbz-proposal-reserved": _set_byte(SA_AT + 12 + 1, 0xFF),
    "mbz-transform-reserved": _set_byte(SA_AT + 20 + 4 + 2, 0xFF),
    "doi=2": _set_byte(SA_AT + 7, 2),
    "situation=2": _set_byte(SA_AT + 11, 2),
    "spisize=255": _set_byte(SA_AT + 12 + 6, 255),
    "proposal-count=0": _set_byte(SA_AT + 12 + 7, 0),
    "proposal-count=255": _set_byte(SA_AT + 12 + 7, 255),
    "exchange=1-base": _set_byte(18, 1),
    "exchange=3-auth-only": _set_byte(18, 3),
    "exchange=6-transaction": _set_byte(18, 6),
    "exchange=32-quick": _set_byte(18, 32),
    "exchange=255": _set_byte(18, 255),
    "flags=encrypted": _set_byte(19, 1),
    "flags=commit": _set_byte(19, 2),
    "flags=all": _set_byte(19, 0xFF),
    "message-id": lambda d: d[:20] + b"\xde\xad\xbe\xef" + d[24:],
    "nextpayload=none": _set_byte(16, 0),
    "nextpayload=proposal": _set_byte(16, 2),
    "truncated": lambda d: d[:-7],
}


@pytest.mark.parametrize("bend", list(BENT), ids=list(BENT))
def test_bent_ike_scan_probes_are_refused_or_answered_never_crash(bend):
    pair = make_pair()
    r = pair.responder
    data = BENT[bend](main_mode_probe(cookie=b"bent" + bend[:4].encode()))
    replies = pair.send(data)  # must not raise
    assert len(replies) <= 1
    if replies and Message.parse(replies[0]).header.exchange_type == MM:
        # accepted as Main Mode msg 1: a normal MM2, one half-open SA
        assert Message.parse(replies[0]).first(SecurityAssociation) is not None
        assert r.sa_count == 1
    else:
        assert r.sa_count == 0, f"{bend}: refused, but an SA is left"
        assert len(notify_types(replies)) == len(replies)
        assert sum(v for k, v in r.stats.items() if k.startswith(("dropped_", "error_"))) == 1


def test_vendor_id_flood_probe():
    """ike-scan --vendor repeated: many VIDs, answered once, one SA."""
    pair = make_pair()
    data = raw(b"vidflood", bytes(8), MM, [ike_scan_sa(),
                                           *[VendorId(bytes([n]) * 16) for n in range(60)]])
    replies = pair.send(data)
    assert len(replies) == 1
    assert pair.responder.sa_count <= 1


def test_many_probes_from_one_source_hit_the_half_open_limit():
    """ike-scan against one gateway with --retry and many cookies: the
    per-peer half-open limit holds, the rest is dropped and counted."""
    pair = make_pair()
    r = pair.responder
    limit = r.policy.limits.max_half_open_per_peer
    answered = 0
    for n in range(limit + 5):
        answered += len(pair.send(main_mode_probe(cookie=struct.pack("!Q", n + 1))))
    assert answered == limit and r.sa_count == limit
    assert r.stats["dropped_half_open_peer_limit"] == 5
