"""Checks that need more than one value: references between sections, overlaps,
ambiguities. Each returns problem lines ``<key path>: <what is wrong>``.

Every check declares the key paths it reads; when a value there failed schema
validation the check is skipped (a broken ``vrs`` section would otherwise make every
profile's VR "not defined", a broken ``aaa.radius`` would look like a missing one). :func:`config_warnings` lists what is allowed but risky.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator

from responder import pools as pool_module
from responder.config.algorithms import suggest, weak_tokens
from responder.config.model import PoolConfig, ResponderConfig

Check = Callable[[ResponderConfig], Iterable[str]]


def _known(name: str, names: Iterable[str]) -> str:
    names = sorted(names)
    return f"{suggest(name, names)} (defined: {', '.join(names) or 'none'})"


def _duplicates(values: list) -> Iterator[tuple[int, object]]:
    seen = set()
    for index, value in enumerate(values):
        if value in seen:
            yield index, value
        seen.add(value)


# -- listen -------------------------------------------------------------------------------
def check_listen(cfg: ResponderConfig) -> Iterator[str]:
    for index, address in _duplicates([entry.address for entry in cfg.listen]):
        yield f"listen[{index}].address: {address} is listed twice"
    for index, entry in enumerate(cfg.listen):
        if entry.ike_port == entry.natt_port:
            yield f"listen[{index}].natt_port: same port as ike_port ({entry.ike_port})"


def check_listen_default_profiles(cfg: ResponderConfig) -> Iterator[str]:
    profiles = {p.name: p for p in cfg.tunnel_profiles}
    for index, entry in enumerate(cfg.listen):
        name = entry.default_profile
        if name is None:
            continue
        if name not in profiles:
            yield (f"listen[{index}].default_profile: profile {name!r} is not defined"
                   f"{_known(name, profiles)}")
            continue
        local = profiles[name].match.local_addresses
        if local and entry.address not in local:
            yield (f"listen[{index}].default_profile: profile {name!r} does not match local "
                   f"address {entry.address}")


def _listen_addresses(cfg: ResponderConfig) -> set[ipaddress.IPv4Address]:
    return {entry.address for entry in cfg.listen}


def _not_listening(cfg: ResponderConfig, address: ipaddress.IPv4Address) -> str:
    listening = ", ".join(sorted(str(a) for a in _listen_addresses(cfg)))
    return f"{address} is not a listen address (listen: {listening})"


# -- VRs and pools ------------------------------------------------------------------------
def check_vrs(cfg: ResponderConfig) -> Iterator[str]:
    seen: dict[str, str] = {}
    for name, vr in cfg.vrs.items():
        if vr.netns in seen:
            yield (f"vrs.{name}.netns: {vr.netns!r} is already the namespace of VR "
                   f"{seen[vr.netns]!r}; each VR needs its own")
        seen.setdefault(vr.netns, name)


def check_pool_vrs(cfg: ResponderConfig) -> Iterator[str]:
    for vr in cfg.pools:
        if vr not in cfg.vrs:
            yield f"pools.{vr}: VR {vr!r} is not defined{_known(vr, cfg.vrs)}"


def _intervals(specs: list[str]) -> list[tuple[int, int]]:
    # The pool module's own parser, so that overlap means what allocation will do
    # (network and broadcast addresses of a prefix are left out there).
    return [pool_module.parse_range(spec) for spec in specs]


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _check_one_pool(path: str, pool: PoolConfig) -> Iterator[str]:
    ranges = _intervals(pool.ranges)
    for i, first in enumerate(ranges):
        for j in range(i):
            if _overlap(first, ranges[j]):
                yield f"{path}.ranges[{i}]: {pool.ranges[i]} overlaps ranges[{j}] {pool.ranges[j]}"
    for i, hole in enumerate(_intervals(pool.exclude)):
        if not any(_overlap(hole, r) for r in ranges):
            yield f"{path}.exclude[{i}]: {pool.exclude[i]} is not inside any range of the pool"
    try:
        pool_module.AddressPool("check", list(pool.ranges), list(pool.exclude))
    except pool_module.PoolConfigError:
        yield f"{path}.exclude: the exclusions leave no address in the pool"


def check_pools(cfg: ResponderConfig) -> Iterator[str]:
    for vr, pools in cfg.pools.items():
        for name, pool in pools.items():
            yield from _check_one_pool(f"pools.{vr}.{name}", pool)
        yield from _check_pools_disjoint(vr, pools)


def _check_pools_disjoint(vr: str, pools: dict[str, PoolConfig]) -> Iterator[str]:
    # An address must belong to one pool of a VR (pools.py refuses it at start-up).
    names = list(pools)
    for i, name in enumerate(names):
        for other in names[:i]:
            for k, mine in enumerate(_intervals(pools[name].ranges)):
                clash = next((spec for spec, theirs in zip(pools[other].ranges,
                                                            _intervals(pools[other].ranges))
                              if _overlap(mine, theirs)), None)
                if clash is not None:
                    yield (f"pools.{vr}.{name}.ranges[{k}]: {pools[name].ranges[k]} overlaps "
                           f"{clash} of pool {other!r} in the same VR")


# -- tunnel profiles ----------------------------------------------------------------------
def check_profiles(cfg: ResponderConfig) -> Iterator[str]:
    names = [p.name for p in cfg.tunnel_profiles]
    for index, name in _duplicates(names):
        yield f"tunnel_profiles[{index}].name: profile {name!r} is defined twice"
    for index, profile in enumerate(cfg.tunnel_profiles):
        for earlier in cfg.tunnel_profiles[:index]:
            if earlier.match == profile.match:
                yield (f"tunnel_profiles[{index}].match: same match as profile "
                       f"{earlier.name!r} before it, so profile {profile.name!r} is never used")
                break


def check_profile_vrs(cfg: ResponderConfig) -> Iterator[str]:
    for index, profile in enumerate(cfg.tunnel_profiles):
        if profile.vr not in cfg.vrs:
            yield (f"tunnel_profiles[{index}].vr: profile {profile.name!r} names vr "
                   f"{profile.vr!r} which is not defined{_known(profile.vr, cfg.vrs)}")


def check_profile_pools(cfg: ResponderConfig) -> Iterator[str]:
    for index, profile in enumerate(cfg.tunnel_profiles):
        if profile.pool is None or profile.vr not in cfg.vrs:
            continue
        pools = cfg.pools.get(profile.vr, {})
        if profile.pool not in pools:
            yield (f"tunnel_profiles[{index}].pool: VR {profile.vr!r} has no pool "
                   f"{profile.pool!r}{_known(profile.pool, pools)}")


def check_profile_addresses(cfg: ResponderConfig) -> Iterator[str]:
    listening = _listen_addresses(cfg)
    for index, profile in enumerate(cfg.tunnel_profiles):
        for k, address in enumerate(profile.match.local_addresses):
            if address not in listening:
                yield (f"tunnel_profiles[{index}].match.local_addresses[{k}]: "
                       f"{_not_listening(cfg, address)}")


# -- pre-shared keys ----------------------------------------------------------------------
def check_psk_addresses(cfg: ResponderConfig) -> Iterator[str]:
    listening = _listen_addresses(cfg)
    for index, psk in enumerate(cfg.pre_shared_keys):
        if psk.local is not None and psk.local not in listening:
            yield f"pre_shared_keys[{index}].local: {_not_listening(cfg, psk.local)}"


def _any_network(network: ipaddress.IPv4Network | None) -> ipaddress.IPv4Network:
    return network or ipaddress.IPv4Network("0.0.0.0/0")


def check_psk_ambiguity(cfg: ResponderConfig) -> Iterator[str]:
    """SPEC "User authentication": a Main Mode key is chosen by addresses alone, so two
    keys for the same local address and overlapping peers leave the choice to chance
    (in the operator's eyes); Aggressive Mode keys must differ by identity or scope."""
    keys = cfg.pre_shared_keys
    for index, psk in enumerate(keys):
        for earlier_index, earlier in enumerate(keys[:index]):
            if psk.identity != earlier.identity:
                continue
            if psk.local != earlier.local and None not in (psk.local, earlier.local):
                continue
            if not _any_network(psk.peer).overlaps(_any_network(earlier.peer)):
                continue
            if psk.main_mode:
                yield (f"pre_shared_keys[{index}]: ambiguous Main Mode key: "
                       f"pre_shared_keys[{earlier_index}] has the same local address "
                       f"{psk.local} and an overlapping peer network; give each VPN its own "
                       "local address or use Aggressive Mode identities")
            else:
                yield (f"pre_shared_keys[{index}].identity: {psk.identity} already has a key "
                       f"(pre_shared_keys[{earlier_index}]) for the same addresses")


def check_psk_modes(cfg: ResponderConfig) -> Iterator[str]:
    for index, psk in enumerate(cfg.pre_shared_keys):
        if psk.main_mode and not cfg.ike.main_mode:
            yield (f"pre_shared_keys[{index}]: a Main Mode key (no identity), but "
                   "ike.main_mode is off")
        if not psk.main_mode and not cfg.ike.aggressive_mode:
            yield (f"pre_shared_keys[{index}].identity: keys by identity are for Aggressive "
                   "Mode, but ike.aggressive_mode is off")


# -- static tunnels -----------------------------------------------------------------------
def check_static_tunnels(cfg: ResponderConfig) -> Iterator[str]:
    tunnels = cfg.static_tunnels
    for index, name in _duplicates([t.name for t in tunnels]):
        yield f"static_tunnels[{index}].name: static tunnel {name!r} is defined twice"
    for index, peer in _duplicates([t.peer for t in tunnels]):
        yield f"static_tunnels[{index}].peer: another static tunnel already has peer {peer}"


def check_static_tunnel_refs(cfg: ResponderConfig) -> Iterator[str]:
    listening = _listen_addresses(cfg)
    for index, tunnel in enumerate(cfg.static_tunnels):
        if tunnel.vr is not None and tunnel.vr not in cfg.vrs:
            yield (f"static_tunnels[{index}].vr: VR {tunnel.vr!r} is not defined"
                   f"{_known(tunnel.vr, cfg.vrs)}")
        if tunnel.local is not None and tunnel.local not in listening:
            yield f"static_tunnels[{index}].local: {_not_listening(cfg, tunnel.local)}"


# -- AAA ----------------------------------------------------------------------------------
def _group_names(cfg: ResponderConfig) -> list[str]:
    return list(cfg.aaa.radius.server_groups) if cfg.aaa.radius else []


def check_radius(cfg: ResponderConfig) -> Iterator[str]:
    aaa = cfg.aaa
    if aaa.default_method == "radius" and aaa.radius is None:
        yield "aaa.default_method: 'radius' needs an aaa.radius section with a server group"
    if aaa.radius is None:
        return
    groups = _group_names(cfg)
    default = aaa.radius.default_group
    if default is not None and default not in groups:
        yield (f"aaa.radius.default_group: server group {default!r} is not defined"
               f"{_known(default, groups)}")
    if default is None and len(groups) > 1:
        yield ("aaa.radius.default_group: required with more than one server group "
               f"(groups: {', '.join(groups)})")


def check_domain_maps(cfg: ResponderConfig) -> Iterator[str]:
    groups = _group_names(cfg)
    for domain, entry in cfg.aaa.domain_maps.items():
        path = f"aaa.domain_maps.{domain}"
        if entry.server_group is not None and entry.server_group not in groups:
            yield (f"{path}.server_group: RADIUS server group {entry.server_group!r} is not "
                   f"defined{_known(entry.server_group, groups)}")
        if entry.method == "radius" and cfg.aaa.radius is None:
            yield f"{path}.method: 'radius' needs an aaa.radius section"
        if entry.vr is not None and entry.vr not in cfg.vrs:
            yield f"{path}.vr: VR {entry.vr!r} is not defined{_known(entry.vr, cfg.vrs)}"


def check_local_users(cfg: ResponderConfig) -> Iterator[str]:
    every_pool = {name for pools in cfg.pools.values() for name in pools}
    for name, user in cfg.aaa.local_users.items():
        path = f"aaa.local_users.{name}"
        if user.vr is not None and user.vr not in cfg.vrs:
            yield f"{path}.vr: VR {user.vr!r} is not defined{_known(user.vr, cfg.vrs)}"
            continue
        if user.pool is None:
            continue
        # Without a VR of its own the user lands in the profile's VR: the pool must
        # exist somewhere; with one, it must exist there.
        pools = cfg.pools.get(user.vr, {}) if user.vr else every_pool
        if user.pool not in pools:
            where = f"VR {user.vr!r}" if user.vr else "any VR"
            yield f"{path}.pool: {where} has no pool {user.pool!r}{_known(user.pool, pools)}"


def check_accounting(cfg: ResponderConfig) -> Iterator[str]:
    accounting = cfg.aaa.accounting
    groups = _group_names(cfg)
    if accounting.enabled and not groups:
        yield "aaa.accounting.enabled: accounting needs an aaa.radius section with a server group"
    group = accounting.server_group
    if group is not None and group not in groups:
        yield (f"aaa.accounting.server_group: RADIUS server group {group!r} is not defined"
               f"{_known(group, groups)}")


def check_dae(cfg: ResponderConfig) -> Iterator[str]:
    if cfg.aaa.dae is None:
        return
    for index, address in _duplicates([c.address for c in cfg.aaa.dae.clients]):
        yield f"aaa.dae.clients[{index}].address: {address} is listed twice"


# -- the table ----------------------------------------------------------------------------
#: (what the check reads, check); "*" stands for any list index or mapping key.
#: Order = order of the report.
CROSS_CHECKS: tuple[tuple[tuple[tuple[str, ...], ...], Check], ...] = tuple(
    (tuple(tuple(path.split(".")) for path in reads.split()), check) for reads, check in (
        ("listen.*.address listen.*.ike_port listen.*.natt_port", check_listen),
        ("listen.*.address listen.*.default_profile tunnel_profiles.*.name "
         "tunnel_profiles.*.match", check_listen_default_profiles),
        ("vrs", check_vrs),
        ("vrs pools", check_pool_vrs),
        ("pools", check_pools),
        ("tunnel_profiles.*.name tunnel_profiles.*.match", check_profiles),
        ("tunnel_profiles.*.name tunnel_profiles.*.vr vrs", check_profile_vrs),
        ("tunnel_profiles.*.vr tunnel_profiles.*.pool vrs pools", check_profile_pools),
        ("tunnel_profiles.*.match listen.*.address", check_profile_addresses),
        ("pre_shared_keys listen.*.address", check_psk_addresses),
        ("pre_shared_keys", check_psk_ambiguity),
        ("pre_shared_keys ike.main_mode ike.aggressive_mode", check_psk_modes),
        ("static_tunnels", check_static_tunnels),
        ("static_tunnels vrs listen.*.address", check_static_tunnel_refs),
        ("aaa.default_method aaa.radius", check_radius),
        ("aaa.domain_maps aaa.radius vrs", check_domain_maps),
        ("aaa.local_users vrs pools", check_local_users),
        ("aaa.accounting aaa.radius", check_accounting),
        ("aaa.dae", check_dae),
    ))


def _overlaps(cut: tuple, read: tuple[str, ...]) -> bool:
    """True when a cut-out value is, contains or lies inside what a check reads."""
    return all(want == "*" or str(have) == want for have, want in zip(cut, read))


def cross_check(cfg: ResponderConfig, cuts: Iterable[tuple] = ()) -> list[str]:
    """Run every check that reads none of ``cuts`` (key paths, as pydantic locations,
    of values that were broken and left out: a one-part path is a whole section)."""
    cuts = list(cuts)
    problems: list[str] = []
    for reads, check in CROSS_CHECKS:
        if any(_overlaps(cut, read) for cut in cuts for read in reads):
            continue
        problems.extend(check(cfg))
    return problems


# -- warnings -----------------------------------------------------------------------------
def config_warnings(cfg: ResponderConfig) -> list[str]:
    """Allowed but worth a line in the log and in ``check``'s output."""
    warnings: list[str] = []
    if cfg.ike.aggressive_mode and any(not psk.main_mode for psk in cfg.pre_shared_keys):
        warnings.append("ike.aggressive_mode: Aggressive Mode with a pre-shared key sends a "
                        "hash an eavesdropper can attack offline; use strong group keys")
    if cfg.ike.key_export_file is not None:
        warnings.append(f"ike.key_export_file: phase 1 keys are written in clear to "
                        f"{cfg.ike.key_export_file} (debugging only)")
    for index, proposal in enumerate(cfg.ike.proposals):
        for token in weak_tokens(proposal):
            warnings.append(f"ike.proposals[{index}]: {token} is weak; keep it only for old clients")
    if "xauth-psk" not in cfg.ike.auth_methods:
        warnings.append("ike.auth_methods: without xauth-psk, clients offering "
                        "XAUTHInitPreShared (strongSwan, vpnc) are refused")
    for kind in ("ipsec_tunnel", "subscriber"):
        if getattr(cfg.licenses, kind) == 0:
            warnings.append(f"licenses.{kind}: 0 licenses: every dynamic subscriber is refused")
    for index, profile in enumerate(cfg.tunnel_profiles):
        if profile.pool is None:
            warnings.append(f"tunnel_profiles[{index}].pool: none; subscribers of profile "
                            f"{profile.name!r} need an address or pool from AAA")
    return warnings
