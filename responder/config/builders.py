"""From the validated configuration to the objects the other modules take.

Thin on purpose: each builder maps fields one to one onto a colleague's constructor,
so that when their API moves only the mapping here moves. Nothing is validated here
(``load_config`` already did), nothing does I/O.
"""
from __future__ import annotations

from responder.aaa.base import DomainMapEntry, DomainMaps
from responder.aaa.dae import DaeClient
from responder.aaa.local import LocalUser
from responder.aaa.lockout import LockoutSettings
from responder.aaa.radius import NasIdentity, RadiusServer, ServerGroup
import responder.config.algorithms as algorithms
from responder.config.model import (IkeConfig, ResponderConfig, StaticTunnelConfig,
                                    TunnelProfile)
from responder.ikev1.policy import (DpdPolicy, EspPolicy, EspTransformSpec, IkeRule, Limits,
                                    Phase1Policy, PresharedKey, ResponderPolicy,
                                    RetransmitPolicy, RuleAction, Selector, StaticTunnel)
from responder.licenses import LicenseManager
from responder.pools import PoolManager


def _unique(items):
    return tuple(dict.fromkeys(items))


# -- IKE ----------------------------------------------------------------------------------
def ike_proposals(ike: IkeConfig) -> list[algorithms.IkeProposal]:
    """Every (encryption, key length, hash, group) the proposals stand for, in order."""
    return [p for text in ike.proposals for p in algorithms.parse_ike_proposal(text)]


def build_phase1_policy(ike: IkeConfig) -> Phase1Policy:
    """Phase1Policy accepts each attribute from an independent set, so the proposal
    strings are flattened into those sets: 'aes256-sha256-modp2048' plus
    '3des-sha1-modp1024' also accepts aes256-sha1-modp1024. Exact combinations are
    kept by :func:`ike_proposals` for when the policy can take them."""
    proposals = ike_proposals(ike)
    return Phase1Policy(
        encryption=_unique((p.encryption, p.key_length) for p in proposals),
        hashes=_unique(p.hash for p in proposals),
        groups=_unique(p.group for p in proposals),
        auth_methods=_unique(algorithms.parse_auth_method(m) for m in ike.auth_methods),
        lifetime_seconds=int(ike.lifetime),
        allow_aggressive=ike.aggressive_mode,
        allow_main=ike.main_mode,
    )


def build_esp_transforms(texts: list[str]) -> tuple[EspTransformSpec, ...]:
    return tuple(EspTransformSpec(p.cipher, p.key_length, p.integrity)
                 for p in map(algorithms.parse_esp_transform, texts))


def build_esp_policy(tunnel: TunnelProfile | StaticTunnelConfig) -> EspPolicy:
    """The phase 2 proposals of one profile or static tunnel."""
    return EspPolicy(
        transforms=build_esp_transforms(tunnel.transforms),
        pfs_group=algorithms.parse_dh_group(tunnel.pfs_group),
        lifetime_seconds=int(tunnel.lifetime.seconds),
        lifetime_kilobytes=tunnel.lifetime.kilobytes,
    )


def build_dynamic_esp_policy(cfg: ResponderConfig) -> EspPolicy:
    """ResponderPolicy has one ESP policy for all dynamic subscribers: the union of
    every profile's transforms (first profile's order first) with the first profile's
    PFS and lifetimes. Per-profile choice needs the engine to ask for the subscriber's
    profile at Quick Mode; :func:`build_esp_policy` gives that profile's policy."""
    first = build_esp_policy(cfg.tunnel_profiles[0])
    transforms = _unique(t for profile in cfg.tunnel_profiles
                         for t in build_esp_transforms(profile.transforms))
    return EspPolicy(transforms=transforms, pfs_group=first.pfs_group,
                     lifetime_seconds=first.lifetime_seconds,
                     lifetime_kilobytes=first.lifetime_kilobytes)


def build_psks(cfg: ResponderConfig) -> tuple[PresharedKey, ...]:
    return tuple(
        PresharedKey(secret=psk.secret_bytes(),
                     local=str(psk.local) if psk.local else None,
                     peer=str(psk.peer) if psk.peer else None,
                     identity=psk.identity.to_identity() if psk.identity else None)
        for psk in cfg.pre_shared_keys)


def build_ike_rules(cfg: ResponderConfig) -> tuple[IkeRule, ...]:
    return tuple(
        IkeRule(action=RuleAction(rule.action),
                peer=str(rule.peer) if rule.peer else None,
                identity=rule.identity.to_identity() if rule.identity else None,
                name=rule.name or f"rule {index}")
        for index, rule in enumerate(cfg.ike_policy_rules))


def build_static_tunnel(tunnel: StaticTunnelConfig) -> StaticTunnel:
    return StaticTunnel(
        name=tunnel.name, peer=str(tunnel.peer), secret=tunnel.secret_bytes(),
        local_selector=Selector(tunnel.local_selector),
        remote_selector=Selector(tunnel.remote_selector),
        local=str(tunnel.local) if tunnel.local else None,
        esp=build_esp_policy(tunnel))


def flood_limits(limits) -> dict:
    """The ``ike.limits`` fields of half-open admission and unproven sources
    (docs/operations.md "Floods"), named as in ``policy.Limits``."""
    return {name: getattr(limits, name) for name in (
        "max_half_open_per_prefix", "half_open_prefix_v4", "half_open_prefix_v6",
        "max_unproven_resends", "unauthenticated_notify_rate",
        "unauthenticated_notify_burst", "first_messages_per_s",
        "first_messages_per_prefix_per_s")}


