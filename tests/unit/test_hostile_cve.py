"""Public IKEv1 CVE patterns replayed against the engine in memory.

One test per pattern (Libreswan / strongSwan advisories and their
`testing/pluto/` / `fuzzer-ikev1-*` reproducers), each asserting what a user
of the gateway would see: no exception out of `receive_datagram`, no new or
changed state, the right notify or silence, and the refusal counted.

The helpers at the top (`raw`, `refusals`, `snapshot`, `established_pair`)
are shared with the other `test_hostile_*` modules and `bench/hostile_soak.py`.
"""

from __future__ import annotations

import pytest

from responder.ikev1.enums import (
    EncryptionAlgorithm,
    ExchangeType,
    GroupDescription,
    HashAlgorithm,
    HeaderFlag,
    IdType,
    NotifyType,
    PayloadType,
    ProtocolId,
)
from responder.ikev1.events import (
    Phase1Deleted,
    Phase1Established,
    Phase2Deleted,
    Phase2Established,
)
from responder.ikev1.message import Header, Message, serialize_with_body
from responder.ikev1.payloads import (
    Delete,
    Fragment,
    Hash,
    Identification,
    KeyExchange,
    Nonce,
    Notification,
    VendorId,
    serialize_payloads,
)

from responder.ikev1.policy import Identity, PresharedKey, ResponderPolicy

from clients.ikev1_initiator.stepwise import ike_transform
from clients.ikev1_initiator.pair import Pair, make_pair

INFO = ExchangeType.INFORMATIONAL
MM = ExchangeType.IDENTITY_PROTECTION
AM = ExchangeType.AGGRESSIVE
QM = ExchangeType.QUICK_MODE
ENC = HeaderFlag.ENCRYPTION


# ---------------------------------------------------------------- helpers
def raw(cky_i: bytes, cky_r: bytes, exchange: int, payloads, *, flags: int = 0, mid: int = 0,
        body: bytes | None = None, first: int | None = None) -> bytes:
    """A datagram built by hand: header + chained payloads (or a given body)."""
    chain_first, chain = serialize_payloads(payloads)
    return serialize_with_body(Header(cky_i, cky_r, exchange, flags, mid),
                               chain_first if first is None else first,
                               chain if body is None else body)


def refusals(responder) -> int:
    """Every counted drop or refusal (the names are the engine's business)."""
    return sum(v for k, v in responder.stats.items()
               if k.startswith(("dropped_", "error_")))


def snapshot(responder) -> dict:
    """What an unauthenticated datagram must not change, per SA."""
    out = {}
    for sa_id, sa in responder._by_id.items():
        out[sa_id] = dict(
            remote=sa.remote, local=sa.local, state=sa.state,
            established_at=sa.established_at, expires_at=sa.expires_at,
            last_activity=sa.last_activity, dpd_outstanding=sa.dpd_outstanding,
            dpd_sent_at=sa.dpd_sent_at, children=sorted(sa.children),
            quick_modes=sorted(sa.quick_modes), cookies=sa.cookies,
            half_open_deadline=sa.half_open_deadline)
    return out


def established_pair(*, child: bool = True, seed: int = 1, **kwargs) -> Pair:
    pair = make_pair(seed=seed, **kwargs)
    pair.main_mode()
    if child:
        pair.quick_mode()
    pair.advance(1.0)  # so that a bumped last_activity would show
    pair.collect()
    return pair


def notify_types(data_list) -> list[int]:
    """Notify types of unprotected replies."""
    out = []
    for data in data_list:
        message = Message.parse(data)
        assert not message.encrypted
        out += [int(n.notify_type) for n in message.payloads_of(Notification)]
    return out


def bad_hash_informational(initiator, payloads, mid: int = 0x0BADBAD1,
                           digest: bytes = bytes(20)) -> bytes:
    """A properly encrypted Informational whose HASH(1) is wrong."""
    first, body = serialize_payloads([Hash(digest), *payloads])
    ct = initiator.cipher.encrypt_informational(mid, body)
    return serialize_with_body(Header(initiator.cky_i, initiator.cky_r, INFO, ENC, mid),
                               first, ct)


