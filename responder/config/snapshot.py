"""What a worker process needs of the configuration, as plain JSON-serialisable data.

The supervisor validates the file (pydantic, :mod:`responder.config.model`) and sends
each worker :func:`worker_snapshot` of the result: at spawn and again at every reload
(responder/daemon/ipc.py). A worker reads it back with :func:`worker_config` and builds
its engine policy, AAA back ends and profiles from that, without pydantic or yaml:

    snapshot = worker_snapshot(cfg)           # supervisor: dict of lists, strings, numbers
    cfg = worker_config(snapshot)             # worker: frozen dataclasses
    policy = build_responder_policy(cfg)

The dataclasses below are the table of what goes over: the worker's sections with the
model's own class and attribute names (``cfg.tunnel_profiles[0].mode_config.dns``), so
code written against the model reads a snapshot the same way. Their type hints say how
each value is written (addresses and networks as text, identities as ``kind:value``,
secrets as their text) and read back. Supervisor-only sections (pools, licenses,
accounting, DAE, lockout, control, metrics) are left out.

The snapshot holds secrets (pre-shared keys, passwords, RADIUS secrets): it travels over
the socketpair only; :class:`Secret` prints as stars.

The builders at the end map a snapshot onto the engine's and AAA's objects, field for
field as :mod:`responder.config.builders` does for the model (a unit test holds the two
equal); they take either, since the attribute names are the same.
"""
from __future__ import annotations

import dataclasses
import functools
import ipaddress
import types
import typing
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import responder.config.algorithms as algorithms
from responder.aaa.base import DomainMapEntry, DomainMaps
from responder.aaa.local import LocalUser
from responder.config.identities import IdentitySpec
from responder.ikev1.policy import (DpdPolicy, EspPolicy, EspTransformSpec, IkeRule, Limits,
                                    Phase1Policy, PresharedKey, ResponderPolicy,
                                    RetransmitPolicy, RuleAction, Selector, StaticTunnel)

__all__ = ["SNAPSHOT_VERSION", "Secret", "WorkerConfig", "worker_snapshot", "worker_config",
           "build_responder_policy", "build_esp_policy", "build_local_users",
           "build_radius_groups", "radius_default_group", "build_nas_identity",
           "build_domain_maps", "profile_limits"]

#: bumped when the layout changes: a worker refuses a snapshot of another layout
SNAPSHOT_VERSION = 1


class Secret:
    """A secret text; prints as stars (like pydantic's ``SecretStr``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _resolved_secret() -> Any:
    """The field of a secret given inline or by ``secret_file``: written from the
    model's ``secret_bytes()`` (the file already read by the supervisor)."""
    return field(repr=False, metadata={"written_from": "secret_bytes"})


class _SecretBytes:
    """``secret_bytes()`` of a class with a resolved ``secret`` field."""

    secret: Secret

    def secret_bytes(self) -> bytes:
        return self.secret.get_secret_value().encode()


# -- the table: what a worker reads -------------------------------------------------------
@dataclass(frozen=True)
class ListenAddress:
    address: IPv4Address
    ike_port: int
    natt_port: int
    default_profile: str | None


@dataclass(frozen=True)
class VirtualRouterConfig:
    netns: str
    interface_prefix: str
    mtu: int


@dataclass(frozen=True)
class DpdConfig:
    enabled: bool
    interval: float
    timeout: float


@dataclass(frozen=True)
class LimitsConfig:
    max_half_open: int
    max_half_open_per_peer: int
    half_open_timeout: float
    max_sas: int
    max_sas_per_peer: int
    max_half_open_per_prefix: int
    half_open_prefix_v4: int
    half_open_prefix_v6: int
    max_unproven_resends: int
    unauthenticated_notify_rate: float
    unauthenticated_notify_burst: int
    first_messages_per_s: float
    first_messages_per_prefix_per_s: float


@dataclass(frozen=True)
class RetransmitConfig:
    timeout: float
    backoff: float
    tries: int


@dataclass(frozen=True)
class IkeConfig:
    proposals: tuple[str, ...]
    lifetime: float
    auth_methods: tuple[str, ...]
    main_mode: bool
    aggressive_mode: bool
    dpd: DpdConfig
    limits: LimitsConfig
    retransmit: RetransmitConfig
    force_encap: bool
    remote_delete_grace: float
    default_rule_action: str
    key_export_file: str | None


@dataclass(frozen=True)
class IkePolicyRule:
    name: str
    peer: IPv4Network | None
    identity: IdentitySpec | None
    action: str


