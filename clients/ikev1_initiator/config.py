"""What one initiator session is asked to do: immutable configuration data.

Everything here is plain data with defaults that imitate the strongSwan 5.9
client seen in the reference captures (AES-256 / SHA2-256 / MODP-2048 /
XAUTHInitPreShared; VIDs XAUTH, DPD, Unity, NAT-T RFC 3947 + draft-02n), so an
`InitiatorConfig(server=..., identity=..., psk=...)` looks like a real client
unless told otherwise. Secrets are kept out of `repr`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Callable, Mapping

from responder.ikev1.algorithms import CIPHER_TOKENS, GROUP_TOKENS, HASH_TOKENS, CipherEntry
from responder.ikev1.enums import (
    AuthMethod,
    ConfigAttribute,
    EncryptionAlgorithm,
    EspTransformId,
    GroupDescription,
    HashAlgorithm,
    IdType,
    IpsecAuthAlgorithm,
)
from responder.ikev1.payloads import Identification
from responder.ikev1.vendor_ids import NattVersion

__all__ = [
    "InitiatorConfigError",
    "Mode",
    "NattMode",
    "IdentitySpec",
    "IkeOffer",
    "EspOffer",
    "RetransmitSettings",
    "InitiatorConfig",
    "DEFAULT_MODE_CONFIG_REQUEST",
]


class InitiatorConfigError(ValueError):
    """The configuration asks for something the initiator cannot do (local fault)."""


class Mode(str, Enum):
    MAIN = "main"
    AGGRESSIVE = "aggressive"


class NattMode(str, Enum):
    """NAT traversal: OFF sends no NAT-T VIDs; ON floats to 4500 when NAT-D
    shows a NAT; FORCE fakes our NAT-D so both ends encapsulate (strongSwan's
    encap=yes) - an explicit option, never a silent default."""

    OFF = "off"
    ON = "on"
    FORCE = "force"


_ID_PREFIXES = {
    "keyid": IdType.KEY_ID,
    "fqdn": IdType.FQDN,
    "ufqdn": IdType.USER_FQDN,
    "userfqdn": IdType.USER_FQDN,
    "ipv4": IdType.IPV4_ADDR,
    "ip": IdType.IPV4_ADDR,
}


@dataclass(frozen=True)
class IdentitySpec:
    """Our phase 1 identity (IDii): an ID type and its text value."""

    id_type: int
    value: str

    @classmethod
    def parse(cls, text: str) -> "IdentitySpec":
        """`keyid:vr1`, `fqdn:host.example`, `ufqdn:user@example`, `ipv4:1.2.3.4`,
        or a bare IPv4 address."""
        prefix, sep, value = text.partition(":")
        if sep and prefix.lower() in _ID_PREFIXES:
            spec = cls(int(_ID_PREFIXES[prefix.lower()]), value)
        else:
            spec = cls(int(IdType.IPV4_ADDR), text)
        spec.payload()  # validate now, not in the middle of an exchange
        return spec

    def payload(self) -> Identification:
        try:
            if self.id_type == IdType.IPV4_ADDR:
                return Identification.ipv4_address(self.value)
            if self.id_type == IdType.FQDN:
                return Identification.fqdn(self.value)
            if self.id_type == IdType.USER_FQDN:
                return Identification.user_fqdn(self.value)
            if self.id_type == IdType.KEY_ID:
                return Identification.key_id(self.value)
        except ValueError as exc:
            raise InitiatorConfigError(f"identity {self.value!r}: {exc}") from None
        raise InitiatorConfigError(f"identity type {self.id_type} not supported")

    def __str__(self) -> str:
        return f"{IdType(self.id_type).name}:{self.value}"


@dataclass(frozen=True)
class IkeOffer:
    """One phase 1 transform we offer (RFC 2409 Appendix A)."""

    encryption: int = EncryptionAlgorithm.AES_CBC
    key_length: int | None = 256
    hash: int = HashAlgorithm.SHA2_256
    group: int = GroupDescription.MODP_2048
    auth_method: int = AuthMethod.XAUTH_INIT_PSK
    lifetime_seconds: int = 28800

    @classmethod
    def parse(cls, text: str, auth_method: int) -> "IkeOffer":
        """strongSwan-style `aes256-sha256-modp2048`, `3des-sha1-modp1024`."""
        parts = text.lower().split("-")
        if len(parts) != 3:
            raise InitiatorConfigError(f"IKE proposal {text!r}: expected cipher-hash-group")
        cipher, key_bits = _cipher(parts[0], lambda row: row.ike_number is not None)
        hash_row = _lookup(parts[1], HASH_TOKENS, "hash", lambda row: row.ike_number is not None)
        return cls(int(cipher.ike_number), cipher.key_length_value(key_bits),
                   int(hash_row.ike_number), parse_group(parts[2]), auth_method)


@dataclass(frozen=True)
class EspOffer:
    """One ESP transform we offer in Quick Mode (RFC 2407 §4.4.4, §4.5)."""

    cipher: int = EspTransformId.AES_CBC
    key_length: int | None = 256
    auth: int | None = IpsecAuthAlgorithm.HMAC_SHA

    @classmethod
    def parse(cls, text: str) -> "EspOffer":
        """strongSwan-style `aes256-sha1`, `aes128gcm16`, `3des-md5`."""
        parts = text.lower().split("-")
        cipher, key_bits = _cipher(parts[0], lambda row: row.esp_transform_id is not None)
        key_length = cipher.key_length_value(key_bits)
        if cipher.aead and len(parts) == 1:
            return cls(int(cipher.esp_transform_id), key_length, None)
        if len(parts) != 2 or cipher.aead:
            raise InitiatorConfigError(f"ESP proposal {text!r}: expected cipher-integrity")
        integrity = _lookup(parts[1], HASH_TOKENS, "integrity",
                            lambda row: row.esp_auth_id is not None)
        return cls(int(cipher.esp_transform_id), key_length, int(integrity.esp_auth_id))


def _lookup(name: str, table: Mapping[str, Any], what: str,
            usable: Callable[[Any], bool] = lambda row: True) -> Any:
    """The registry row (responder.ikev1.algorithms) a strongSwan-style token names."""
    row = table.get(name)
    if row is None or not usable(row):
        known = ", ".join(token for token, entry in table.items() if usable(entry))
        raise InitiatorConfigError(f"unknown {what} {name!r} (known: {known})")
    return row


def _cipher(name: str, usable: Callable[[CipherEntry], bool]) -> tuple[CipherEntry, int]:
    return _lookup(name, CIPHER_TOKENS, "cipher", lambda row: usable(row[0]))


def parse_group(text: str) -> int:
    """`modp2048` / `ecp256` / a number -> Group Description value."""
    if text.isdigit():
        return int(text)
    return int(_lookup(text.lower(), GROUP_TOKENS, "DH group").number)


@dataclass(frozen=True)
class RetransmitSettings:
    """Our requests are resent after `timeout`, then `timeout*backoff`, ...
    `tries` resends in all before the session fails (strongSwan: 4 s, 1.8, 5)."""

    timeout: float = 2.0
    backoff: float = 1.8
    tries: int = 5


#: What a remote-access client usually asks for (strongSwan: ADDRESS + DNS;
#: vpnc adds NETMASK, NBNS and the Unity attributes).
DEFAULT_MODE_CONFIG_REQUEST: tuple[int, ...] = (
    ConfigAttribute.INTERNAL_IP4_ADDRESS,
    ConfigAttribute.INTERNAL_IP4_NETMASK,
    ConfigAttribute.INTERNAL_IP4_DNS,
    ConfigAttribute.INTERNAL_IP4_NBNS,
)


@dataclass(frozen=True)
class InitiatorConfig:
    """One session's configuration.

    `ike_proposals` empty means one strongSwan-like default transform whose
    auth method is XAUTHInitPreShared when Xauth credentials are given and
    plain pre-shared key otherwise (the static-tunnel case).
    """

    server: str
    identity: IdentitySpec
    psk: bytes = field(repr=False)
    mode: Mode = Mode.MAIN
    server_port: int = 500
    server_natt_port: int = 4500
    ike_proposals: tuple[IkeOffer, ...] = ()
    # -- vendor IDs
    send_xauth_vid: bool = True
    send_dpd_vid: bool = True
    send_unity_vid: bool = True
    natt: NattMode = NattMode.ON
    natt_versions: tuple[NattVersion, ...] = (NattVersion.RFC3947, NattVersion.DRAFT_02N)
    extra_vendor_ids: tuple[bytes, ...] = ()
    initial_contact: bool = False
    # -- Xauth / Mode-Config
    xauth_user: str | None = None
    xauth_password: bytes | None = field(default=None, repr=False)
    mode_config: bool = True
    mode_config_request: tuple[int, ...] = DEFAULT_MODE_CONFIG_REQUEST
    # -- Quick Mode
    quick_mode: bool = True
    esp_proposals: tuple[EspOffer, ...] = (
        EspOffer(EspTransformId.AES_CBC, 256, IpsecAuthAlgorithm.HMAC_SHA),
        EspOffer(EspTransformId.AES_CBC, 128, IpsecAuthAlgorithm.HMAC_SHA),
        EspOffer(EspTransformId.AES_CBC, 256, IpsecAuthAlgorithm.HMAC_SHA2_256),
    )
    pfs_group: int | None = None
    #: None: the Mode-Config address (or our own address without Mode-Config)
    local_selector: str | None = None
    remote_selector: str = "0.0.0.0/0"
    esp_lifetime_seconds: int = 3600
    esp_lifetime_kilobytes: int | None = None
    # -- timing
    retransmit: RetransmitSettings = RetransmitSettings()
    #: the server must start Xauth this long after phase 1, or we give up
    xauth_wait_timeout: float = 15.0

    def __post_init__(self) -> None:
        ipaddress.IPv4Address(self.server)
        if self.xauth_user is not None and self.xauth_password is None:
            raise InitiatorConfigError("an Xauth user needs a password")
        if self.quick_mode and not self.esp_proposals:
            raise InitiatorConfigError("Quick Mode needs at least one ESP proposal")
        for selector in (self.local_selector, self.remote_selector):
            if selector is not None:
                ipaddress.IPv4Network(selector, strict=False)
        if self.natt is NattMode.OFF and self.natt_versions:
            object.__setattr__(self, "natt_versions", ())

    @property
    def wants_xauth(self) -> bool:
        return self.xauth_user is not None

    def effective_ike_proposals(self) -> tuple[IkeOffer, ...]:
        if self.ike_proposals:
            return self.ike_proposals
        auth = AuthMethod.XAUTH_INIT_PSK if self.wants_xauth else AuthMethod.PRE_SHARED_KEY
        return (IkeOffer(auth_method=auth),)

    def with_changes(self, **changes) -> "InitiatorConfig":
        """A copy with some fields replaced (e.g. per-session user for load runs)."""
        return replace(self, **changes)
