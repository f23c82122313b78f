"""The configuration schema (pydantic): one model per section, unknown keys forbidden.

Field validators only check what one value can tell (a proposal string, a range, an
identity); everything that needs two sections (a profile's VR exists, PSKs are not
ambiguous, ...) lives in :mod:`responder.config.checks`, so that it can be skipped when
one of those sections is itself broken instead of piling up follow-on errors.

Secrets are :class:`pydantic.SecretStr` (they print as ``**********``) and may come from
a file (``secret_file:``, relative to the configuration file's directory), read during
validation so that a missing file is one more line in the report.
"""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field,
                      PrivateAttr, SecretStr, ValidationInfo, model_validator)

import responder.config.algorithms as algorithms
from responder.config.identities import IdentitySpec, parse_identity

#: SPEC "IPsec tunnel profiles": "up to six phase 2 transforms"
MAX_TRANSFORMS = 6
#: netif names a device <prefix><subscriber id> within IFNAMSIZ-1 = 15 characters;
#: 8 characters of prefix leave 7 digits of subscriber id.
MAX_INTERFACE_PREFIX = 8

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_NETNS = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
_IFPREFIX = re.compile(rf"^[a-z][a-z0-9-]{{0,{MAX_INTERFACE_PREFIX - 1}}}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


# -- value types with readable errors -----------------------------------------------------
def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid name (letters, digits, '_', '.', '-', "
                         "at most 63 characters, starting with a letter or digit)")
    return value


def _netns(value: Any) -> str:
    if not isinstance(value, str) or not _NETNS.match(value) or value in (".", ".."):
        raise ValueError(f"{value!r} is not a valid network namespace name")
    return value


def _interface_prefix(value: Any) -> str:
    if not isinstance(value, str) or not _IFPREFIX.match(value):
        raise ValueError(f"{value!r} is not a valid interface name prefix (lower-case letter, "
                         f"then letters, digits or '-', at most {MAX_INTERFACE_PREFIX} "
                         "characters so that prefix + subscriber id fits 15 characters)")
    return value


def _ipv4(value: Any) -> ipaddress.IPv4Address:
    if isinstance(value, ipaddress.IPv4Address):
        return value
    try:
        # Only text: YAML turns some typos into numbers, and 1 must not become 0.0.0.1.
        if not isinstance(value, str):
            raise TypeError(value)
        return ipaddress.IPv4Address(value.strip())
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not a valid IPv4 address") from None


def _ipv4_network(value: Any) -> ipaddress.IPv4Network:
    """A network; a bare address means that host (/32)."""
    if isinstance(value, ipaddress.IPv4Network):
        return value
    text = str(value)
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        if "host bits" in str(exc):
            fixed = ipaddress.IPv4Network(text, strict=False)
            raise ValueError(f"{text!r} has host bits set (did you mean {str(fixed)!r}?)") from None
        raise ValueError(f"{value!r} is not a valid IPv4 network (ADDRESS/PREFIXLEN)") from None


def _address_range(value: Any) -> str:
    """``a.b.c.d-e.f.g.h``, ``a.b.c.d/nn`` or one address; kept as text (the pool module
    parses it, with its own rule for network and broadcast addresses)."""
    text = str(value).strip()
    if "-" in text:
        first_text, _, last_text = (part.strip() for part in text.partition("-"))
        first, last = _ipv4(first_text), _ipv4(last_text)
        if first > last:
            raise ValueError(f"{text} is empty (end before start)")
        return f"{first}-{last}"
    if "/" in text:
        network = _ipv4_network(text)
        if network.prefixlen == 32:
            return str(network.network_address)
        return str(network)
    return str(_ipv4(text))


def _duration(value: Any) -> float:
    """Seconds: a number or ``30s``, ``10m``, ``8h``, ``1d``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (seconds, or e.g. '30s', '10m', '8h')")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration (seconds, or e.g. '30s', '10m', '8h')")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"{value!r}: a duration cannot be negative")
    return seconds


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be more than 0 seconds")
    return seconds


def _ike_proposal(text: str) -> str:
    algorithms.parse_ike_proposal(text)
    return text.strip().lower()


def _esp_transform(text: str) -> str:
    algorithms.parse_esp_transform(text)
    return text.strip().lower()


def _dh_group(value: Any) -> str:
    text = "none" if value is None or value is False else str(value)
    algorithms.parse_dh_group(text)
    return text.strip().lower()


def _auth_method(text: str) -> str:
    algorithms.parse_auth_method(text)
    return text.strip().lower()


def _exact_identity(text: str) -> IdentitySpec:
    return parse_identity(text, exact=True)


def _identity_pattern(text: str) -> IdentitySpec:
    return parse_identity(text, exact=False)


Name = Annotated[str, BeforeValidator(_name)]
NetnsName = Annotated[str, BeforeValidator(_netns)]
InterfacePrefix = Annotated[str, BeforeValidator(_interface_prefix)]
IPv4 = Annotated[ipaddress.IPv4Address, BeforeValidator(_ipv4)]
IPv4Net = Annotated[ipaddress.IPv4Network, BeforeValidator(_ipv4_network)]
AddressRange = Annotated[str, BeforeValidator(_address_range)]
Seconds = Annotated[float, BeforeValidator(_duration)]
PositiveSeconds = Annotated[float, BeforeValidator(_duration), AfterValidator(_positive)]
Port = Annotated[int, Field(ge=1, le=65535)]
IkeProposalText = Annotated[str, AfterValidator(_ike_proposal)]
EspTransformText = Annotated[str, AfterValidator(_esp_transform)]
DhGroupText = Annotated[str, BeforeValidator(_dh_group)]
AuthMethodText = Annotated[str, AfterValidator(_auth_method)]
ExactIdentity = Annotated[IdentitySpec, BeforeValidator(_exact_identity)]
IdentityPattern = Annotated[IdentitySpec, BeforeValidator(_identity_pattern)]
DnsServers = Annotated[list[IPv4], Field(max_length=2)]


def _check_transforms(transforms: list[str]) -> list[str]:
    if not transforms:
        raise ValueError("at least one phase 2 transform is needed")
    if len(transforms) > MAX_TRANSFORMS:
        raise ValueError(f"{len(transforms)} transforms given; a tunnel takes at most "
                         f"{MAX_TRANSFORMS} phase 2 transforms")
    duplicates = sorted({t for t in transforms if transforms.count(t) > 1})
    if duplicates:
        raise ValueError(f"transform {duplicates[0]!r} listed twice")
    return transforms


EspTransformList = Annotated[list[EspTransformText], AfterValidator(_check_transforms)]

DEFAULT_IKE_PROPOSALS = ["aes256-sha256-modp2048", "aes128-sha256-modp2048",
                         "aes256-sha1-modp1024", "aes128-sha1-modp1024", "3des-sha1-modp1024"]
DEFAULT_ESP_TRANSFORMS = ["aes256-sha256", "aes128-sha256", "aes256-sha1", "aes128-sha1",
                          "3des-sha1"]


class Strict(BaseModel):
    """Unknown keys are errors: a typo must not fall back silently to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretSource(Strict):
    """Exactly one of ``secret`` (inline) or ``secret_file`` (first line of a file)."""

    secret: SecretStr | None = None
    secret_file: Path | None = None
    _resolved: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _read_secret(self, info: ValidationInfo) -> "SecretSource":
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError("give exactly one of 'secret' or 'secret_file'")
        if self.secret is not None:
            value = self.secret.get_secret_value()
        else:
            value = _read_secret_file(self.secret_file, info)
        if not value:
            raise ValueError("the secret is empty")
        self._resolved = SecretStr(value)
        return self

    def secret_bytes(self) -> bytes:
        assert self._resolved is not None  # set by the validator; not an input check
        return self._resolved.get_secret_value().encode()


def _read_secret_file(path: Path, info: ValidationInfo) -> str:
    base = (info.context or {}).get("base_dir")
    full = path if path.is_absolute() or base is None else Path(base) / path
    try:
        # One secret per file; the trailing newline editors add is not part of it.
        return full.read_text().rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"secret_file {str(full)!r} cannot be read: {exc.strerror}") from None