def assert_untouched(pair: Pair, before: dict, refused_before: int, *, replies) -> None:
    assert replies == []
    assert snapshot(pair.responder) == before
    assert refusals(pair.responder) > refused_before
    assert not pair.of_type(Phase1Deleted) and not pair.of_type(Phase2Deleted)


# ------------------------------------------------------ CVE-2009-0790
def test_cve_2009_0790_dpd_r_u_there_on_unknown_sa_is_dropped():
    """Libreswan/Openswan crashed on an R-U-THERE for a state it did not have."""
    pair = established_pair()
    r, i = pair.responder, pair.initiator
    before, refused = snapshot(r), refusals(r)
    rut = Notification(NotifyType.R_U_THERE, spi=b"A" * 8 + b"B" * 8, data=(1).to_bytes(4, "big"))
    # encrypted-looking R-U-THERE on cookies nobody knows
    replies = pair.send(raw(b"A" * 8, b"B" * 8, INFO, [], flags=ENC, mid=7,
                            body=bytes(48), first=PayloadType.HASH))
    # the same in clear
    replies += pair.send(raw(b"A" * 8, b"B" * 8, INFO, [rut], mid=7))
    # in clear on the established SA's cookies: unauthenticated, not answered
    replies += pair.send(raw(i.cky_i, i.cky_r, INFO, [Notification(
        NotifyType.R_U_THERE, spi=i.cky_i + i.cky_r, data=(2).to_bytes(4, "big"))], mid=9))
    assert_untouched(pair, before, refused, replies=replies)
    assert r.stats["dropped_unknown_cookies"] == 2
    # and the real peer's R-U-THERE is still answered with the ACK
    [ack] = pair.send(i.r_u_there(3))
    assert i.read_informational(ack).first(Notification).notify_type == NotifyType.R_U_THERE_ACK


# ------------------------------------------------------ CVE-2015-3991
def test_cve_2015_3991_wrong_ike_version_headers_and_payloads():
    pair = established_pair()
    r, i = pair.responder, pair.initiator
    before, refused = snapshot(r), refusals(r)
    sa_count = r.sa_count
    probes = []
    for major_minor in (0x20, 0x11, 0x00, 0xF0):
        data = bytearray(raw(i.cky_i, i.cky_r, INFO, [Notification(
            NotifyType.R_U_THERE, spi=i.cky_i + i.cky_r, data=bytes(4))], mid=3))
        data[17] = major_minor
        probes.append(bytes(data))
        fresh = bytearray(raw(b"V" * 8, bytes(8), MM, [VendorId(b"v" * 16)]))
        fresh[17] = major_minor
        probes.append(bytes(fresh))
    # an IKEv2 IKE_SA_INIT (exchange 34, version 2.0, Initiator flag)
    v2 = bytearray(serialize_with_body(Header(b"2" * 8, bytes(8), 34, 0x08, 0), 33,
                                       bytes([0, 0, 0, 8, 0, 0, 0, 0])))
    v2[17] = 0x20
    probes.append(bytes(v2))
    replies = []
    for probe in probes:
        replies += pair.send(probe)
    assert replies == []
    assert snapshot(r) == before and r.sa_count == sa_count
    assert r.stats["dropped_malformed_header"] == len(probes)
    assert refusals(r) == refused + len(probes)


def test_cve_2015_3991_ikev2_payload_types_in_ikev1_message_1():
    """IKEv2 payload numbers (SA=33, KE=34, Nonce=40) in an IKEv1 header:
    INVALID_PAYLOAD_TYPE in clear, no SA left."""
    pair = make_pair()
    r = pair.responder
    for first in (33, 34, 40, 46):
        data = raw(bytes([first]) * 8, bytes(8), MM, [VendorId(b"x" * 16)], first=first)
        assert notify_types(pair.send(data)) == [NotifyType.INVALID_PAYLOAD_TYPE]
    assert r.sa_count == 0
    assert r.stats["error_INVALID_PAYLOAD_TYPE"] == 4