@dataclass(frozen=True)
class PresharedKeyConfig(_SecretBytes):
    secret: Secret = _resolved_secret()
    local: IPv4Address | None
    peer: IPv4Network | None
    identity: IdentitySpec | None


@dataclass(frozen=True)
class ProfileMatch:
    local_addresses: tuple[IPv4Address, ...]
    identities: tuple[IdentitySpec, ...]


@dataclass(frozen=True)
class LifetimeConfig:
    seconds: float
    kilobytes: int | None


@dataclass(frozen=True)
class ModeConfigSettings:
    dns: tuple[IPv4Address, ...]
    wins: tuple[IPv4Address, ...]
    default_domain: str | None
    banner: str | None
    mode: str
    send_unrequested: bool


@dataclass(frozen=True)
class XauthSettings:
    max_attempts: int
    timeout: float


@dataclass(frozen=True)
class TunnelProfile:
    name: str
    match: ProfileMatch
    vr: str
    pool: str | None
    max_interfaces: int | None
    domain_suffix: str | None
    mtu: int | None
    local_networks: tuple[IPv4Network, ...]
    transforms: tuple[str, ...]
    lifetime: LifetimeConfig
    pfs_group: str
    reauthenticate: bool
    mode_config: ModeConfigSettings
    xauth: XauthSettings
    session_timeout: float | None
    idle_timeout: float | None
    accounting_interim: float | None


@dataclass(frozen=True)
class StaticTunnelConfig(_SecretBytes):
    name: str
    peer: IPv4Address
    local: IPv4Address | None
    local_selector: IPv4Network
    remote_selector: IPv4Network
    transforms: tuple[str, ...]
    lifetime: LifetimeConfig
    pfs_group: str
    vr: str | None
    secret: Secret = _resolved_secret()


@dataclass(frozen=True, slots=True)
class LocalUserConfig:
    password: Secret = field(repr=False)
    address: IPv4Address | None
    netmask: IPv4Address | None
    vr: str | None
    pool: str | None
    dns: tuple[IPv4Address, ...]
    wins: tuple[IPv4Address, ...]
    session_timeout: float | None
    idle_timeout: float | None


@dataclass(frozen=True)
class RadiusServerConfig(_SecretBytes):
    address: IPv4Address
    auth_port: int
    acct_port: int
    timeout: float
    retries: int
    require_message_authenticator: bool
    secret: Secret = _resolved_secret()


@dataclass(frozen=True)
class RadiusServerGroupConfig:
    servers: tuple[RadiusServerConfig, ...]
    dead_time: float


@dataclass(frozen=True)
class RadiusConfig:
    nas_identifier: str
    nas_ip: IPv4Address | None
    server_groups: dict[str, RadiusServerGroupConfig]
    default_group: str | None


@dataclass(frozen=True)
class DomainMapConfig:
    method: str | None
    server_group: str | None
    vr: str | None
    strip_domain: bool


@dataclass(frozen=True)
class AaaConfig:
    default_method: str
    local_users: dict[str, LocalUserConfig]
    radius: RadiusConfig | None
    domain_maps: dict[str, DomainMapConfig]


@dataclass(frozen=True)
class LoggingConfig:
    level: str
    format: str


@dataclass(frozen=True)
class WorkerConfig:
    """A worker's configuration: the model's sections a worker uses."""

    listen: tuple[ListenAddress, ...]
    vrs: dict[str, VirtualRouterConfig]
    ike: IkeConfig
    ike_policy_rules: tuple[IkePolicyRule, ...]
    pre_shared_keys: tuple[PresharedKeyConfig, ...]
    tunnel_profiles: tuple[TunnelProfile, ...]
    static_tunnels: tuple[StaticTunnelConfig, ...]
    aaa: AaaConfig
    logging: LoggingConfig

    def profile(self, name: str) -> TunnelProfile:
        for profile in self.tunnel_profiles:
            if profile.name == name:
                return profile
        raise KeyError(name)


