"""Builders: the validated configuration becomes the colleagues' objects."""
from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest

from responder.aaa.base import AuthRequest
from responder.aaa.local import LocalBackend
from responder.config import (build_dae_clients, build_domain_maps, build_esp_policy,
                              build_license_manager, build_local_users, build_nas_identity,
                              build_pool_manager, build_radius_groups,
                              build_responder_policy, ike_proposals, load_config,
                              parse_config, profile_limits)
from responder.config.algorithms import (IkeProposal, known_esp_transforms,
                                         parse_esp_transform, parse_ike_proposal)
from responder.config.identities import parse_identity
from responder.esp.transforms import lookup_transform
from responder.ikev1.enums import (AuthMethod, EncryptionAlgorithm, EspTransformId,
                                   GroupDescription, HashAlgorithm, IdType,
                                   IpsecAuthAlgorithm)
from responder.ikev1.policy import EspTransformSpec, Identity, IkeTransform, RuleAction
from responder.licenses import LicenseRefused

LAB = Path(__file__).parents[2] / "responder" / "examples" / "lab-default.yaml"


@pytest.fixture(scope="module")
def lab():
    return load_config(LAB)


# -- proposal strings ---------------------------------------------------------------------
def test_ike_proposal_string_parses_into_numbers():
    assert parse_ike_proposal("aes256-sha1-modp1024") == [IkeProposal(
        EncryptionAlgorithm.AES_CBC, 256, HashAlgorithm.SHA, GroupDescription.MODP_1024)]
    assert parse_ike_proposal("3des-md5-modp768") == [IkeProposal(
        EncryptionAlgorithm.TRIPLE_DES_CBC, None, HashAlgorithm.MD5, GroupDescription.MODP_768)]


def test_ike_proposal_with_several_of_a_kind_stands_for_every_combination():
    combos = parse_ike_proposal("aes256-aes128-sha256-modp2048-ecp256")
    assert len(combos) == 4
    assert IkeProposal(EncryptionAlgorithm.AES_CBC, 128, HashAlgorithm.SHA2_256,
                       GroupDescription.ECP_256) in combos


@pytest.mark.parametrize("text", known_esp_transforms())
def test_every_known_esp_transform_exists_in_the_esp_data_path(text):
    proposal = parse_esp_transform(text)
    lookup_transform(proposal.cipher, proposal.integrity, proposal.key_length)


def test_esp_transform_strings():
    assert parse_esp_transform("aes128gcm16").integrity is None
    assert parse_esp_transform("3DES-MD5").cipher == EspTransformId.TRIPLE_DES
    assert parse_esp_transform("aes256-sha256").integrity == IpsecAuthAlgorithm.HMAC_SHA2_256


# -- identities ---------------------------------------------------------------------------
def test_exact_identities_become_engine_identities():
    assert parse_identity("keyid:vr1", exact=True).to_identity() == Identity(IdType.KEY_ID, "vr1")
    assert parse_identity("email:a@b.c", exact=True).to_identity() == Identity(IdType.USER_FQDN, "a@b.c")
    assert parse_identity("ip:198.18.1.7", exact=True).to_identity() == Identity(IdType.IPV4_ADDR, "198.18.1.7")


@pytest.mark.parametrize("pattern, identity, matches", [
    ("fqdn:*.example.com", Identity(IdType.FQDN, "Host.EXAMPLE.com"), True),
    ("fqdn:*.example.com", Identity(IdType.USER_FQDN, "a.example.com"), False),
    ("keyid:vr*", Identity(IdType.KEY_ID, "vr2"), True),
    ("keyid:VR1", Identity(IdType.KEY_ID, "vr1"), False),  # key ids are exact (case too)
    ("ip:198.18.0.0/16", Identity(IdType.IPV4_ADDR, "198.18.1.7"), True),
    ("ip:198.18.0.0/16", Identity(IdType.IPV4_ADDR, "10.0.0.1"), False),
])
def test_profile_identity_patterns(pattern, identity, matches):
    assert parse_identity(pattern, exact=False).matches(identity) is matches


# -- the engine's policy ------------------------------------------------------------------
def test_phase1_policy_from_the_lab_proposals(lab):
    phase1 = build_responder_policy(lab).phase1
    assert (EncryptionAlgorithm.AES_CBC, 256) in phase1.encryption
    assert GroupDescription.MODP_1024 in phase1.groups  # vpnc and Android
    assert phase1.auth_methods == (AuthMethod.XAUTH_INIT_PSK, AuthMethod.PRE_SHARED_KEY)
    assert phase1.lifetime_seconds == 3 * 3600
    vpnc = IkeTransform(EncryptionAlgorithm.AES_CBC, 256, HashAlgorithm.SHA,
                        GroupDescription.MODP_1024, AuthMethod.XAUTH_INIT_PSK)
    assert phase1.allows(vpnc)
    assert not phase1.allows(IkeTransform(EncryptionAlgorithm.AES_CBC, 256, HashAlgorithm.MD5,
                                          GroupDescription.MODP_1024, AuthMethod.XAUTH_INIT_PSK))


def test_ike_proposals_keep_the_order_of_the_file(lab):
    first = ike_proposals(lab.ike)[0]
    assert (first.encryption, first.key_length, first.hash, first.group) == (
        EncryptionAlgorithm.AES_CBC, 256, HashAlgorithm.SHA2_256, GroupDescription.MODP_2048)