# ------------------------------------------------------ CVE-2019-10155
@pytest.mark.parametrize("what", ["delete_isakmp", "delete_esp", "r_u_there", "short_hash"])
def test_cve_2019_10155_informational_with_bad_hash_changes_nothing(what):
    """Libreswan went on processing an Informational whose integrity check
    failed. Here it must delete nothing, answer nothing, prove nothing."""
    pair = established_pair()
    r, i = pair.responder, pair.initiator
    child = pair.of_type(Phase2Established)[0]
    payloads = {
        "delete_isakmp": [Delete(ProtocolId.ISAKMP, [i.cky_i + i.cky_r])],
        "delete_esp": [Delete(ProtocolId.IPSEC_ESP, [child.inbound.spi, child.outbound.spi])],
        "r_u_there": [Notification(NotifyType.R_U_THERE, spi=i.cky_i + i.cky_r,
                                   data=(77).to_bytes(4, "big"))],
        "short_hash": [Delete(ProtocolId.ISAKMP, [i.cky_i + i.cky_r])],
    }[what]
    digest = b"\x01" if what == "short_hash" else bytes(20)
    before, refused = snapshot(r), refusals(r)
    replies = pair.send(bad_hash_informational(i, payloads, digest=digest), remote=("198.18.66.6", 4500))
    assert_untouched(pair, before, refused, replies=replies)
    # the SA still works: a verified Delete is honoured
    assert pair.send(i.delete_phase1()) == []
    assert [e.reason for e in pair.of_type(Phase1Deleted)] == ["peer-delete"]


# ------------------------------------------------------ CVE-2020-1763
def test_cve_2020_1763_bogus_encrypted_informational_without_state():
    """Libreswan dereferenced a missing state when logging a bogus encrypted
    Informational. Every stage without keys: dropped, silent."""
    pair = make_pair()
    r, i = pair.responder, pair.initiator
    junk = bytes(range(48))
    replies = pair.send(raw(b"Z" * 8, bytes(8), INFO, [], flags=ENC, body=junk,
                            first=PayloadType.HASH))
    replies += pair.send(raw(b"Z" * 8, b"Y" * 8, INFO, [], flags=ENC, mid=1, body=junk,
                             first=PayloadType.HASH))
    assert replies == [] and r.sa_count == 0
    assert r.stats["dropped_zero_cookie_not_phase1"] == 1
    assert r.stats["dropped_unknown_cookies"] == 1




def test_cve_2020_1763_bogus_encrypted_informational_on_half_open_sa_is_silent():
    """CVE-2009-0790 / CVE-2020-1763 on a half-open SA: after MM1 (no keys),
    after MM3 (keys, not established): dropped, unanswered, nothing moves,
    and the login goes on."""
    pair = make_pair()
    r, i = pair.responder, pair.initiator
    junk = bytes(range(48))
    [mm2] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(mm2)
    for step in ("after_mm1", "after_mm3"):
        before, refused = snapshot(r), refusals(r)
        replies = pair.send(raw(i.cky_i, i.cky_r, INFO, [], flags=ENC, mid=0x55, body=junk,
                                first=PayloadType.HASH))
        assert_untouched(pair, before, refused, replies=replies)
        if step == "after_mm1":
            [mm4] = pair.send(i.main_mode_3())
            i.handle_main_mode_4(mm4)
    [mm6] = pair.send(i.main_mode_5())
    i.handle_main_mode_6(mm6)
    assert pair.of_type(Phase1Established)


def test_cve_2020_1763_plaintext_informational_does_not_delete_half_open_sa():
    pair = make_pair()
    r, i = pair.responder, pair.initiator
    [mm2] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(mm2)
    before = snapshot(r)
    assert pair.send(raw(i.cky_i, i.cky_r, INFO, [Notification(
        NotifyType.NO_PROPOSAL_CHOSEN, spi=i.cky_i + i.cky_r)])) == []
    assert snapshot(r) == before


