"""IANA registries used by IKEv1 (RFC 2407, 2408, 2409 and extensions).

One `IntEnum` per registry. Values a peer sends that are not in a registry must
still decode: `lookup(Registry, value)` returns the member, or an
`UnknownValue` - an `int` that remembers which registry it came from and prints
as e.g. ``EncryptionAlgorithm(0)`` - so unknown values flow through the codec,
compare equal to their number and serialise unchanged (vpnc proposes encryption
algorithm 0, for instance; the responder must skip that transform, not crash).

Sources: RFC 2407 (IPsec DOI), RFC 2408 (ISAKMP), RFC 2409 (IKE, Appendix A),
RFC 3706 (DPD), RFC 3947 (NAT-T), draft-ietf-ipsec-isakmp-xauth-06 (Xauth),
draft-dukes-ike-mode-cfg-02 (Mode-Config), Cisco Unity (as used by vpnc and
strongSwan), and the IANA "ipsec-registry".
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

__all__ = [
    "UnknownValue",
    "lookup",
    "ExchangeType",
    "PayloadType",
    "NotifyType",
    "Doi",
    "Situation",
    "ProtocolId",
    "IsakmpTransformId",
    "AhTransformId",
    "EspTransformId",
    "IpcompTransformId",
    "Phase1Attribute",
    "EncryptionAlgorithm",
    "HashAlgorithm",
    "AuthMethod",
    "GroupDescription",
    "GroupType",
    "LifeType",
    "IpsecAttribute",
    "EncapsulationMode",
    "IpsecAuthAlgorithm",
    "IdType",
    "CertEncoding",
    "CfgType",
    "ConfigAttribute",
    "XauthType",
    "XauthStatus",
    "HeaderFlag",
    "transform_id_registry",
]

E = TypeVar("E", bound=IntEnum)


class UnknownValue(int):
    """A number absent from its registry; behaves as an int, prints its registry."""

    registry: str

    def __new__(cls, registry: str, value: int) -> "UnknownValue":
        obj = super().__new__(cls, value)
        obj.registry = registry
        return obj

    @property
    def name(self) -> str:
        """Mirror `Enum.name` so callers can log `x.name` for any value."""
        return f"UNKNOWN_{int(self)}"

    @property
    def value(self) -> int:
        return int(self)

    def __repr__(self) -> str:
        return f"UnknownValue({self.registry!r}, {int(self)})"

    def __str__(self) -> str:
        return f"{self.registry}({int(self)})"


def lookup(registry: type[E], value: int) -> E | UnknownValue:
    """Return the registry member for `value`, or an `UnknownValue` placeholder."""
    try:
        return registry(value)
    except ValueError:
        return UnknownValue(registry.__name__, value)


# ---------------------------------------------------------------------------
# ISAKMP header and payloads (RFC 2408 §3.1, §3.2)
# ---------------------------------------------------------------------------


class ExchangeType(IntEnum):
    """RFC 2408 §3.1 / RFC 2409 §9 / Mode-Config draft (Transaction)."""

    NONE = 0
    BASE = 1
    IDENTITY_PROTECTION = 2
    MAIN_MODE = 2  # alias: RFC 2409 Main Mode is ISAKMP Identity Protection
    AUTHENTICATION_ONLY = 3
    AGGRESSIVE = 4
    INFORMATIONAL = 5
    TRANSACTION = 6  # draft-dukes-ike-mode-cfg-02 §3.1 (Mode-Config, Xauth)
    QUICK_MODE = 32
    NEW_GROUP_MODE = 33


class HeaderFlag(IntEnum):
    """ISAKMP header flag bits (RFC 2408 §3.1)."""

    ENCRYPTION = 0x01
    COMMIT = 0x02
    AUTHENTICATION_ONLY = 0x04


class PayloadType(IntEnum):
    """Next Payload values (RFC 2408 §3.1, RFC 3547, RFC 3947, NAT-T drafts)."""

    NONE = 0
    SA = 1
    PROPOSAL = 2
    TRANSFORM = 3
    KEY_EXCHANGE = 4
    IDENTIFICATION = 5
    CERTIFICATE = 6
    CERTIFICATE_REQUEST = 7
    HASH = 8
    SIGNATURE = 9
    NONCE = 10
    NOTIFICATION = 11
    DELETE = 12
    VENDOR_ID = 13
    ATTRIBUTE = 14  # Mode-Config / Xauth "Attribute Payload"
    SAK = 15  # RFC 3547 (GDOI); not valid in IKEv1 exchanges
    SAT = 16
    KD = 17
    SEQ = 18
    POP = 19
    NAT_D = 20  # RFC 3947 §3.2
    NAT_OA = 21  # RFC 3947 §5.2
    NAT_D_DRAFT = 130  # draft-ietf-ipsec-nat-t-ike-00..03
    NAT_OA_DRAFT = 131
    FRAGMENT = 132  # Cisco/strongSwan IKEv1 fragmentation


class NotifyType(IntEnum):
    """Notify Message Types (RFC 2408 §3.14.1, RFC 2407 §4.6.3, RFC 3706)."""

    # Errors (RFC 2408 §3.14.1)
    INVALID_PAYLOAD_TYPE = 1
    DOI_NOT_SUPPORTED = 2
    SITUATION_NOT_SUPPORTED = 3
    INVALID_COOKIE = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_MINOR_VERSION = 6
    INVALID_EXCHANGE_TYPE = 7
    INVALID_FLAGS = 8
    INVALID_MESSAGE_ID = 9
    INVALID_PROTOCOL_ID = 10
    INVALID_SPI = 11
    INVALID_TRANSFORM_ID = 12
    ATTRIBUTES_NOT_SUPPORTED = 13
    NO_PROPOSAL_CHOSEN = 14
    BAD_PROPOSAL_SYNTAX = 15
    PAYLOAD_MALFORMED = 16
    INVALID_KEY_INFORMATION = 17
    INVALID_ID_INFORMATION = 18
    INVALID_CERT_ENCODING = 19
    INVALID_CERTIFICATE = 20
    CERT_TYPE_UNSUPPORTED = 21
    INVALID_CERT_AUTHORITY = 22
    INVALID_HASH_INFORMATION = 23
    AUTHENTICATION_FAILED = 24
    INVALID_SIGNATURE = 25
    ADDRESS_NOTIFICATION = 26
    NOTIFY_SA_LIFETIME = 27
    CERTIFICATE_UNAVAILABLE = 28
    UNSUPPORTED_EXCHANGE_TYPE = 29
    UNEQUAL_PAYLOAD_LENGTHS = 30
    # Status (RFC 2408 §3.14.1, RFC 2407 §4.6.3)
    CONNECTED = 16384
    RESPONDER_LIFETIME = 24576
    REPLAY_STATUS = 24577
    INITIAL_CONTACT = 24578
    # Dead Peer Detection (RFC 3706 §5.1)
    R_U_THERE = 36136
    R_U_THERE_ACK = 36137
    # Cisco Unity (value as in strongSwan's notify_payload.h)
    UNITY_LOAD_BALANCE = 40501

    @property
    def is_error(self) -> bool:
        """Types 1..8191 are errors (RFC 2408 §3.14.1)."""
        return 1 <= self.value <= 8191


class Doi(IntEnum):
    """Domain of Interpretation (RFC 2408 §3.4, RFC 2407 §4.2, RFC 3547)."""

    ISAKMP = 0
    IPSEC = 1
    GDOI = 2


class Situation(IntEnum):
    """IPsec DOI situation bits (RFC 2407 §4.2); a bit mask, not a plain value."""

    IDENTITY_ONLY = 0x01
    SECRECY = 0x02
    INTEGRITY = 0x04


class ProtocolId(IntEnum):
    """Protocol identifiers (RFC 2407 §4.4.1)."""

    RESERVED = 0
    ISAKMP = 1
    IPSEC_AH = 2
    IPSEC_ESP = 3
    IPCOMP = 4


class IsakmpTransformId(IntEnum):
    """Transform IDs for PROTO_ISAKMP (RFC 2407 §4.4.2)."""

    KEY_IKE = 1


class AhTransformId(IntEnum):
    """Transform IDs for PROTO_IPSEC_AH (RFC 2407 §4.4.3, RFC 4868)."""

    MD5 = 2
    SHA = 3
    DES = 4
    SHA2_256 = 5
    SHA2_384 = 6
    SHA2_512 = 7


class EspTransformId(IntEnum):
    """Transform IDs for PROTO_IPSEC_ESP (RFC 2407 §4.4.4, RFC 4106, 4309, 4543)."""

    DES_IV64 = 1
    DES = 2
    TRIPLE_DES = 3
    RC5 = 4
    IDEA = 5
    CAST = 6
    BLOWFISH = 7
    TRIPLE_IDEA = 8
    DES_IV32 = 9
    RC4 = 10
    NULL = 11
    AES_CBC = 12
    AES_CTR = 13
    AES_CCM_8 = 14
    AES_CCM_12 = 15
    AES_CCM_16 = 16
    AES_GCM_8 = 18
    AES_GCM_12 = 19
    AES_GCM_16 = 20
    SEED_CBC = 21
    CAMELLIA_CBC = 22
    NULL_AUTH_AES_GMAC = 23


class IpcompTransformId(IntEnum):
    """Transform IDs for PROTO_IPCOMP (RFC 2407 §4.4.5)."""

    OUI = 1
    DEFLATE = 2
    LZS = 3
    LZJH = 4


# ---------------------------------------------------------------------------
# Phase 1 (IKE) SA attributes - RFC 2409 Appendix A
# ---------------------------------------------------------------------------


class Phase1Attribute(IntEnum):
    """Attribute classes (RFC 2409 App. A). B = basic (TV), V = variable (TLV)."""

    ENCRYPTION_ALGORITHM = 1  # B
    HASH_ALGORITHM = 2  # B
    AUTHENTICATION_METHOD = 3  # B
    GROUP_DESCRIPTION = 4  # B
    GROUP_TYPE = 5  # B
    GROUP_PRIME = 6  # V
    GROUP_GENERATOR_ONE = 7  # V
    GROUP_GENERATOR_TWO = 8  # V
    GROUP_CURVE_A = 9  # V
    GROUP_CURVE_B = 10  # V
    LIFE_TYPE = 11  # B
    LIFE_DURATION = 12  # V (sent as TV when it fits 16 bits)
    PRF = 13  # B
    KEY_LENGTH = 14  # B
    FIELD_SIZE = 15  # B
    GROUP_ORDER = 16  # V


class EncryptionAlgorithm(IntEnum):
    """RFC 2409 App. A, RFC 3602 (AES), RFC 4312 (Camellia)."""

    DES_CBC = 1
    IDEA_CBC = 2
    BLOWFISH_CBC = 3
    RC5_R16_B64_CBC = 4
    TRIPLE_DES_CBC = 5
    CAST_CBC = 6
    AES_CBC = 7
    CAMELLIA_CBC = 8


class HashAlgorithm(IntEnum):
    """RFC 2409 App. A, RFC 4868."""

    MD5 = 1
    SHA = 2
    TIGER = 3
    SHA2_256 = 4
    SHA2_384 = 5
    SHA2_512 = 6


class AuthMethod(IntEnum):
    """RFC 2409 App. A, RFC 4754, draft-ietf-ipsec-isakmp-hybrid-auth, Xauth draft."""

    PRE_SHARED_KEY = 1
    DSS_SIGNATURES = 2
    RSA_SIGNATURES = 3
    RSA_ENCRYPTION = 4
    RSA_REVISED_ENCRYPTION = 5
    ECDSA_256 = 9
    ECDSA_384 = 10
    ECDSA_521 = 11
    # Hybrid authentication (draft-ietf-ipsec-isakmp-hybrid-auth-05 §6)
    HYBRID_INIT_RSA = 64221
    HYBRID_RESP_RSA = 64222
    HYBRID_INIT_DSS = 64223
    HYBRID_RESP_DSS = 64224
    # Extended authentication (draft-ietf-ipsec-isakmp-xauth-06 §6)
    XAUTH_INIT_PSK = 65001
    XAUTH_RESP_PSK = 65002
    XAUTH_INIT_DSS = 65003
    XAUTH_RESP_DSS = 65004
    XAUTH_INIT_RSA = 65005
    XAUTH_RESP_RSA = 65006
    XAUTH_INIT_RSA_ENCRYPTION = 65007
    XAUTH_RESP_RSA_ENCRYPTION = 65008
    XAUTH_INIT_RSA_REVISED_ENCRYPTION = 65009
    XAUTH_RESP_RSA_REVISED_ENCRYPTION = 65010


class GroupDescription(IntEnum):
    """RFC 2409 §6, RFC 3526, RFC 5903, RFC 5114, RFC 6932."""

    MODP_768 = 1
    MODP_1024 = 2
    EC2N_155 = 3
    EC2N_185 = 4
    MODP_1536 = 5
    MODP_2048 = 14
    MODP_3072 = 15
    MODP_4096 = 16
    MODP_6144 = 17
    MODP_8192 = 18
    ECP_256 = 19
    ECP_384 = 20
    ECP_521 = 21
    MODP_1024_S160 = 22
    MODP_2048_S224 = 23
    MODP_2048_S256 = 24
    ECP_192 = 25
    ECP_224 = 26
    ECP_224_BP = 27
    ECP_256_BP = 28
    ECP_384_BP = 29
    ECP_512_BP = 30


class GroupType(IntEnum):
    """RFC 2409 App. A."""

    MODP = 1
    ECP = 2
    EC2N = 3


class LifeType(IntEnum):
    """Life Type for both phase 1 (RFC 2409 App. A) and IPsec SAs (RFC 2407 §4.5)."""

    SECONDS = 1
    KILOBYTES = 2


# ---------------------------------------------------------------------------
# IPsec DOI SA attributes - RFC 2407 §4.5
# ---------------------------------------------------------------------------


class IpsecAttribute(IntEnum):
    """RFC 2407 §4.5, RFC 3168 (ECN), RFC 4304 (ESN)."""

    SA_LIFE_TYPE = 1
    SA_LIFE_DURATION = 2
    GROUP_DESCRIPTION = 3
    ENCAPSULATION_MODE = 4
    AUTHENTICATION_ALGORITHM = 5
    KEY_LENGTH = 6
    KEY_ROUNDS = 7
    COMPRESS_DICTIONARY_SIZE = 8
    COMPRESS_PRIVATE_ALGORITHM = 9
    ECN_TUNNEL = 10
    EXTENDED_SEQUENCE_NUMBER = 11


class EncapsulationMode(IntEnum):
    """RFC 2407 §4.5, RFC 3947 §5.1, and the draft values used by old peers."""

    TUNNEL = 1
    TRANSPORT = 2
    UDP_TUNNEL = 3  # RFC 3947
    UDP_TRANSPORT = 4  # RFC 3947
    UDP_TUNNEL_DRAFT = 61443  # draft-ietf-ipsec-nat-t-ike-00..03
    UDP_TRANSPORT_DRAFT = 61444


class IpsecAuthAlgorithm(IntEnum):
    """RFC 2407 §4.5, RFC 4868, RFC 3566, RFC 4543."""

    HMAC_MD5 = 1
    HMAC_SHA = 2
    DES_MAC = 3
    KPDK = 4
    HMAC_SHA2_256 = 5
    HMAC_SHA2_384 = 6
    HMAC_SHA2_512 = 7
    HMAC_RIPEMD = 8
    AES_XCBC_MAC = 9
    SIG_RSA = 10
    AES_128_GMAC = 11
    AES_192_GMAC = 12
    AES_256_GMAC = 13


# ---------------------------------------------------------------------------
# Identification and certificates
# ---------------------------------------------------------------------------


class IdType(IntEnum):
    """Identification Type Values (RFC 2407 §4.6.2.1)."""

    IPV4_ADDR = 1
    FQDN = 2
    USER_FQDN = 3
    IPV4_ADDR_SUBNET = 4
    IPV6_ADDR = 5
    IPV6_ADDR_SUBNET = 6
    IPV4_ADDR_RANGE = 7
    IPV6_ADDR_RANGE = 8
    DER_ASN1_DN = 9
    DER_ASN1_GN = 10
    KEY_ID = 11


class CertEncoding(IntEnum):
    """Certificate Encoding (RFC 2408 §3.9)."""

    NONE = 0
    PKCS7 = 1
    PGP = 2
    DNS_SIGNED_KEY = 3
    X509_SIGNATURE = 4
    X509_KEY_EXCHANGE = 5
    KERBEROS_TOKENS = 6
    CRL = 7
    ARL = 8
    SPKI = 9
    X509_ATTRIBUTE = 10


# ---------------------------------------------------------------------------
# Mode-Config / Xauth (Transaction exchange)
# ---------------------------------------------------------------------------


class CfgType(IntEnum):
    """Attribute payload message types (draft-dukes-ike-mode-cfg-02 §3.2)."""

    REQUEST = 1
    REPLY = 2
    SET = 3
    ACK = 4


class ConfigAttribute(IntEnum):
    """Mode-Config (draft-dukes-ike-mode-cfg-02 §3.3), Xauth (xauth-06 §3.3),
    Cisco Unity (as named by vpnc and strongSwan)."""

    INTERNAL_IP4_ADDRESS = 1
    INTERNAL_IP4_NETMASK = 2
    INTERNAL_IP4_DNS = 3
    INTERNAL_IP4_NBNS = 4
    INTERNAL_ADDRESS_EXPIRY = 5
    INTERNAL_IP4_DHCP = 6
    APPLICATION_VERSION = 7
    INTERNAL_IP6_ADDRESS = 8
    INTERNAL_IP6_NETMASK = 9
    INTERNAL_IP6_DNS = 10
    INTERNAL_IP6_NBNS = 11
    INTERNAL_IP6_DHCP = 12
    INTERNAL_IP4_SUBNET = 13
    SUPPORTED_ATTRIBUTES = 14
    INTERNAL_IP6_SUBNET = 15
    # Xauth (draft-ietf-ipsec-isakmp-xauth-06 §3.3)
    XAUTH_TYPE = 16520
    XAUTH_USER_NAME = 16521
    XAUTH_USER_PASSWORD = 16522
    XAUTH_PASSCODE = 16523
    XAUTH_MESSAGE = 16524
    XAUTH_CHALLENGE = 16525
    XAUTH_DOMAIN = 16526
    XAUTH_STATUS = 16527
    XAUTH_NEXT_PIN = 16528
    XAUTH_ANSWER = 16529
    # Cisco Unity
    UNITY_BANNER = 28672
    UNITY_SAVE_PASSWD = 28673
    UNITY_DEF_DOMAIN = 28674
    UNITY_SPLIT_DNS_NAME = 28675
    UNITY_SPLIT_INCLUDE = 28676
    UNITY_NATT_PORT = 28677
    UNITY_LOCAL_LAN = 28678  # split exclude
    UNITY_PFS = 28679
    UNITY_FW_TYPE = 28680
    UNITY_BACKUP_SERVERS = 28681
    UNITY_DDNS_HOSTNAME = 28682
    UNITY_SMARTCARD_REMOVAL_DISCONNECT = 28683


class XauthType(IntEnum):
    """XAUTH-TYPE values (xauth-06 §3.3)."""

    GENERIC = 0
    RADIUS_CHAP = 1
    OTP = 2
    S_KEY = 3


class XauthStatus(IntEnum):
    """XAUTH-STATUS values (xauth-06 §3.3)."""

    FAIL = 0
    OK = 1


_TRANSFORM_ID_REGISTRIES: dict[int, type[IntEnum]] = {
    ProtocolId.ISAKMP: IsakmpTransformId,
    ProtocolId.IPSEC_AH: AhTransformId,
    ProtocolId.IPSEC_ESP: EspTransformId,
    ProtocolId.IPCOMP: IpcompTransformId,
}


def transform_id_registry(protocol_id: int) -> type[IntEnum] | None:
    """The Transform ID registry of a proposal's protocol (RFC 2407 §4.4)."""
    return _TRANSFORM_ID_REGISTRIES.get(int(protocol_id))
