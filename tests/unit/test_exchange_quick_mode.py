"""Quick Mode responder (RFC 2409 §5.5), static vs dynamic rules."""

from responder.ikev1.enums import (
    AuthMethod,
    EncapsulationMode,
    EspTransformId,
    ExchangeType,
    IpsecAuthAlgorithm,
    NotifyType,
)
from responder.ikev1.events import Phase2Established
from responder.ikev1.exchanges.quick_mode import DefaultPhase2Provider
from responder.ikev1.payloads import Identification, Notification
from responder.ikev1.policy import (
    EspPolicy,
    PresharedKey,
    ResponderPolicy,
    Selector,
    StaticTunnel,
)
from responder.ikev1.vendor_ids import DPD

from clients.ikev1_initiator.stepwise import esp_transform, ike_transform
from clients.ikev1_initiator.pair import PSK, make_pair

VPNC_IDS = (Identification.ipv4_address("10.99.0.1"), Identification.ipv4_subnet("0.0.0.0/0"))
STATIC = StaticTunnel("site-a", peer="198.18.1.2", secret=PSK,
                      local_selector=Selector.parse("10.50.0.0/24"),
                      remote_selector=Selector.parse("192.168.7.0/24"))
STATIC_IDS = (Identification.ipv4_subnet("192.168.7.0/24"),
              Identification.ipv4_subnet("10.50.0.0/24"))


def established(policy=None, **kwargs):
    pair = make_pair(policy, **kwargs)
    pair.main_mode()
    return pair


def static_pair():
    """A phase 1 without the Xauth VID: only static tunnels."""
    pair = make_pair(ResponderPolicy(static_tunnels=(STATIC,)), initiator_kwargs=dict(
        vendor_ids=(DPD.data,), transforms=[ike_transform(auth=AuthMethod.PRE_SHARED_KEY)]))
    pair.main_mode(float_to=None)
    return pair


def expect_protected_notify(pair, data, notify_type):
    [reply] = pair.send(data)
    message = pair.initiator.read_informational(reply)
    assert message.first(Notification).notify_type == notify_type
    assert not pair.of_type(Phase2Established)


def test_quick_mode_without_pfs_vpnc_selectors():
    pair = established()
    run = pair.quick_mode(ids=VPNC_IDS)
    [child] = pair.of_type(Phase2Established)
    assert child.pfs_group is None and child.dynamic
    assert str(child.remote_selector) == "10.99.0.1/32"
    assert str(child.local_selector) == "0.0.0.0/0"
    # IDci/IDcr echoed exactly
    echoed = run.reply.payloads_of(Identification)
    assert [p.serialize() for p in echoed] == [p.serialize() for p in VPNC_IDS]
    assert child.inbound.encryption_key == run.keys.outbound.encryption_key


def test_quick_mode_with_pfs():
    pair = established()
    run = pair.quick_mode(pfs_group=14, ids=VPNC_IDS)
    [child] = pair.of_type(Phase2Established)
    assert child.pfs_group == 14
    assert child.outbound.encryption_key == run.keys.inbound.encryption_key


def test_pfs_group_required_by_policy():
    policy = ResponderPolicy(psks=(PresharedKey(PSK),), dynamic_esp=EspPolicy(pfs_group=14))
    pair = established(policy)
    _, data = pair.initiator.quick_mode_1(ids=VPNC_IDS)
    expect_protected_notify(pair, data, NotifyType.NO_PROPOSAL_CHOSEN)


def test_rekey_creates_second_child_old_one_stays():
    pair = established()
    pair.quick_mode(ids=VPNC_IDS)
    pair.quick_mode(ids=VPNC_IDS)
    first, second = pair.of_type(Phase2Established)
    assert second.rekey_of == first.child_id
    assert first.inbound.spi != second.inbound.spi
    assert len(pair.responder.sa(first.sa_id).children) == 2


def test_no_acceptable_esp_proposal():
    pair = established()
    _, data = pair.initiator.quick_mode_1(
        transforms=[esp_transform(cipher=EspTransformId.DES, key_length=None)], ids=VPNC_IDS)
    expect_protected_notify(pair, data, NotifyType.NO_PROPOSAL_CHOSEN)