# ------------------------------------------------------ CVE-2023-30570
def test_cve_2023_30570_aggressive_no_proposal_then_reused_responder_cookie():
    """Libreswan crashed when an Aggressive Mode packet reused the SPI of an
    exchange it had just refused for lack of an acceptable proposal."""
    bad = [ike_transform(n, encryption=EncryptionAlgorithm.DES_CBC, key_length=None,
                         hash_alg=HashAlgorithm.MD5, group=GroupDescription.MODP_768)
           for n in (1, 2)]
    policy = ResponderPolicy(psks=(PresharedKey(b"grp-key", identity=Identity(IdType.KEY_ID,
                                                                               "grp")),))
    pair = make_pair(policy, initiator_kwargs=dict(identity=Identification.key_id("grp"),
                                                   transforms=bad))
    r, i = pair.responder, pair.initiator
    am1 = i.aggressive_1()
    [refusal] = pair.send(am1)
    message = Message.parse(refusal)
    assert [int(n.notify_type) for n in message.payloads_of(Notification)] == \
        [NotifyType.NO_PROPOSAL_CHOSEN]
    assert not message.payloads_of(Hash) and not message.payloads_of(KeyExchange)
    assert r.sa_count == 0
    cky_r = message.header.responder_cookie
    assert cky_r != bytes(8)
    # packets reusing the refused exchange's responder cookie: unknown, silent
    replies = []
    for exchange, flags in ((AM, 0), (AM, ENC), (INFO, 0), (INFO, ENC), (MM, 0), (QM, ENC)):
        body = bytes(32) if flags else None
        replies += pair.send(raw(i.cky_i, cky_r, exchange, [Hash(bytes(20))], flags=flags,
                                 mid=0 if exchange in (AM, MM) else 4, body=body,
                                 first=PayloadType.HASH))
    assert replies == [] and r.sa_count == 0
    assert r.stats["dropped_unknown_cookies"] == 6
    # the same AM1 again: refused again, still no state
    assert notify_types(pair.send(am1)) == [NotifyType.NO_PROPOSAL_CHOSEN]
    assert r.sa_count == 0 and r.stats["error_NO_PROPOSAL_CHOSEN"] == 2


# ------------------------------------------------------ CVE-2023-38711
@pytest.mark.parametrize("idcr", [
    Identification.fqdn("gw.example.net"),
    Identification(IdType.DER_ASN1_DN, b"\x30\x00"),
    Identification(IdType.DER_ASN1_GN, b"\x30\x00"),
    Identification.key_id("grp"),
    Identification.user_fqdn("a@b"),
    Identification(IdType.IPV4_ADDR, b"\x0a\x00"),          # short address
    Identification(IdType.IPV6_ADDR_SUBNET, bytes(8)),      # short subnet
    Identification(99, b"junk"),                            # unassigned type
], ids=lambda p: f"type{int(p.id_type)}-{len(p.data)}")
def test_cve_2023_38711_quick_mode_idcr_of_wrong_type(idcr):
    """Libreswan crashed on a Quick Mode IDcr that was no address selector."""
    pair = established_pair(child=False)
    r, i = pair.responder, pair.initiator
    sa_id = pair.of_type(Phase1Established)[0].sa_id
    run, data = i.quick_mode_1(ids=(Identification.ipv4_address("198.18.1.2"), idcr))
    [reply] = pair.send(data)
    assert i.read_informational(reply).first(Notification).notify_type == \
        NotifyType.INVALID_ID_INFORMATION
    assert not pair.of_type(Phase2Established)
    sa = r.sa(sa_id)
    assert sa is not None and sa.established and not sa.children and not sa.quick_modes
    assert r.stats["error_INVALID_ID_INFORMATION"] == 1
    pair.quick_mode()  # the SA is fine
    assert len(pair.of_type(Phase2Established)) == 1


def test_cve_2023_38711_retransmitted_refused_quick_mode_gets_the_same_refusal():
    """docs/ikev1-engine.md: a refused Quick Mode msg 1 keeps its notify in
    the reply cache (its message ID is used up)."""
    pair = established_pair(child=False)
    i = pair.initiator
    _, data = i.quick_mode_1(ids=(Identification.ipv4_address("198.18.1.2"),
                                  Identification(IdType.DER_ASN1_DN, b"\x30\x00")))
    notifies = []
    for _ in range(3):
        [reply] = pair.send(data)
        notifies.append(i.read_informational(reply).first(Notification).notify_type)
    assert notifies == [NotifyType.INVALID_ID_INFORMATION] * 3
    assert pair.responder.stats["retransmit_answered"] == 2


