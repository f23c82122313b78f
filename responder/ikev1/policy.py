"""Phase 1 / phase 2 policy data for the IKEv1 responder.

Pure data plus lookups, no I/O: which IKE transforms are allowed, where the
pre-shared key comes from, which peers may open a phase 1 at all, the static
tunnels, the ESP proposals offered to dynamic subscribers, lifetimes, DPD and
the bounds on half-open state.

Key lookup follows RFC 2409 §5.4: in Main Mode with a pre-shared key SKEYID
must be computed before the (encrypted) identity arrives, so the key can only
be chosen by addresses (the local address the peer connected to, the peer
address, or a wildcard). In Aggressive Mode the identity comes in message 1,
so the key is chosen by identity (a group name as ID_KEY_ID, an FQDN, a
USER_FQDN or an address).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable

from .enums import (
    AuthMethod,
    EncryptionAlgorithm,
    EspTransformId,
    GroupDescription,
    HashAlgorithm,
    IdType,
    IpsecAuthAlgorithm,
)

__all__ = [
    "Identity",
    "IkeTransform",
    "Phase1Policy",
    "PresharedKey",
    "RuleAction",
    "IkeRule",
    "EspTransformSpec",
    "EspPolicy",
    "Selector",
    "StaticTunnel",
    "DpdPolicy",
    "Limits",
    "RetransmitPolicy",
    "ResponderPolicy",
]

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _network(value: str | None) -> Network | None:
    """`None`/"any"/"*" mean wildcard; a bare address becomes a host network."""
    if value is None or value in ("any", "*", "%any"):
        return None
    return ipaddress.ip_network(value, strict=False)


def _address(value: str) -> Address:
    return ipaddress.ip_address(value)


# ---------------------------------------------------------------------------
# Identities
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """An IKE identity (RFC 2407 §4.6.2) reduced to type + comparable text.

    `value` is the dotted address for ID_IPV4_ADDR/ID_IPV6_ADDR, the text for
    FQDN / USER_FQDN / KEY_ID (compared case-insensitively for FQDNs, exactly
    for key ids: a vpnc group name is a shared secret's name, not a host name).
    """

    id_type: int
    value: str

    @classmethod
    def from_payload(cls, id_type: int, data: bytes) -> "Identity":
        if id_type == IdType.IPV4_ADDR and len(data) == 4:
            return cls(IdType.IPV4_ADDR, str(ipaddress.IPv4Address(data)))
        if id_type == IdType.IPV6_ADDR and len(data) == 16:
            return cls(IdType.IPV6_ADDR, str(ipaddress.IPv6Address(data)))
        if id_type in (IdType.FQDN, IdType.USER_FQDN, IdType.KEY_ID):
            return cls(IdType(id_type), data.decode("utf-8", "replace"))
        return cls(int(id_type), data.hex())

    def to_payload_data(self) -> bytes:
        if self.id_type == IdType.IPV4_ADDR:
            return ipaddress.IPv4Address(self.value).packed
        if self.id_type == IdType.IPV6_ADDR:
            return ipaddress.IPv6Address(self.value).packed
        if self.id_type in (IdType.FQDN, IdType.USER_FQDN, IdType.KEY_ID):
            return self.value.encode("utf-8")
        return bytes.fromhex(self.value)

    def matches(self, other: "Identity") -> bool:
        if self.id_type != other.id_type:
            return False
        if self.id_type in (IdType.FQDN, IdType.USER_FQDN):
            return self.value.lower() == other.value.lower()
        return self.value == other.value

    def __str__(self) -> str:
        try:
            kind = IdType(self.id_type).name
        except ValueError:
            kind = f"ID_{self.id_type}"
        return f"{kind}:{self.value}"


# ---------------------------------------------------------------------------
# Phase 1
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IkeTransform:
    """One phase 1 transform as negotiated (RFC 2409 Appendix A attributes)."""

    encryption: int
    key_length: int | None  # bits; required for AES (RFC 3602 §5.3)
    hash: int
    group: int
    auth_method: int
    lifetime_seconds: int | None = None
    lifetime_kilobytes: int | None = None

    def describe(self) -> str:
        def name(enum: type, value: int | None) -> str:
            try:
                return enum(value).name
            except ValueError:
                return str(value)

        enc = name(EncryptionAlgorithm, self.encryption)
        if self.key_length:
            enc += f"-{self.key_length}"
        return "/".join(
            (enc, name(HashAlgorithm, self.hash), name(GroupDescription, self.group),
             name(AuthMethod, self.auth_method))
        )


#: What strongSwan 5.9 accepts by default plus MODP-1024 (vpnc, Android).
DEFAULT_IKE_ENCRYPTION: tuple[tuple[int, int | None], ...] = (
    (EncryptionAlgorithm.AES_CBC, 256),
    (EncryptionAlgorithm.AES_CBC, 192),
    (EncryptionAlgorithm.AES_CBC, 128),
    (EncryptionAlgorithm.TRIPLE_DES_CBC, None),
)
DEFAULT_IKE_HASHES = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512,
                      HashAlgorithm.SHA)
DEFAULT_IKE_GROUPS = (GroupDescription.MODP_2048, GroupDescription.MODP_3072,
                      GroupDescription.MODP_4096, GroupDescription.ECP_256,
                      GroupDescription.ECP_384, GroupDescription.MODP_1536,
                      GroupDescription.MODP_1024)
DEFAULT_AUTH_METHODS = (AuthMethod.XAUTH_INIT_PSK, AuthMethod.PRE_SHARED_KEY)


@dataclass(frozen=True)
class Phase1Policy:
    """Allowed phase 1 transforms and lifetimes.

    A transform is acceptable when each of its attributes is in the matching
    set; the sets are independent (like a strongSwan proposal list expanded).
    """

    encryption: tuple[tuple[int, int | None], ...] = DEFAULT_IKE_ENCRYPTION
    hashes: tuple[int, ...] = DEFAULT_IKE_HASHES
    groups: tuple[int, ...] = DEFAULT_IKE_GROUPS
    auth_methods: tuple[int, ...] = DEFAULT_AUTH_METHODS
    lifetime_seconds: int = 3 * 3600
    allow_aggressive: bool = True
    allow_main: bool = True

    def allows(self, transform: IkeTransform) -> bool:
        return (
            (transform.encryption, transform.key_length) in self.encryption
            and transform.hash in self.hashes
            and transform.group in self.groups
            and transform.auth_method in self.auth_methods
        )


@dataclass(frozen=True)
class PresharedKey:
    """A pre-shared key and where it applies.

    Main Mode: `local` / `peer` address or network (None = any); entries with
    an `identity` are never used in Main Mode (the identity is not known yet).
    Aggressive Mode: `identity` must match the peer's IDii; `local` may narrow
    it to one server address (SPEC "IPsec tunnel profiles" (a)).
    """

    secret: bytes = field(repr=False)
    local: str | None = None
    peer: str | None = None
    identity: Identity | None = None

    def _networks(self) -> tuple[Network | None, Network | None]:
        return _network(self.local), _network(self.peer)

    def address_score(self, local_ip: str, peer_ip: str) -> int | None:
        """Specificity of an address match, or None when it does not apply."""
        local_net, peer_net = self._networks()
        score = 0
        if local_net is not None:
            if _address(local_ip) not in local_net:
                return None
            score += 1 + local_net.prefixlen
        if peer_net is not None:
            if _address(peer_ip) not in peer_net:
                return None
            # a peer match is more specific than a local one (RFC 2409 §5.4:
            # the key is "shared with the peer")
            score += 1000 + peer_net.prefixlen
        return score


class RuleAction(str, Enum):
    ACCEPT = "accept"
    DENY = "deny"


@dataclass(frozen=True)
class IkeRule:
    """An IKE policy rule: first match wins; None fields match anything."""

    action: RuleAction
    peer: str | None = None
    identity: Identity | None = None
    name: str = ""

    def matches_peer(self, peer_ip: str) -> bool:
        net = _network(self.peer)
        return net is None or _address(peer_ip) in net

    def matches(self, peer_ip: str, identity: Identity | None) -> bool:
        if not self.matches_peer(peer_ip):
            return False
        if self.identity is None:
            return True
        return identity is not None and self.identity.matches(identity)


# ---------------------------------------------------------------------------
# Phase 2
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EspTransformSpec:
    """One ESP transform as IKEv1 numbers: cipher (RFC 2407 §4.4.4), Key Length
    attribute, integrity (§4.5); what a policy lists and an offer is compared by."""

    cipher: int
    key_length: int | None
    auth: int | None  # None for combined-mode ciphers (AES-GCM)

    def describe(self) -> str:
        try:
            cipher = EspTransformId(self.cipher).name
        except ValueError:
            cipher = str(self.cipher)
        try:
            auth = IpsecAuthAlgorithm(self.auth).name
        except ValueError:
            auth = str(self.auth)
        return f"{cipher}{'-' + str(self.key_length) if self.key_length else ''}/{auth}"


DEFAULT_ESP_TRANSFORMS = (
    EspTransformSpec(EspTransformId.AES_CBC, 256, IpsecAuthAlgorithm.HMAC_SHA2_256),
    EspTransformSpec(EspTransformId.AES_CBC, 128, IpsecAuthAlgorithm.HMAC_SHA2_256),
    EspTransformSpec(EspTransformId.AES_CBC, 256, IpsecAuthAlgorithm.HMAC_SHA),
    EspTransformSpec(EspTransformId.AES_CBC, 192, IpsecAuthAlgorithm.HMAC_SHA),
    EspTransformSpec(EspTransformId.AES_CBC, 128, IpsecAuthAlgorithm.HMAC_SHA),
    EspTransformSpec(EspTransformId.TRIPLE_DES, None, IpsecAuthAlgorithm.HMAC_SHA),
)


@dataclass(frozen=True)
class EspPolicy:
    """ESP proposals of a tunnel (static tunnel or dynamic tunnel profile).

    `pfs_group` None: PFS is accepted if the peer proposes a group we allow in
    `pfs_groups_accepted`, not required. A set `pfs_group` requires exactly it.
    """

    transforms: tuple[EspTransformSpec, ...] = DEFAULT_ESP_TRANSFORMS
    pfs_group: int | None = None
    pfs_groups_accepted: tuple[int, ...] = (2, 5, 14, 15, 16, 19, 20)
    lifetime_seconds: int = 3600
    lifetime_kilobytes: int | None = None


@dataclass(frozen=True)
class Selector:
    """A traffic selector from an ID payload (RFC 2407 §4.6.2): net, proto, port."""

    network: Network
    protocol: int = 0
    port: int = 0

    @classmethod
    def parse(cls, text: str, protocol: int = 0, port: int = 0) -> "Selector":
        return cls(ipaddress.ip_network(text, strict=False), protocol, port)

    def covers(self, other: "Selector") -> bool:
        if self.protocol and self.protocol != other.protocol:
            return False
        if self.port and self.port != other.port:
            return False
        return (other.network.version == self.network.version
                and other.network.subnet_of(self.network))  # type: ignore[arg-type]

    def __str__(self) -> str:
        extra = f"[{self.protocol}/{self.port}]" if self.protocol or self.port else ""
        return f"{self.network}{extra}"


@dataclass(frozen=True)
class StaticTunnel:
    """A configured site-to-site / static tunnel.

    Matched by peer address; the Quick Mode selectors must lie within
    `remote_selector` (IDci, the peer side) and `local_selector` (IDcr).
    """

    name: str
    peer: str
    secret: bytes = field(repr=False)
    local_selector: Selector
    remote_selector: Selector
    local: str | None = None
    esp: EspPolicy = EspPolicy()

    def matches_peer(self, peer_ip: str) -> bool:
        net = _network(self.peer)
        return net is None or _address(peer_ip) in net


# ---------------------------------------------------------------------------
# Timers and limits
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DpdPolicy:
    """RFC 3706: R-U-THERE after `interval` s idle; dead after `timeout` s."""

    interval: float = 10.0
    timeout: float = 30.0
    enabled: bool = True


@dataclass(frozen=True)
class Limits:
    """Bounds that keep every table finite."""

    max_half_open: int = 1000
    max_half_open_per_peer: int = 8
    half_open_timeout: float = 30.0
    max_sas_per_peer: int = 32
    max_sas: int = 100_000
    max_children_per_sa: int = 16
    #: A dynamic phase 1 waiting for a registered Transaction task must get
    #: there within this time, or it is deleted.
    transaction_timeout: float = 60.0
    #: Message ids remembered per SA for replay detection (one window for
    #: Quick Mode + Transaction, one for Informational).
    max_message_ids: int = 64
    #: Quick Modes waiting for HASH(3) on one phase 1 SA; a further msg 1 is
    #: dropped (the peer retransmits) so that one peer cannot pin many SPIs
    #: and DH computations.
    max_quick_modes_per_sa: int = 4
    #: Half-open SAs of one prefix (`half_open_prefix_v4` / `_v6` bits); at
    #: this limit (and at `max_half_open`) a new message 1 takes the slot of
    #: the oldest SA that never got message 3 (responder/ikev1/admission.py).
    max_half_open_per_prefix: int = 100
    half_open_prefix_v4: int = 24
    half_open_prefix_v6: int = 64
    #: Our cached reply resent to a retransmitted request, per SA, until the
    #: peer sends message 3 (it may be spoofed); further copies are dropped.
    max_unproven_resends: int = 4
    #: Error notifies in clear to sources not yet authenticated: a token
    #: bucket per engine (rate per second, burst); the rest is counted.
    unauthenticated_notify_rate: float = 50.0
    unauthenticated_notify_burst: int = 100
    #: Message 1s per second (burst: twice that) let through unparsed by the
    #: receiving socket's FirstMessageGate; beyond it only a prefix's own
    #: `first_messages_per_prefix_per_s` pass, the rest is shed (admission.py).
    #: 0: no gate.
    first_messages_per_s: float = 400.0
    first_messages_per_prefix_per_s: float = 10.0


@dataclass(frozen=True)
class RetransmitPolicy:
    """Resending: our own requests (Xauth), and our last message of an exchange
    until the peer's final one (QM msg 2): first timeout, factor, number of
    tries. AM msg 2 is not resent by timer (its source is unproven): only
    from the reply cache (`Limits.max_unproven_resends`)."""

    timeout: float = 4.0
    backoff: float = 1.8
    tries: int = 5


@dataclass(frozen=True)
class ResponderPolicy:
    """Everything the engine needs to decide; one immutable object per worker."""

    phase1: Phase1Policy = Phase1Policy()
    psks: tuple[PresharedKey, ...] = ()
    rules: tuple[IkeRule, ...] = ()
    default_action: RuleAction = RuleAction.ACCEPT
    static_tunnels: tuple[StaticTunnel, ...] = ()
    dynamic_esp: EspPolicy = EspPolicy()
    dpd: DpdPolicy = DpdPolicy()
    limits: Limits = Limits()
    retransmit: RetransmitPolicy = RetransmitPolicy()
    #: strongSwan's encap=yes: fake our NAT-D so the peer always encapsulates.
    force_encap: bool = False
    #: Dynamic phase 1 SAs must finish a Transaction (Xauth) before Quick Mode.
    require_transaction: bool = False
    #: Opt-in: export IKE keys (Wireshark IKEv1 decryption table) via callback.
    export_keys: bool = False
    #: Cisco Unity VID in our replies only when the peer sent it.
    send_unity: bool = True
    #: Our phase 1 identity (IDir); None = the local address the peer used.
    local_identity: Identity | None = None
    #: Opt-in: Aggressive Mode may use a Main Mode (address / wildcard) key for
    #: an identity that has no key of its own. Anyone may then ask for a HASH_R
    #: made with that key and crack it offline, so it is off: an unknown
    #: identity gets AUTHENTICATION-FAILED and no HASH_R, as from strongSwan.
    aggressive_address_keys: bool = False

    # ----------------------------------------------------------- rules
    def peer_allowed(self, peer_ip: str) -> bool:
        """Address-only check at message 1 (identity not known yet).

        A deny rule with an identity cannot decide here; it is checked again
        once the identity is known (`identity_allowed`).
        """
        for rule in self.rules:
            if not rule.matches_peer(peer_ip):
                continue
            if rule.identity is None:
                return rule.action is RuleAction.ACCEPT
            if rule.action is RuleAction.ACCEPT:
                return True  # some identity may still be accepted
        return self.default_action is RuleAction.ACCEPT

    def identity_allowed(self, peer_ip: str, identity: Identity) -> bool:
        for rule in self.rules:
            if rule.matches(peer_ip, identity):
                return rule.action is RuleAction.ACCEPT
        return self.default_action is RuleAction.ACCEPT

    # ----------------------------------------------------------- keys
    def psk_for_addresses(self, local_ip: str, peer_ip: str) -> bytes | None:
        """Main Mode key: most specific address match (peer beats local)."""
        candidates = [(psk.address_score(local_ip, peer_ip), psk.secret) for psk in self.psks
                      if psk.identity is None]
        candidates += [
            (2000 + (_network(t.peer).prefixlen if _network(t.peer) else 0), t.secret)
            for t in self.static_tunnels if t.matches_peer(peer_ip)
        ]
        matches = [(score, secret) for score, secret in candidates if score is not None]
        if not matches:
            return None
        return max(matches, key=lambda item: item[0])[1]

    def psk_for_identity(self, identity: Identity, local_ip: str, peer_ip: str, *,
                         fallback: bool = True) -> bytes | None:
        """Key bound to `identity`, else (`fallback`) the address key. Aggressive
        Mode passes fallback=False: its HASH_R goes to anyone who asks."""
        for psk in self.psks:
            if psk.identity is None or not psk.identity.matches(identity):
                continue
            if psk.address_score(local_ip, peer_ip) is not None:
                return psk.secret
        return self.psk_for_addresses(local_ip, peer_ip) if fallback else None

    # ----------------------------------------------------------- tunnels
    def static_tunnels_for(self, peer_ip: str) -> Iterable[StaticTunnel]:
        return (t for t in self.static_tunnels if t.matches_peer(peer_ip))
