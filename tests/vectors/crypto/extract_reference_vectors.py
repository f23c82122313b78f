#!/usr/bin/env python3
"""Extract IKEv1 known-answer vectors from the strongSwan reference captures.

Reproducible: run from the repository root with the project's virtualenv::

    .venv/bin/python tests/vectors/crypto/extract_reference_vectors.py [CAPTURE_DIR]

It reads CAPTURE_DIR/{ss-main,ss-aggr,vpnc-aggr}.pcap (scapy), the matching
*.ikev1_decryption_table (Wireshark's "icookie,encryption key" table written
by the reference run) and, for vpnc, the secrets that ``vpnc --debug 3``
printed in vpnc-aggr.vpnc-debug3.log; the PSKs are those of the reference
gateway's swanctl.conf, copied into CAPTURES below.  CAPTURE_DIR defaults to
tests/vectors/captures.  It writes one JSON file per capture beside itself,
naming its sources by their path relative to the repository.

Deliberately independent of responder.ikev1.crypto: it only copies raw facts
(message bytes, keys as printed by the peers, negotiated algorithm numbers) so
that the unit tests check our derivations against other implementations.
"""
from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path

from scapy.all import IP, UDP, rdpcap  # type: ignore[import-untyped]

OUT_DIR = Path(__file__).resolve().parent
REPOSITORY = Path(__file__).resolve().parents[3]
DEFAULT_CAPTURE_DIR = OUT_DIR.parent / "captures"

# gw/swanctl.conf: "ike-mm" (Main Mode wildcard) and "ike-vpngroup" (keyid:vpngroup).
CAPTURES = {
    "ss-main": {"psk": "mm-group-psk", "exchange": "main", "initiator": "strongSwan 5.9.8"},
    "ss-aggr": {"psk": "vpngroup-psk", "exchange": "aggressive", "initiator": "strongSwan 5.9.8"},
    "vpnc-aggr": {"psk": "vpngroup-psk", "exchange": "aggressive", "initiator": "vpnc 0.5.3"},
}

NON_ESP_MARKER = b"\x00\x00\x00\x00"
ISAKMP_HEADER_LEN = 28
PAYLOAD_SA = 1


def isakmp_datagrams(pcap: Path):
    """Yield (frame number, src ip, isakmp bytes or None, raw udp payload)."""
    for number, packet in enumerate(rdpcap(str(pcap)), start=1):
        udp = packet[UDP]
        data = bytes(udp.payload)
        if 4500 in (udp.sport, udp.dport):
            if data[:4] != NON_ESP_MARKER:
                yield number, packet[IP].src, None, data  # ESP in UDP (RFC 3948)
                continue
            data = data[4:]
        yield number, packet[IP].src, data, None


def payloads(first_type: int, body: bytes):
    """Walk a generic payload chain (RFC 2408 3.2): yield (type, payload body)."""
    ptype, offset = first_type, 0
    while ptype != 0:
        next_type, _, length = struct.unpack_from("!BBH", body, offset)
        yield ptype, body[offset + 4 : offset + length]
        ptype, offset = next_type, offset + length


def negotiated_transform(message: bytes) -> dict[str, int]:
    """Phase 1 attributes of the single transform in the responder's SA."""
    sa = next(b for t, b in payloads(message[16], message[ISAKMP_HEADER_LEN:]) if t == PAYLOAD_SA)
    proposal = sa[8 + 4 :]  # DOI, situation, then the proposal's generic header
    spi_size = proposal[2]
    transform = proposal[4 + spi_size + 4 :]  # skip the transform's generic header
    attrs, offset, result = transform[4:], 0, {}
    names = {1: "cipher", 2: "hash", 3: "auth_method", 4: "group", 14: "key_length"}
    while offset < len(attrs):
        kind, value = struct.unpack_from("!HH", attrs, offset)
        if kind & 0x8000:  # TV
            if (kind & 0x7FFF) in names:
                result[names[kind & 0x7FFF]] = value
            offset += 4
        else:  # TLV: value holds the length
            offset += 4 + value
    return result