# -- sections -----------------------------------------------------------------------------
class ListenAddress(Strict):
    address: IPv4
    ike_port: Port = 500
    natt_port: Port = 4500
    #: profile for subscribers on this address that no identity pattern claims
    default_profile: Name | None = None


class VirtualRouterConfig(Strict):
    netns: NetnsName
    interface_prefix: InterfacePrefix = "ips"
    mtu: int = Field(1400, ge=576, le=9000)


class PoolConfig(Strict):
    ranges: list[AddressRange] = Field(min_length=1)
    exclude: list[AddressRange] = []


class DpdConfig(Strict):
    enabled: bool = True
    interval: PositiveSeconds = 10.0
    timeout: PositiveSeconds = 30.0

    @model_validator(mode="after")
    def _timeout_after_interval(self) -> "DpdConfig":
        if self.timeout <= self.interval:
            raise ValueError(f"timeout ({self.timeout:g} s) must be longer than interval "
                             f"({self.interval:g} s)")
        return self


class LimitsConfig(Strict):
    max_half_open: int = Field(1000, ge=1)
    max_half_open_per_peer: int = Field(8, ge=1)
    half_open_timeout: PositiveSeconds = 30.0
    max_sas: int = Field(100_000, ge=1)
    max_sas_per_peer: int = Field(32, ge=1)
    #: half-open admission and unproven sources: docs/operations.md "Floods"
    max_half_open_per_prefix: int = Field(100, ge=1)
    half_open_prefix_v4: int = Field(24, ge=0, le=32)
    half_open_prefix_v6: int = Field(64, ge=0, le=128)
    max_unproven_resends: int = Field(4, ge=0, le=20)
    unauthenticated_notify_rate: float = Field(50.0, gt=0)
    unauthenticated_notify_burst: int = Field(100, ge=1)
    first_messages_per_s: float = Field(400.0, ge=0)
    first_messages_per_prefix_per_s: float = Field(10.0, gt=0)