def build_responder_policy(cfg: ResponderConfig) -> ResponderPolicy:
    """Everything the IKEv1 engine decides with, from the ``ike`` section, keys, rules
    and static tunnels."""
    ike = cfg.ike
    return ResponderPolicy(
        phase1=build_phase1_policy(ike),
        psks=build_psks(cfg),
        rules=build_ike_rules(cfg),
        default_action=RuleAction(ike.default_rule_action),
        static_tunnels=tuple(build_static_tunnel(t) for t in cfg.static_tunnels),
        dynamic_esp=build_dynamic_esp_policy(cfg),
        dpd=DpdPolicy(interval=ike.dpd.interval, timeout=ike.dpd.timeout,
                      enabled=ike.dpd.enabled),
        limits=Limits(max_half_open=ike.limits.max_half_open,
                      max_half_open_per_peer=ike.limits.max_half_open_per_peer,
                      half_open_timeout=ike.limits.half_open_timeout,
                      max_sas=ike.limits.max_sas,
                      max_sas_per_peer=ike.limits.max_sas_per_peer,
                      **flood_limits(ike.limits)),
        retransmit=RetransmitPolicy(timeout=ike.retransmit.timeout,
                                    backoff=ike.retransmit.backoff,
                                    tries=ike.retransmit.tries),
        force_encap=ike.force_encap,
        # Dynamic subscribers always go through Xauth before Quick Mode (SPEC step 4).
        require_transaction=True,
        export_keys=ike.key_export_file is not None,
        # Aggressive Mode only with a key bound to the peer's identity: a
        # HASH_R made with a Main Mode key would expose it to offline cracking
        aggressive_address_keys=False,
    )


# -- pools, licenses, profiles ------------------------------------------------------------
def build_pool_manager(cfg: ResponderConfig) -> PoolManager:
    manager = PoolManager()
    for vr, pools in cfg.pools.items():
        for name, pool in pools.items():
            manager.add_pool(vr, name, list(pool.ranges), list(pool.exclude))
    return manager


def build_license_manager(cfg: ResponderConfig) -> LicenseManager:
    return LicenseManager(tunnel_licenses=cfg.licenses.ipsec_tunnel,
                          subscriber_licenses=cfg.licenses.subscriber)


def profile_limits(cfg: ResponderConfig) -> dict[str, int]:
    """max-interfaces per profile, for ``SubscriberTable(profile_limits=...)``."""
    return {p.name: p.max_interfaces for p in cfg.tunnel_profiles if p.max_interfaces}


# -- AAA ----------------------------------------------------------------------------------
def build_local_users(cfg: ResponderConfig) -> list[LocalUser]:
    return [
        LocalUser.from_config(
            name, user.password.get_secret_value(),
            address=str(user.address) if user.address else None,
            netmask=str(user.netmask) if user.netmask else None,
            pool=user.pool, virtual_router=user.vr,
            dns=[str(a) for a in user.dns], wins=[str(a) for a in user.wins],
            session_timeout=_whole_seconds(user.session_timeout),
            idle_timeout=_whole_seconds(user.idle_timeout))
        for name, user in cfg.aaa.local_users.items()]


def _whole_seconds(value: float | None) -> int | None:
    return None if value is None else int(value)


def build_radius_groups(cfg: ResponderConfig) -> list[ServerGroup]:
    """Server groups in file order; the default group first, since the RADIUS client
    falls back to a group when a request names none."""
    radius = cfg.aaa.radius
    if radius is None:
        return []
    groups = [
        ServerGroup(name=name, dead_time=group.dead_time, servers=tuple(
            RadiusServer(address=str(s.address), secret=s.secret_bytes(),
                         auth_port=s.auth_port, acct_port=s.acct_port, timeout=s.timeout,
                         retries=s.retries,
                         require_message_authenticator=s.require_message_authenticator)
            for s in group.servers))
        for name, group in radius.server_groups.items()]
    default = radius_default_group(cfg)
    return sorted(groups, key=lambda g: g.name != default)


def radius_default_group(cfg: ResponderConfig) -> str | None:
    radius = cfg.aaa.radius
    if radius is None:
        return None
    return radius.default_group or next(iter(radius.server_groups))


def build_nas_identity(cfg: ResponderConfig) -> NasIdentity:
    radius = cfg.aaa.radius
    if radius is None:
        return NasIdentity()
    return NasIdentity(nas_ip=radius.nas_ip, nas_identifier=radius.nas_identifier)


def build_domain_maps(cfg: ResponderConfig) -> DomainMaps:
    return DomainMaps([
        DomainMapEntry(domain=domain, backend=entry.method, server_group=entry.server_group,
                       virtual_router=entry.vr, strip_domain=entry.strip_domain)
        for domain, entry in cfg.aaa.domain_maps.items()])


def build_dae_clients(cfg: ResponderConfig) -> list[DaeClient]:
    if cfg.aaa.dae is None:
        return []
    return [DaeClient(address=str(c.address), secret=c.secret_bytes(), name=c.name)
            for c in cfg.aaa.dae.clients]


def build_lockout_settings(cfg: ResponderConfig) -> LockoutSettings:
    lockout = cfg.aaa.lockout
    return LockoutSettings(enabled=lockout.enabled, max_failures=lockout.max_failures,
                           max_source_failures=lockout.max_source_failures,
                           window=lockout.window, duration=lockout.duration,
                           backoff_base=lockout.backoff_base, backoff_max=lockout.backoff_max,
                           max_entries=lockout.max_entries)
