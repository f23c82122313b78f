#!/usr/bin/env python3
"""Extract IKEv1 test vectors from the strongSwan reference captures.

Usage (from the repository root):

    .venv/bin/python tests/vectors/extract.py [RESULTS_DIR]

RESULTS_DIR defaults to tests/vectors/captures (beside this script).
For each capture X in (ss-main, ss-aggr, vpnc-aggr) it writes
tests/vectors/X.json with every ISAKMP datagram in order (non-ESP marker
removed on port 4500; ESP and keepalives skipped):

  index, frame, time, src, dst, sport, dport, exchange, flags, msgid,
  icookie, rcookie, first_payload, encrypted, data_hex
  ke_hex / nonce_hex          (cleartext KE / Nonce payload bodies, if any)
  plaintext_hex               (decrypted body incl. padding, encrypted only;
                               from tshark with the capture's decryption table)

plus a "phase1" block (cookies, both KE and nonce values, the Wireshark
decryption-table key) so the phase 1 IV = HASH(g^xi | g^xr) can be derived.

The cleartext fields are read with scapy's own ISAKMP dissector, independent
of the codec under test. tshark is needed only for plaintext_hex; without it
those fields are omitted (and the script says so).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.isakmp import ISAKMP, ISAKMP_payload_KE, ISAKMP_payload_Nonce
from scapy.utils import rdpcap

CAPTURES = ("ss-main", "ss-aggr", "vpnc-aggr")
OUT_DIR = Path(__file__).resolve().parent
DEFAULT_RESULTS = OUT_DIR / "captures"
NON_ESP_MARKER = b"\x00\x00\x00\x00"


def ike_message(udp: UDP) -> bytes | None:
    """The ISAKMP message in a UDP datagram, or None for ESP/keepalive."""
    data = bytes(udp.payload)
    if 500 in (udp.sport, udp.dport):
        return data
    if data[:4] == NON_ESP_MARKER and len(data) > 4:
        return data[4:]
    return None


def cleartext_values(message: bytes) -> dict[str, str]:
    """KE and nonce bodies of a cleartext message, via scapy's dissector."""
    pkt = ISAKMP(message)
    values = {}
    if pkt.flags & 1:
        return values
    if pkt.haslayer(ISAKMP_payload_KE):
        values["ke_hex"] = bytes(pkt[ISAKMP_payload_KE].ke).hex()
    if pkt.haslayer(ISAKMP_payload_Nonce):
        values["nonce_hex"] = bytes(pkt[ISAKMP_payload_Nonce].nonce).hex()
    return values


def tshark_plaintexts(pcap: Path, table: str) -> dict[int, str]:
    """frame number -> decrypted IKE body hex, from `tshark -P -x`.

    -P prints one summary line per frame (it starts with the frame number),
    then the hex dumps of its data sources; the decrypted body is the one
    titled "Decrypted IKE (N bytes):".
    """
    if shutil.which("tshark") is None:
        return {}
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-o", f"uat:ikev1_decryption_table:{table}", "-P", "-x"],
        capture_output=True, text=True, check=True,
    ).stdout
    plaintexts: dict[int, str] = {}
    frame = 0
    in_decrypted = False
    for line in out.splitlines():
        summary = re.match(r"^\s*(\d+)\s+\d+\.\d+\s", line)
        if summary:
            frame, in_decrypted = int(summary.group(1)), False
        elif line.startswith("Decrypted IKE"):
            in_decrypted = True
            plaintexts[frame] = ""
        elif in_decrypted and re.match(r"^[0-9a-f]{4}  ", line):
            plaintexts[frame] += line[6:54].replace(" ", "")
        elif not line.strip():
            in_decrypted = False
    return plaintexts


def packet_record(index: int, frame: int, pkt, message: bytes) -> dict:
    udp = pkt[UDP]
    flags = message[19]
    record = {
        "index": index,
        "frame": frame,
        "time": f"{float(pkt.time):.6f}",
        "src": pkt[IP].src,
        "dst": pkt[IP].dst,
        "sport": udp.sport,
        "dport": udp.dport,
        "exchange": message[18],
        "flags": flags,
        "msgid": int.from_bytes(message[20:24], "big"),
        "icookie": message[0:8].hex(),
        "rcookie": message[8:16].hex(),
        "first_payload": message[16],
        "encrypted": bool(flags & 1),
        "data_hex": message.hex(),
    }
    record.update(cleartext_values(message))
    return record


def phase1_block(records: list[dict], table: str) -> dict:
    initiator = records[0]["src"]
    block = {"initiator": initiator, "exchange": records[0]["exchange"]}
    for record in records:
        if record["encrypted"]:
            continue
        role = "initiator" if record["src"] == initiator else "responder"
        for key in ("ke_hex", "nonce_hex"):
            if key in record:
                block[f"{role}_{key}"] = record[key]
        block["icookie"] = record["icookie"]
        if record["rcookie"] != "00" * 8:
            block["rcookie"] = record["rcookie"]
    icookie, enckey = table.split(",")
    block["decryption_table"] = {"icookie": icookie, "enckey": enckey}
    return block


def extract(results: Path, name: str) -> dict:
    pcap = results / f"{name}.pcap"
    table = (results / f"{name}.ikev1_decryption_table").read_text().strip()
    plaintexts = tshark_plaintexts(pcap, table)
    records = []
    for frame, pkt in enumerate(rdpcap(str(pcap)), start=1):
        if UDP not in pkt:
            continue
        message = ike_message(pkt[UDP])
        if message is None:
            continue
        record = packet_record(len(records), frame, pkt, message)
        if record["encrypted"] and frame in plaintexts:
            record["plaintext_hex"] = plaintexts[frame]
        records.append(record)
    return {
        "capture": name,
        "source": f"{pcap.name} (strongSwan 5.9.8 gateway reference run)",
        "phase1": phase1_block(records, table),
        "packets": records,
    }


def main(argv: list[str]) -> int:
    results = Path(argv[1]) if len(argv) > 1 else DEFAULT_RESULTS
    if shutil.which("tshark") is None:
        print("tshark not found: plaintext_hex fields are omitted", file=sys.stderr)
    for name in CAPTURES:
        vectors = extract(results, name)
        out = OUT_DIR / f"{name}.json"
        out.write_text(json.dumps(vectors, indent=1) + "\n")
        encrypted = sum(p["encrypted"] for p in vectors["packets"])
        print(f"{out}: {len(vectors['packets'])} messages, {encrypted} encrypted")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