class RetransmitConfig(Strict):
    timeout: PositiveSeconds = 4.0
    backoff: float = Field(1.8, ge=1.0, le=10.0)
    tries: int = Field(5, ge=1, le=20)


class IkeConfig(Strict):
    proposals: list[IkeProposalText] = Field(default=DEFAULT_IKE_PROPOSALS, min_length=1)
    lifetime: PositiveSeconds = 3 * 3600.0
    auth_methods: list[AuthMethodText] = Field(default=["xauth-psk", "psk"], min_length=1)
    main_mode: bool = True
    aggressive_mode: bool = True
    dpd: DpdConfig = DpdConfig()
    limits: LimitsConfig = LimitsConfig()
    retransmit: RetransmitConfig = RetransmitConfig()
    force_encap: bool = False
    #: SPEC teardown: all SAs deleted by the peer and no rekey within this time
    remote_delete_grace: Seconds = 60.0
    #: what happens to a peer no IKE policy rule matches
    default_rule_action: Literal["accept", "deny"] = "accept"
    #: opt-in debugging aid: Wireshark IKEv1 decryption table (phase 1 keys in clear!)
    key_export_file: Path | None = None

    @model_validator(mode="after")
    def _some_mode(self) -> "IkeConfig":
        if not (self.main_mode or self.aggressive_mode):
            raise ValueError("main_mode and aggressive_mode are both off: no phase 1 could "
                             "ever be accepted")
        return self


class IkePolicyRule(Strict):
    name: str = ""
    peer: IPv4Net | None = None
    identity: ExactIdentity | None = None
    action: Literal["accept", "deny"]


class PresharedKeyConfig(SecretSource):
    """Main Mode keys (no identity) are found by addresses: ``local`` is required;
    Aggressive Mode keys by ``identity`` (optionally narrowed by addresses)."""

    local: IPv4 | None = None
    peer: IPv4Net | None = None
    identity: ExactIdentity | None = None

    @model_validator(mode="after")
    def _main_mode_needs_local(self) -> "PresharedKeyConfig":
        if self.identity is None and self.local is None:
            raise ValueError(
                "a Main Mode key (no 'identity') needs 'local': in Main Mode the key is chosen "
                "before the peer's identity is known, so each such VPN needs its own local "
                "address; use 'identity' (Aggressive Mode) to share an address")
        return self

    @property
    def main_mode(self) -> bool:
        return self.identity is None


class ProfileMatch(Strict):
    """Empty lists match anything."""

    local_addresses: list[IPv4] = []
    identities: list[IdentityPattern] = []


class LifetimeConfig(Strict):
    seconds: PositiveSeconds = 3600.0
    kilobytes: int | None = Field(None, ge=1)