# -- writing and reading, driven by the type hints above -----------------------------------
@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional(hint: Any) -> Any | None:
    """X for ``X | None``, else None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        others = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(others) == 1:
            return others[0]
    return None


def _write(value: Any, hint: Any) -> Any:
    """A model value (or a snapshot's own) as plain data, as `hint` says."""
    if value is None:
        return None
    inner = _optional(hint)
    if inner is not None:
        return _write(value, inner)
    origin = typing.get_origin(hint)
    if origin is tuple:
        return [_write(item, typing.get_args(hint)[0]) for item in value]
    if origin is dict:
        return {str(key): _write(item, typing.get_args(hint)[1]) for key, item in value.items()}
    if dataclasses.is_dataclass(hint):
        return _write_section(value, hint)
    if hint is Secret:
        return value.get_secret_value()
    if hint in (IPv4Address, IPv4Network, IdentitySpec, str):
        return str(value)
    return hint(value)     # bool, int, float


def _write_section(obj: Any, cls: type) -> dict[str, Any]:
    """Fields that are None or empty are left out (read back as None or empty): most of
    a large user table is passwords only, and the snapshot is parsed by every worker."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("written_from") == "secret_bytes":
            value = obj.secret_bytes().decode()
        else:
            value = _write(getattr(obj, f.name), _hints(cls)[f.name])
        if value is not None and value != [] and value != {}:
            out[f.name] = value
    return out


def _identity(text: str) -> IdentitySpec:
    kind, _, value = text.partition(":")
    return IdentitySpec(kind, value)


#: how a leaf read back from its text or number
_READERS = {IPv4Address: IPv4Address, IPv4Network: IPv4Network, IdentitySpec: _identity,
            Secret: Secret, str: str, bool: bool, int: int, float: float}


def _read(plain: Any, hint: Any) -> Any:
    if plain is None:
        return None
    inner = _optional(hint)
    if inner is not None:
        return _read(plain, inner)
    origin = typing.get_origin(hint)
    if origin is tuple:
        return tuple(_read(item, typing.get_args(hint)[0]) for item in plain)
    if origin is dict:
        return {key: _read(item, typing.get_args(hint)[1]) for key, item in plain.items()}
    if dataclasses.is_dataclass(hint):
        return hint(**{f.name: _read(plain.get(f.name, _EMPTY.get(typing.get_origin(
                                  _hints(hint)[f.name]))), _hints(hint)[f.name])
                       for f in dataclasses.fields(hint)})
    return _READERS[hint](plain)


#: what a left-out field is read as, by its hint's origin (else None)
_EMPTY = {tuple: [], dict: {}}


def worker_snapshot(cfg: Any) -> dict[str, Any]:
    """The validated configuration (a ``ResponderConfig``) as what a worker needs: plain
    data for ``json.dumps``. Secrets are in it."""
    return {"version": SNAPSHOT_VERSION, **_write_section(cfg, WorkerConfig)}


def worker_config(snapshot: dict[str, Any]) -> WorkerConfig:
    """The worker's side of :func:`worker_snapshot`."""
    version = snapshot.get("version")
    if version != SNAPSHOT_VERSION:
        raise ValueError(f"configuration snapshot version {version!r}, this worker reads "
                         f"{SNAPSHOT_VERSION}")
    return _read(snapshot, WorkerConfig)


# -- the engine's and AAA's objects (as responder.config.builders, from either) ------------
def _unique(items):
    return tuple(dict.fromkeys(items))


def _ike_proposals(ike) -> list[algorithms.IkeProposal]:
    return [p for text in ike.proposals for p in algorithms.parse_ike_proposal(text)]


def build_phase1_policy(ike) -> Phase1Policy:
    proposals = _ike_proposals(ike)
    return Phase1Policy(
        encryption=_unique((p.encryption, p.key_length) for p in proposals),
        hashes=_unique(p.hash for p in proposals),
        groups=_unique(p.group for p in proposals),
        auth_methods=_unique(algorithms.parse_auth_method(m) for m in ike.auth_methods),
        lifetime_seconds=int(ike.lifetime),
        allow_aggressive=ike.aggressive_mode,
        allow_main=ike.main_mode,
    )


def _esp_transforms(texts) -> tuple[EspTransformSpec, ...]:
    return tuple(EspTransformSpec(p.cipher, p.key_length, p.integrity)
                 for p in map(algorithms.parse_esp_transform, texts))


def build_esp_policy(tunnel) -> EspPolicy:
    """The phase 2 proposals of one profile or static tunnel."""
    return EspPolicy(
        transforms=_esp_transforms(tunnel.transforms),
        pfs_group=algorithms.parse_dh_group(tunnel.pfs_group),
        lifetime_seconds=int(tunnel.lifetime.seconds),
        lifetime_kilobytes=tunnel.lifetime.kilobytes,
    )


def _dynamic_esp_policy(cfg) -> EspPolicy:
    """Every profile's transforms (first profile's order first), the first profile's
    PFS and lifetimes."""
    first = build_esp_policy(cfg.tunnel_profiles[0])
    transforms = _unique(t for profile in cfg.tunnel_profiles
                         for t in _esp_transforms(profile.transforms))
    return EspPolicy(transforms=transforms, pfs_group=first.pfs_group,
                     lifetime_seconds=first.lifetime_seconds,
                     lifetime_kilobytes=first.lifetime_kilobytes)


def _psks(cfg) -> tuple[PresharedKey, ...]:
    return tuple(
        PresharedKey(secret=psk.secret_bytes(),
                     local=str(psk.local) if psk.local else None,
                     peer=str(psk.peer) if psk.peer else None,
                     identity=psk.identity.to_identity() if psk.identity else None)
        for psk in cfg.pre_shared_keys)


def _ike_rules(cfg) -> tuple[IkeRule, ...]:
    return tuple(
        IkeRule(action=RuleAction(rule.action),
                peer=str(rule.peer) if rule.peer else None,
                identity=rule.identity.to_identity() if rule.identity else None,
                name=rule.name or f"rule {index}")
        for index, rule in enumerate(cfg.ike_policy_rules))


def _static_tunnel(tunnel) -> StaticTunnel:
    return StaticTunnel(
        name=tunnel.name, peer=str(tunnel.peer), secret=tunnel.secret_bytes(),
        local_selector=Selector(tunnel.local_selector),
        remote_selector=Selector(tunnel.remote_selector),
        local=str(tunnel.local) if tunnel.local else None,
        esp=build_esp_policy(tunnel))


#: ``ike.limits`` fields passed to ``policy.Limits`` under the same name
_LIMIT_FIELDS = ("max_half_open", "max_half_open_per_peer", "half_open_timeout", "max_sas",
                 "max_sas_per_peer", "max_half_open_per_prefix", "half_open_prefix_v4",
                 "half_open_prefix_v6", "max_unproven_resends", "unauthenticated_notify_rate",
                 "unauthenticated_notify_burst", "first_messages_per_s",
                 "first_messages_per_prefix_per_s")


def build_responder_policy(cfg) -> ResponderPolicy:
    """Everything the IKEv1 engine decides with."""
    ike = cfg.ike
    return ResponderPolicy(
        phase1=build_phase1_policy(ike),
        psks=_psks(cfg),
        rules=_ike_rules(cfg),
        default_action=RuleAction(ike.default_rule_action),
        static_tunnels=tuple(_static_tunnel(t) for t in cfg.static_tunnels),
        dynamic_esp=_dynamic_esp_policy(cfg),
        dpd=DpdPolicy(interval=ike.dpd.interval, timeout=ike.dpd.timeout,
                      enabled=ike.dpd.enabled),
        limits=Limits(**{name: getattr(ike.limits, name) for name in _LIMIT_FIELDS}),
        retransmit=RetransmitPolicy(timeout=ike.retransmit.timeout,
                                    backoff=ike.retransmit.backoff,
                                    tries=ike.retransmit.tries),
        force_encap=ike.force_encap,
        # dynamic subscribers always go through Xauth before Quick Mode
        require_transaction=True,
        export_keys=ike.key_export_file is not None,
        # Aggressive Mode only with a key bound to the peer's identity
        aggressive_address_keys=False,
    )


def profile_limits(cfg) -> dict[str, int]:
    """max-interfaces per profile, for ``SubscriberTable(profile_limits=...)``."""
    return {p.name: p.max_interfaces for p in cfg.tunnel_profiles if p.max_interfaces}


def _whole_seconds(value: float | None) -> int | None:
    return None if value is None else int(value)


def build_local_users(cfg) -> list[LocalUser]:
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


def radius_default_group(cfg) -> str | None:
    radius = cfg.aaa.radius
    if radius is None:
        return None
    return radius.default_group or next(iter(radius.server_groups))


def build_radius_groups(cfg) -> list:
    """``responder.aaa.radius.ServerGroup`` list, the default group first; imports the
    RADIUS module (and pyrad) only when a server group is configured."""
    radius = cfg.aaa.radius
    if radius is None:
        return []
    from responder.aaa.radius import RadiusServer, ServerGroup

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


def build_nas_identity(cfg):
    """``responder.aaa.radius.NasIdentity`` (imports the RADIUS module)."""
    from responder.aaa.radius import NasIdentity

    radius = cfg.aaa.radius
    if radius is None:
        return NasIdentity()
    return NasIdentity(nas_ip=radius.nas_ip, nas_identifier=radius.nas_identifier)


def build_domain_maps(cfg) -> DomainMaps:
    return DomainMaps([
        DomainMapEntry(domain=domain, backend=entry.method, server_group=entry.server_group,
                       virtual_router=entry.vr, strip_domain=entry.strip_domain)
        for domain, entry in cfg.aaa.domain_maps.items()])
