"""Policy lookups, proposal choice and NAT-T helpers (pure functions)."""

import pytest

from responder.ikev1.crypto.prf import hash_algorithm
from responder.ikev1.enums import EncapsulationMode, IdType
from responder.ikev1.natt import (
    NatStatus,
    accepted_encapsulation_modes,
    build_natd_hashes,
    detect_nat,
    floats_to_4500,
    natd_payload_type,
)
from responder.ikev1.policy import (
    EspPolicy,
    Identity,
    IkeRule,
    Phase1Policy,
    PresharedKey,
    ResponderPolicy,
    RuleAction,
    Selector,
    StaticTunnel,
)
from responder.ikev1.proposals import (
    NoProposalChosen,
    OfferedProposal,
    OfferedTransform,
    choose_esp,
    choose_phase1,
)
from responder.ikev1.vendor_ids import NattVersion


def ike(number, enc, keylen, hash_, group, auth, life=None):
    attrs = [(1, enc)] + ([(14, keylen)] if keylen else []) + [(2, hash_), (4, group), (3, auth)]
    if life:
        attrs += [(11, 1), (12, life.to_bytes(4, "big"))]
    return OfferedTransform(number, 1, tuple(attrs))


def esp(number, cipher=12, keylen=128, auth=2, mode=1, group=None, life=None, kb=None):
    attrs = [(4, mode), (5, auth)] + ([(6, keylen)] if keylen else [])
    if group:
        attrs.append((3, group))
    if life:
        attrs += [(1, 1), (2, life)]
    if kb:
        attrs += [(1, 2), (2, kb)]
    return OfferedTransform(number, cipher, tuple(attrs))


def isakmp_proposal(*transforms):
    return OfferedProposal(1, 1, b"", tuple(transforms))


# ------------------------------------------------------------------ PSKs
def test_main_mode_psk_prefers_peer_match_over_local_and_wildcard():
    policy = ResponderPolicy(psks=(
        PresharedKey(b"any"), PresharedKey(b"local", local="198.18.0.1"),
        PresharedKey(b"peer", peer="198.18.1.0/24"), PresharedKey(b"host", peer="198.18.1.2"),
        PresharedKey(b"by-id", identity=Identity(IdType.KEY_ID, "g"))))
    assert policy.psk_for_addresses("198.18.0.1", "198.18.1.2") == b"host"
    assert policy.psk_for_addresses("198.18.0.1", "198.18.1.9") == b"peer"
    assert policy.psk_for_addresses("198.18.0.1", "10.0.0.1") == b"local"
    assert policy.psk_for_addresses("198.18.0.2", "10.0.0.1") == b"any"


def test_main_mode_never_uses_identity_keys():
    policy = ResponderPolicy(psks=(PresharedKey(b"by-id", identity=Identity(IdType.KEY_ID, "g")),))
    assert policy.psk_for_addresses("198.18.0.1", "198.18.1.2") is None


def test_aggressive_mode_psk_by_identity_and_server_address():
    group = Identity(IdType.KEY_ID, "vpngroup")
    policy = ResponderPolicy(psks=(
        PresharedKey(b"a", identity=group, local="198.18.0.1"),
        PresharedKey(b"b", identity=group, local="198.18.0.2"),
        PresharedKey(b"fqdn", identity=Identity(IdType.FQDN, "Client.Example"))))
    assert policy.psk_for_identity(group, "198.18.0.2", "1.2.3.4") == b"b"
    assert policy.psk_for_identity(Identity(IdType.FQDN, "client.example"), "198.18.0.9",
                                   "1.2.3.4") == b"fqdn"
    assert policy.psk_for_identity(Identity(IdType.KEY_ID, "VPNGROUP"), "198.18.0.1",
                                   "1.2.3.4") is None  # key ids are exact


def test_static_tunnel_key_is_found_by_peer_address():
    tunnel = StaticTunnel("t", peer="203.0.113.7", secret=b"tunnel",
                          local_selector=Selector.parse("10.0.0.0/8"),
                          remote_selector=Selector.parse("192.168.0.0/16"))
    policy = ResponderPolicy(psks=(PresharedKey(b"any"),), static_tunnels=(tunnel,))
    assert policy.psk_for_addresses("198.18.0.1", "203.0.113.7") == b"tunnel"
    assert policy.psk_for_addresses("198.18.0.1", "203.0.113.8") == b"any"


# ------------------------------------------------------------------ rules
def test_rules_first_match_and_identity_deferred():
    bad = Identity(IdType.KEY_ID, "blocked")
    policy = ResponderPolicy(rules=(
        IkeRule(RuleAction.DENY, identity=bad),
        IkeRule(RuleAction.DENY, peer="10.0.0.0/8"),
        IkeRule(RuleAction.ACCEPT, peer="10.1.0.0/16")))
    assert policy.peer_allowed("198.18.1.2")
    assert not policy.peer_allowed("10.1.2.3")  # first address match is deny
    assert not policy.identity_allowed("198.18.1.2", bad)
    assert policy.identity_allowed("198.18.1.2", Identity(IdType.KEY_ID, "ok"))


def test_default_deny_keeps_identity_accept_rules_open():
    good = Identity(IdType.FQDN, "good.example")
    policy = ResponderPolicy(default_action=RuleAction.DENY,
                             rules=(IkeRule(RuleAction.ACCEPT, identity=good),))
    assert policy.peer_allowed("1.2.3.4")  # undecided until the identity is known
    assert policy.identity_allowed("1.2.3.4", good)
    assert not policy.identity_allowed("1.2.3.4", Identity(IdType.FQDN, "bad.example"))