def test_vpnc_twelve_proposals_skip_unsupported():
    # the client believes it is 192.168.1.5: a NAT in between, UDP modes allowed
    pair = established(initiator_kwargs=dict(natd_self=("192.168.1.5", 500)))
    transforms = [esp_transform(cipher=c, key_length=k, auth=a,
                                mode=EncapsulationMode.UDP_TUNNEL, lifetime=2147483)
                  for c, k in ((EspTransformId.NULL, None), (EspTransformId.AES_CBC, 256))
                  for a in (IpsecAuthAlgorithm.HMAC_MD5, IpsecAuthAlgorithm.HMAC_SHA)]
    run = pair.quick_mode(transforms=transforms, ids=VPNC_IDS)
    [child] = pair.of_type(Phase2Established)
    assert child.cipher == EspTransformId.AES_CBC and child.cipher_key_bits == 256
    assert child.integrity == IpsecAuthAlgorithm.HMAC_SHA
    assert child.udp_encapsulated and child.encapsulation_mode == 3
    # lifetime shortened: echoed as offered, RESPONDER-LIFETIME tells ours
    assert child.lifetime_seconds == 3600
    [notify] = run.reply.payloads_of(Notification)
    assert notify.notify_type == NotifyType.RESPONDER_LIFETIME


def test_udp_modes_refused_without_nat():
    pair = established()
    _, data = pair.initiator.quick_mode_1(
        transforms=[esp_transform(mode=EncapsulationMode.UDP_TUNNEL)], ids=VPNC_IDS)
    expect_protected_notify(pair, data, NotifyType.NO_PROPOSAL_CHOSEN)


def test_udp_modes_refused_without_natt():
    pair = make_pair(initiator_kwargs=dict(vendor_ids=(DPD.data, b"\x09\x00\x26\x89\xdf\xd6\xb7\x12")))
    pair.main_mode(float_to=None)
    _, data = pair.initiator.quick_mode_1(
        transforms=[esp_transform(mode=EncapsulationMode.UDP_TUNNEL)], ids=VPNC_IDS)
    expect_protected_notify(pair, data, NotifyType.NO_PROPOSAL_CHOSEN)


def test_static_phase1_matches_static_tunnel():
    pair = static_pair()
    pair.quick_mode(ids=STATIC_IDS)
    [child] = pair.of_type(Phase2Established)
    assert not child.dynamic


def test_static_phase1_cannot_negotiate_dynamic_phase2():
    pair = static_pair()
    _, data = pair.initiator.quick_mode_1(ids=VPNC_IDS)
    expect_protected_notify(pair, data, NotifyType.INVALID_ID_INFORMATION)


def test_dynamic_phase1_cannot_negotiate_static_phase2():
    policy = ResponderPolicy(psks=(PresharedKey(PSK),), static_tunnels=(STATIC,))
    rejected = []

    def only_assigned_address(sa, remote, local):
        rejected.append(str(remote))
        return str(remote) == "10.99.0.1/32"

    pair = make_pair(policy, responder_kwargs=dict(phase2_provider=DefaultPhase2Provider(
        policy.dynamic_esp, only_assigned_address)))
    pair.main_mode()
    _, data = pair.initiator.quick_mode_1(ids=STATIC_IDS)
    expect_protected_notify(pair, data, NotifyType.INVALID_ID_INFORMATION)
    assert rejected == ["192.168.7.0/24"]


def test_quick_mode_retransmission_same_reply():
    pair = established()
    run, data = pair.initiator.quick_mode_1(ids=VPNC_IDS)
    [reply] = pair.send(data)
    assert pair.send(data) == [reply]
    pair.initiator.handle_quick_mode_2(run, reply)
    assert pair.send(pair.initiator.quick_mode_3(run)) == []
    assert len(pair.of_type(Phase2Established)) == 1


def test_bad_hash1_gets_invalid_hash_information():
    pair = established()
    i = pair.initiator
    _, data = i.quick_mode_1(ids=VPNC_IDS)
    # flip one ciphertext bit in the last block: decrypts, HASH(1) fails
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    [reply] = pair.send(tampered)
    message = i.read_informational(reply)
    assert message.first(Notification).notify_type == NotifyType.INVALID_HASH_INFORMATION
    assert message.header.exchange_type == ExchangeType.INFORMATIONAL
