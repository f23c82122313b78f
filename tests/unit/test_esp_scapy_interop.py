"""Cross-check against an independent ESP implementation: scapy's SecurityAssociation.

For every transform in the registry: packets we encapsulate are decrypted by scapy, and
packets scapy encrypts are decapsulated by us (tunnel mode, inner IPv4).
"""
import pytest
from scapy.layers.inet import IP
from scapy.layers.ipsec import ESP, SecurityAssociation

from responder.esp import TRANSFORMS, DropReason, EspDrop

from .esp_helpers import SERVER, SPI, SUBSCRIBER, flip_bit, icmp_echo, key_material, sa_pair

SCAPY_CIPHER = {3: "3DES", 12: "AES-CBC", 20: "AES-GCM"}
SCAPY_AUTH = {None: "NULL", 1: "HMAC-MD5-96", 2: "HMAC-SHA1-96", 5: "SHA2-256-128", 6: "SHA2-384-192",
              7: "SHA2-512-256"}
ALL = list(TRANSFORMS.values())
OUTER = dict(src="198.51.100.1", dst="203.0.113.5")


def scapy_sa(transform):
    enc_key, auth_key, salt = key_material(transform)
    return SecurityAssociation(
        ESP, spi=SPI, seq_num=1,
        crypt_algo=SCAPY_CIPHER[transform.enc_id],
        crypt_key=enc_key + salt,  # scapy takes the GCM salt appended to the key
        auth_algo=SCAPY_AUTH[transform.auth_id],
        auth_key=auth_key or None,
        tunnel_header=IP(**OUTER),
    )


@pytest.mark.parametrize("transform", ALL, ids=[t.name for t in ALL])
@pytest.mark.parametrize("size", [0, 5, 1372])
def test_scapy_decrypts_what_we_encapsulate(transform, size):
    outbound, _ = sa_pair(transform)
    inner = icmp_echo(size=size)
    esp_bytes = outbound.encapsulate(inner)
    outer = IP(bytes(IP(proto=50, **OUTER) / esp_bytes))
    decrypted = scapy_sa(transform).decrypt(outer)
    assert bytes(decrypted) == inner


@pytest.mark.parametrize("transform", ALL, ids=[t.name for t in ALL])
@pytest.mark.parametrize("size", [0, 5, 1372])
def test_we_decapsulate_what_scapy_encrypts(transform, size):
    _, inbound = sa_pair(transform, allowed_source=SUBSCRIBER)
    inner = icmp_echo(SUBSCRIBER, SERVER, size=size)
    encrypted = scapy_sa(transform).encrypt(IP(inner))
    esp_bytes = bytes(encrypted[ESP])
    with pytest.raises(EspDrop) as caught:
        inbound.decapsulate(flip_bit(esp_bytes, len(esp_bytes) // 2))
    assert caught.value.reason is DropReason.BAD_ICV
    assert inbound.decapsulate(esp_bytes) == inner