class ModeConfigSettings(Strict):
    dns: DnsServers = []
    wins: DnsServers = []
    default_domain: str | None = None
    banner: str | None = Field(None, max_length=2000)
    #: pull: the client asks (strongSwan, vpnc); push: the responder sets, client ACKs
    mode: Literal["pull", "push"] = "pull"
    #: pull: answer a REQUEST with every attribute we have, not only those asked for
    #: (what strongSwan's gateway does: strongSwan clients ask for address, DNS and the
    #: Unity split attributes only, and get netmask, WINS, banner, domain only this way)
    send_unrequested: bool = False


class XauthSettings(Strict):
    max_attempts: int = Field(3, ge=1, le=10)
    timeout: PositiveSeconds = 60.0


class TunnelProfile(Strict):
    name: Name
    match: ProfileMatch = ProfileMatch()
    vr: Name
    pool: Name | None = None
    #: None: bounded only by the licenses
    max_interfaces: int | None = Field(None, ge=1)
    domain_suffix: str | None = None
    #: the "IP profile": None takes the VR's MTU
    mtu: int | None = Field(None, ge=576, le=9000)
    #: split tunnelling (Cisco Unity split-include); empty: everything through the tunnel
    local_networks: list[IPv4Net] = []
    transforms: EspTransformList = DEFAULT_ESP_TRANSFORMS
    lifetime: LifetimeConfig = LifetimeConfig()
    pfs_group: DhGroupText = "none"
    reauthenticate: bool = True
    mode_config: ModeConfigSettings = ModeConfigSettings()
    xauth: XauthSettings = XauthSettings()
    #: defaults; AAA (RADIUS Session-Timeout / Idle-Timeout) overrides them
    session_timeout: Seconds | None = None
    idle_timeout: Seconds | None = None
    #: None: aaa.accounting.interim_interval
    accounting_interim: PositiveSeconds | None = None


class StaticTunnelConfig(SecretSource):
    name: Name
    peer: IPv4
    local: IPv4 | None = None
    local_selector: IPv4Net
    remote_selector: IPv4Net
    transforms: EspTransformList = DEFAULT_ESP_TRANSFORMS
    lifetime: LifetimeConfig = LifetimeConfig()
    pfs_group: DhGroupText = "none"
    vr: Name | None = None


class LocalUserConfig(Strict):
    password: SecretStr
    address: IPv4 | None = None
    netmask: IPv4 | None = None
    vr: Name | None = None
    pool: Name | None = None
    dns: DnsServers = []
    wins: DnsServers = []
    session_timeout: Seconds | None = None
    idle_timeout: Seconds | None = None


class RadiusServerConfig(SecretSource):
    address: IPv4
    auth_port: Port = 1812
    acct_port: Port = 1813
    timeout: PositiveSeconds = 3.0
    retries: int = Field(2, ge=0, le=10)
    #: drop Access-Accept/Reject/Challenge without Message-Authenticator (CVE-2024-3596)
    require_message_authenticator: bool = True


class RadiusServerGroupConfig(Strict):
    servers: list[RadiusServerConfig] = Field(min_length=1)
    dead_time: Seconds = 60.0


class RadiusConfig(Strict):
    nas_identifier: str = "dynipsec"
    nas_ip: IPv4 | None = None
    server_groups: dict[Name, RadiusServerGroupConfig] = Field(min_length=1)
    #: the group used when no domain map names one; may be left out with one group
    default_group: Name | None = None


class AccountingConfig(Strict):
    enabled: bool = False
    interim_interval: PositiveSeconds | None = 600.0
    server_group: Name | None = None
    #: the durable queue (docs/operations.md); None: <state_dir>/accounting.journal
    journal: Path | None = None
    #: records no server acknowledged; None: <state_dir>/accounting.dead
    dead_letters: Path | None = None
    #: sync the journal after every line (off: a daemon crash loses nothing, a power loss may)
    fsync: bool = True
    #: a record is dead-lettered after this many unanswered sends or this age (None: never)
    max_attempts: int | None = Field(10, ge=1)
    max_age: PositiveSeconds | None = 86400.0


class DaeClientConfig(SecretSource):
    address: IPv4
    name: str = ""