# ------------------------------------------------------ CVE-2023-38712
def test_cve_2023_38712_delete_then_notifies_on_the_deleted_sa():
    """Libreswan crashed on an Informational whose Delete was followed by
    further payloads acting on the just-deleted ISAKMP SA."""
    pair = established_pair()
    r, i = pair.responder, pair.initiator
    child = pair.of_type(Phase2Established)[0]
    cookies = i.cky_i + i.cky_r
    pair.send(i.informational([
        Delete(ProtocolId.ISAKMP, [cookies]),
        Delete(ProtocolId.ISAKMP, [cookies]),
        Notification(NotifyType.INITIAL_CONTACT, spi=cookies),
        Delete(ProtocolId.IPSEC_ESP, [child.outbound.spi]),
    ]))
    assert r.sa_count == 0
    assert [e.reason for e in pair.of_type(Phase1Deleted)] == ["peer-delete"]
    assert len(pair.of_type(Phase2Deleted)) == 1
    # later messages on the deleted SA: unknown cookies, silence
    refused = refusals(r)
    replies = pair.send(i.r_u_there(5)) + pair.send(i.delete_phase1())
    assert replies == [] and r.sa_count == 0
    assert r.stats["dropped_unknown_cookies"] == 2 and refusals(r) == refused + 2
    assert len(pair.of_type(Phase1Deleted)) == 1


def test_cve_2023_38712_no_ack_for_r_u_there_after_delete_in_same_message():
    pair = established_pair()
    r, i = pair.responder, pair.initiator
    cookies = i.cky_i + i.cky_r
    replies = pair.send(i.informational([
        Delete(ProtocolId.ISAKMP, [cookies]),
        Notification(NotifyType.R_U_THERE, spi=cookies, data=(9).to_bytes(4, "big")),
    ]))
    assert r.sa_count == 0
    assert replies == []


# ------------------------------------------------------ CVE-2013-6076
FRAGMENTS = [(0, 0, 0), (0, 0, Fragment.LAST_FRAGMENT), (0, 1, Fragment.LAST_FRAGMENT),
             (0, 255, 0), (1, 0, Fragment.LAST_FRAGMENT)]


def test_cve_2013_6076_fragment_id_zero_on_established_sa_is_dropped():
    """strongSwan 5.0.2-5.1.0 crashed on IKEv1 fragments with ID 0. We do no
    fragmentation: fragments on an SA are dropped, nothing changes."""
    pair = established_pair()
    r, i = pair.responder, pair.initiator
    before, refused = snapshot(r), refusals(r)
    replies = []
    for fid, number, flags in FRAGMENTS:
        for exchange in (MM, AM, INFO):
            replies += pair.send(raw(i.cky_i, i.cky_r, exchange,
                                     [Fragment(fid, number, b"\x00" * number, flags)]))
    assert_untouched(pair, before, refused, replies=replies)


@pytest.mark.parametrize("payloads", [
    [Fragment(0, 0, b"", 0)],
    [Fragment(0, 1, b"abc", Fragment.LAST_FRAGMENT)],
    [KeyExchange(bytes(256)), Nonce(bytes(32))],
], ids=["frag-id0-num0", "frag-id0-last", "ke-nonce"])
def test_cve_2013_6076_fragment_as_first_message_creates_no_sa(payloads):
    pair = make_pair()
    r = pair.responder
    replies = pair.send(raw(b"F" * 8, bytes(8), MM, payloads))
    assert notify_types(replies) in ([], [NotifyType.INVALID_PAYLOAD_TYPE],
                                     [NotifyType.PAYLOAD_MALFORMED])
    assert r.sa_count == 0


def test_cve_2023_38712_r_u_there_before_delete_gets_no_ack_on_the_deleted_sa():
    """Nothing is sent on an SA its peer deleted, also not the answer to a
    payload that came before the Delete in the same message."""
    pair = established_pair()
    r, i = pair.responder, pair.initiator
    cookies = i.cky_i + i.cky_r
    replies = pair.send(i.informational([
        Notification(NotifyType.R_U_THERE, spi=cookies, data=(9).to_bytes(4, "big")),
        Delete(ProtocolId.ISAKMP, [cookies]),
        Notification(NotifyType.INITIAL_CONTACT, spi=cookies),
    ]))
    assert replies == [] and r.sa_count == 0
    assert [e.reason for e in pair.of_type(Phase1Deleted)] == ["peer-delete"]
    assert not [e for e in pair.events if type(e).__name__ == "InitialContact"]