# ------------------------------------------------------------------ phase 1 choice
def test_vpnc_style_list_skips_encryption_zero_and_unsupported():
    proposal = isakmp_proposal(
        ike(0, 0, None, 2, 2, 65001),  # vpnc's bogus encryption id 0
        ike(1, 1, None, 2, 2, 65001),  # DES: not supported
        ike(2, 7, 256, 2, 2, 65001, life=2147483),
        ike(3, 7, 128, 1, 2, 1))
    choice = choose_phase1([proposal], Phase1Policy())
    assert choice.transform.number == 2
    assert choice.ike.describe() == "AES_CBC-256/SHA/MODP_1024/XAUTH_INIT_PSK"
    assert choice.ike.lifetime_seconds == 2147483
    assert choice.lifetime_seconds == Phase1Policy().lifetime_seconds  # ours is shorter


def test_phase1_policy_restricts_groups_and_unknown_attributes_skip():
    proposal = isakmp_proposal(ike(1, 7, 256, 2, 2, 1),
                               OfferedTransform(2, 1, ((1, 7), (14, 128), (2, 2), (4, 14), (3, 1),
                                                       (99, 1))),
                               ike(3, 7, 128, 2, 14, 1))
    choice = choose_phase1([proposal], Phase1Policy(groups=(14,)))
    assert choice.transform.number == 3
    with pytest.raises(NoProposalChosen):
        choose_phase1([proposal], Phase1Policy(groups=(19,)))


def test_aggressive_mode_transform_must_fit_ke_length():
    proposal = isakmp_proposal(ike(1, 7, 256, 2, 2, 1), ike(2, 7, 256, 2, 14, 1))
    assert choose_phase1([proposal], Phase1Policy(), ke_length=256).transform.number == 2
    assert choose_phase1([proposal], Phase1Policy(), ke_length=128).transform.number == 1


# ------------------------------------------------------------------ ESP choice
def esp_proposal(number, *transforms, spi=b"\x01\x02\x03\x04", protocol=3):
    return OfferedProposal(number, protocol, spi, tuple(transforms))


def test_esp_choice_lifetimes_and_responder_lifetime():
    policy = EspPolicy(lifetime_seconds=3600, lifetime_kilobytes=1000)
    choice = choose_esp([esp_proposal(1, esp(1, life=7200, kb=5000))], policy,
                        allowed_modes=(1,), pfs=False)
    assert (choice.lifetime_seconds, choice.lifetime_kilobytes) == (3600, 1000)
    assert choice.responder_lifetime
    shorter = choose_esp([esp_proposal(1, esp(1, life=600, kb=10))], policy,
                         allowed_modes=(1,), pfs=False)
    assert (shorter.lifetime_seconds, shorter.lifetime_kilobytes) == (600, 10)
    assert not shorter.responder_lifetime


def test_esp_bundles_and_bad_spi_are_skipped():
    ah_esp = [esp_proposal(1, esp(1), protocol=2), esp_proposal(1, esp(1))]
    bad_spi = esp_proposal(2, esp(1), spi=b"\x01")
    good = esp_proposal(3, esp(1, keylen=256))
    choice = choose_esp(ah_esp + [bad_spi, good], EspPolicy(), allowed_modes=(1,), pfs=False)
    assert choice.proposal.number == 3


def test_esp_pfs_must_match_ke_presence():
    with_group = esp_proposal(1, esp(1, group=14))
    without = esp_proposal(2, esp(1))
    assert choose_esp([with_group, without], EspPolicy(), allowed_modes=(1,),
                      pfs=True).proposal.number == 1
    assert choose_esp([with_group, without], EspPolicy(), allowed_modes=(1,),
                      pfs=False).proposal.number == 2


# ------------------------------------------------------------------ NAT-T
def test_encapsulation_modes_by_natt_version():
    nat = NatStatus(False, True)
    assert accepted_encapsulation_modes(None, nat) == (1,)
    assert accepted_encapsulation_modes(NattVersion.RFC3947, NatStatus(False, False)) == (1,)
    assert accepted_encapsulation_modes(NattVersion.RFC3947, nat) == (1, 3)
    # drafts: 61443, and 3 as vpnc proposes it anyway
    assert set(accepted_encapsulation_modes(NattVersion.DRAFT_02N, nat)) == \
        {1, 3, EncapsulationMode.UDP_TUNNEL_DRAFT}
    assert natd_payload_type(NattVersion.RFC3947) == 20
    assert natd_payload_type(NattVersion.DRAFT_03) == 130
    assert not floats_to_4500(NattVersion.DRAFT_01) and floats_to_4500(NattVersion.DRAFT_02)


def test_natd_detection_both_sides():
    sha1 = hash_algorithm(2)
    ci, cr = b"\x01" * 8, b"\x02" * 8
    server, client = ("198.18.0.1", 500), ("198.18.1.2", 500)
    # what an un-NATed client sends: [server, client]
    clean = build_natd_hashes(sha1, ci, cr, local=client, remote=server)
    assert detect_nat(sha1, ci, cr, clean, local=server, remote=client) == NatStatus(False, False)
    natted = build_natd_hashes(sha1, ci, cr, local=("10.0.0.5", 500), remote=server)
    assert detect_nat(sha1, ci, cr, natted, local=server, remote=client).peer_behind_nat
    forced = detect_nat(sha1, ci, cr, clean, local=server, remote=client, force_encap=True)
    assert forced.local_behind_nat and forced.faked