def source_name(path: Path) -> str:
    """`path` relative to the repository, or only its file name if it lies outside."""
    try:
        return path.resolve().relative_to(REPOSITORY).as_posix()
    except ValueError:
        return path.name


def decryption_table_key(capture_dir: Path, name: str) -> tuple[str, str]:
    icookie, key = (capture_dir / f"{name}.ikev1_decryption_table").read_text().strip().split(",")
    return icookie, key


def vpnc_debug_secrets(log: str) -> dict[str, str]:
    """Hex blocks that vpnc --debug 3 prints under a 'label:' line."""
    def block(label: str, occurrence: int = 0) -> str:
        pattern = re.compile(rf"^\s*{re.escape(label)}:\s*\n((?:\s+[0-9a-f]{{2,8}}(?: [0-9a-f]{{2,8}})*\n)+)", re.M)
        found = pattern.findall(log)
        return "".join(found[occurrence].split())

    def inline(label: str, occurrence: int = 0) -> str:
        found = re.findall(rf"^\s*{re.escape(label)}: ([0-9a-f ]+)$", log, re.M)
        return "".join(found[occurrence].split())

    return {
        "dh_shared_secret": block("dh_shared_secret"),
        "skeyid": block("skeyid"),
        "skeyid_d": block("skeyid_d"),
        "skeyid_a": block("skeyid_a"),
        "skeyid_e": block("skeyid_e"),
        "enc_key": block("enc-key"),
        # printed right after the key derivation: hash(g^xi | g^xr), RFC 2409 App. B
        "phase1_initial_iv": inline("current_iv"),
        # printed after AM3 was sent: last CBC block of AM3 (base for phase 2 IVs)
        "phase1_final_iv": inline("initial_iv"),
        # vpnc is the initiator: rx = SA with the SPI vpnc chose, tx = the gateway's SPI
        "esp_rx_enc_key": block("rx.key_cry"),
        "esp_rx_auth_key": block("rx.key_md"),
        "esp_tx_enc_key": block("tx.key_cry"),
        "esp_tx_auth_key": block("tx.key_md"),
        "esp_rx_spi": re.search(r"remote -> local spi: 0x([0-9a-f]{8})", log).group(1),
        "esp_tx_spi": re.search(r"local -> remote spi: 0x([0-9a-f]{8})", log).group(1),
    }


def extract(capture_dir: Path, name: str, meta: dict[str, str]) -> dict:
    icookie, enc_key = decryption_table_key(capture_dir, name)
    messages, esp = [], []
    initiator_ip = None
    pcap = capture_dir / f"{name}.pcap"
    for number, src, isakmp, esp_payload in isakmp_datagrams(pcap):
        initiator_ip = initiator_ip or src
        role = "initiator" if src == initiator_ip else "responder"
        if isakmp is None:
            esp.append({"frame": number, "from": role, "hex": esp_payload.hex()})
            continue
        if isakmp[:8].hex() != icookie:
            sys.exit(f"{name}: frame {number} belongs to another IKE SA")
        messages.append({"frame": number, "from": role, "hex": isakmp.hex()})
    vector = {
        "source": source_name(pcap),
        "initiator": meta["initiator"],
        "exchange": meta["exchange"],
        "psk": meta["psk"],
        "negotiated": negotiated_transform(bytes.fromhex(messages[1]["hex"])),
        "icookie": icookie,
        "wireshark_encryption_key": enc_key,
        "messages": messages,
        "esp": esp,
    }
    log = capture_dir / f"{name}.vpnc-debug3.log"
    if log.exists():
        vector["vpnc_debug"] = vpnc_debug_secrets(log.read_text())
        vector["vpnc_debug"]["source"] = source_name(log)
    return vector


def main(argv: list[str]) -> None:
    capture_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_CAPTURE_DIR
    for name, meta in CAPTURES.items():
        path = OUT_DIR / f"reference_{name}.json"
        path.write_text(json.dumps(extract(capture_dir, name, meta), indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv)