def test_psk_lookup_through_the_built_policy(lab):
    policy = build_responder_policy(lab)
    vr2 = Identity(IdType.KEY_ID, "vr2")
    assert policy.psk_for_identity(vr2, "198.18.0.1", "198.18.1.5") == b"psk-vr2"
    assert policy.psk_for_addresses("198.18.0.1", "198.18.1.5") == b"psk-vr1"
    assert policy.psk_for_addresses("203.0.113.1", "198.18.1.5") is None


def test_rules_timers_and_flags(lab):
    policy = build_responder_policy(lab)
    assert [r.action for r in policy.rules] == [RuleAction.ACCEPT, RuleAction.DENY]
    assert policy.peer_allowed("198.18.1.5") and not policy.peer_allowed("203.0.113.9")
    assert (policy.dpd.interval, policy.dpd.timeout) == (10.0, 30.0)
    assert policy.limits.max_half_open_per_peer == 8
    assert policy.retransmit.tries == 5
    assert policy.require_transaction and not policy.export_keys and not policy.force_encap


def test_esp_policy_of_a_profile(lab):
    esp = build_esp_policy(lab.profile("group-vr1"))
    assert esp.transforms[0] == EspTransformSpec(EspTransformId.AES_CBC, 256,
                                                 IpsecAuthAlgorithm.HMAC_SHA2_256)
    assert EspTransformSpec(EspTransformId.AES_GCM_16, 128, None) in esp.transforms
    assert esp.pfs_group is None and esp.lifetime_seconds == 3600


def test_dynamic_esp_is_the_union_of_the_profiles(lab):
    dynamic = build_responder_policy(lab).dynamic_esp
    every = {t for p in lab.tunnel_profiles for t in build_esp_policy(p).transforms}
    assert set(dynamic.transforms) == every


def _with_static_tunnel(tmp_path: Path):
    data = {
        "listen": [{"address": "192.0.2.1"}],
        "vrs": {"corp": {"netns": "corp"}},
        "tunnel_profiles": [{"name": "p", "vr": "corp"}],
        "licenses": {"ipsec_tunnel": 1, "subscriber": 1},
        "static_tunnels": [{"name": "branch", "peer": "198.51.100.7",
                            "secret_file": "branch.psk", "local_selector": "10.8.0.0/16",
                            "remote_selector": "10.60.0.0/24", "transforms": ["aes256-sha256"],
                            "pfs_group": "modp2048"}],
    }
    (tmp_path / "branch.psk").write_text("from-a-file\n")
    return parse_config(data, base_dir=tmp_path)


def test_static_tunnel_with_secret_file(tmp_path: Path):
    [tunnel] = build_responder_policy(_with_static_tunnel(tmp_path)).static_tunnels
    assert tunnel.secret == b"from-a-file"  # trailing newline is not part of the key
    assert str(tunnel.remote_selector) == "10.60.0.0/24"
    assert tunnel.esp.pfs_group == GroupDescription.MODP_2048


# -- pools, licenses, profiles ------------------------------------------------------------
def test_pool_manager(lab):
    pools = build_pool_manager(lab)
    sizes = {(s.vr, s.pool): s.size for s in pools.stats()}
    assert sizes == {("vr1", "main"): 253, ("vr2", "main"): 245}  # .0/.255 and .200 left out
    lease = pools.allocate("vr2", "main", owner=1)
    assert lease.address == ipaddress.IPv4Address("10.99.2.10")


def test_license_manager_and_profile_limits(lab):
    licenses = build_license_manager(lab)
    assert (licenses.tunnel.size, licenses.subscriber.size) == (300, 300)
    assert profile_limits(lab) == {"group-vr1": 200, "group-vr2": 200, "anyone": 50}


def test_zero_licenses_refuse(tmp_path: Path):
    cfg = parse_config({"listen": [{"address": "192.0.2.1"}], "vrs": {"c": {"netns": "c"}},
                        "tunnel_profiles": [{"name": "p", "vr": "c"}],
                        "licenses": {"ipsec_tunnel": 0, "subscriber": 5}})
    with pytest.raises(LicenseRefused):
        build_license_manager(cfg).acquire_both("sub-1")


# -- AAA ----------------------------------------------------------------------------------
def test_local_users_authenticate(lab):
    backend = LocalBackend(build_local_users(lab))
    granted = asyncio.run(backend.authenticate(AuthRequest("user006", b"pw-user006")))
    assert granted.granted and granted.virtual_router == "vr2" and granted.pool_name == "main"
    refused = backend.check(AuthRequest("user001", b"wrong"))
    assert not refused.granted


def test_radius_groups_nas_and_dae(lab):
    [group] = build_radius_groups(lab)
    assert group.name == "lab" and group.servers[0].secret == b"lab-radius-secret"
    assert group.servers[0].address == "10.255.0.2" and group.servers[0].acct_port == 1813
    nas = build_nas_identity(lab)
    assert str(nas.nas_ip) == "10.255.0.1" and nas.nas_identifier == "dlr"
    [client] = build_dae_clients(lab)
    assert client.address == "10.255.0.2" and client.secret == b"lab-radius-secret"


def test_domain_maps(lab):
    mapped = build_domain_maps(lab).map_user("user042@radius", None)
    assert mapped.username == "user042"  # strip_domain
    assert mapped.entry.backend == "radius" and mapped.entry.server_group == "lab"