class DaeConfig(Strict):
    listen: IPv4 = ipaddress.IPv4Address("0.0.0.0")
    port: Port = 3799
    clients: list[DaeClientConfig] = Field(min_length=1)
    #: Event-Timestamp freshness (RFC 5176 §3.4)
    replay_window: PositiveSeconds = 300.0
    #: refuse (NAK Invalid-Request) Disconnect/CoA requests without Event-Timestamp
    require_event_timestamp: bool = True


class DomainMapConfig(Strict):
    method: Literal["local", "radius"] | None = None
    server_group: Name | None = None
    vr: Name | None = None
    strip_domain: bool = False

    @model_validator(mode="after")
    def _selects_something(self) -> "DomainMapConfig":
        if self.method is None and self.server_group is None and self.vr is None:
            raise ValueError("a domain map must select 'method', 'server_group' and/or 'vr'")
        return self


class LockoutConfig(Strict):
    """Xauth brute-force defence (responder/aaa/lockout.py, docs/operations.md)."""

    enabled: bool = True
    max_failures: int = Field(5, ge=1, le=1000)
    max_source_failures: int = Field(20, ge=1, le=100_000)
    window: PositiveSeconds = 300.0
    duration: PositiveSeconds = 300.0
    backoff_base: Seconds = 1.0
    backoff_max: Seconds = 8.0
    max_entries: int = Field(10_000, ge=1, le=10_000_000)


class AaaConfig(Strict):
    default_method: Literal["local", "radius"] = "local"
    local_users: dict[str, LocalUserConfig] = {}
    radius: RadiusConfig | None = None
    accounting: AccountingConfig = AccountingConfig()
    dae: DaeConfig | None = None
    domain_maps: dict[str, DomainMapConfig] = {}
    lockout: LockoutConfig = LockoutConfig()


class LicensesConfig(Strict):
    ipsec_tunnel: int = Field(ge=0)
    subscriber: int = Field(ge=0)


class ControlConfig(Strict):
    socket: Path = Path("/run/dynipsec/control.sock")


class MetricsConfig(Strict):
    enabled: bool = True
    address: IPv4 = ipaddress.IPv4Address("127.0.0.1")
    port: Port = 9477


class LoggingConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    #: text: one line per record; json: one JSON object per line (responder/daemon/logsetup.py)
    format: Literal["text", "json"] = "text"


class ResponderConfig(Strict):
    """The whole file. Sections with sensible defaults may be left out."""

    listen: list[ListenAddress] = Field(min_length=1)
    workers: int = Field(2, ge=1, le=64)
    vrs: dict[Name, VirtualRouterConfig] = Field(min_length=1)
    #: VR name -> pool name -> pool
    pools: dict[Name, dict[Name, PoolConfig]] = {}
    ike: IkeConfig = IkeConfig()
    ike_policy_rules: list[IkePolicyRule] = []
    pre_shared_keys: list[PresharedKeyConfig] = []
    tunnel_profiles: list[TunnelProfile] = Field(min_length=1)
    static_tunnels: list[StaticTunnelConfig] = []
    aaa: AaaConfig = AaaConfig()
    licenses: LicensesConfig
    control: ControlConfig = ControlConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    #: boot counter, accounting journal, dead letters; None: <control.socket>.state (per daemon)
    state_dir: Path | None = None

    def profile(self, name: str) -> TunnelProfile:
        for profile in self.tunnel_profiles:
            if profile.name == name:
                return profile
        raise KeyError(name)

    def summary(self) -> str:
        """One line for ``check``: what the file defines."""
        pools = sum(len(p) for p in self.pools.values())
        groups = len(self.aaa.radius.server_groups) if self.aaa.radius else 0
        return (f"{len(self.tunnel_profiles)} tunnel profiles, {len(self.vrs)} VRs, "
                f"{pools} pools, {len(self.pre_shared_keys)} pre-shared keys, "
                f"{len(self.ike_policy_rules)} IKE policy rules, "
                f"{len(self.static_tunnels)} static tunnels, "
                f"{len(self.aaa.local_users)} local users, {groups} RADIUS server groups, "
                f"licenses {self.licenses.ipsec_tunnel} tunnel / {self.licenses.subscriber} "
                f"subscriber, {self.workers} workers, listening on "
                f"{', '.join(str(entry.address) for entry in self.listen)}")
