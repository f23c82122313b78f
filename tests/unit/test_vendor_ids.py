"""Vendor-ID recognition against the reference captures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from responder.ikev1.message import Message
from responder.ikev1.payloads import VendorId
from responder.ikev1.vendor_ids import (
    CISCO_UNITY,
    DPD,
    FRAGMENTATION,
    KNOWN_VENDOR_IDS,
    NATT_RFC3947,
    XAUTH,
    NattVersion,
    VendorKind,
    natt_vendor_id,
    peer_features,
    recognize,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
CAPTURE_DIR = VECTORS / "captures"
CAPTURES = ("ss-main", "ss-aggr", "vpnc-aggr")

# Wireshark's names (as in *.vendor-ids.md) -> our table names.
WIRESHARK_TO_OURS = {
    "XAUTH": "XAUTH",
    "RFC 3706 DPD (Dead Peer Detection)": "RFC 3706 DPD",
    "CISCO-UNITY": "CISCO-UNITY",
    "Cisco Fragmentation": "Cisco Fragmentation",
    "RFC 3947 Negotiation of NAT-Traversal in the IKE": "RFC 3947 NAT-T",
    "draft-ietf-ipsec-nat-t-ike-03": "draft-ietf-ipsec-nat-t-ike-03",
    "draft-ietf-ipsec-nat-t-ike-02\\n": "draft-ietf-ipsec-nat-t-ike-02\\n",
    "draft-ietf-ipsec-nat-t-ike-02": "draft-ietf-ipsec-nat-t-ike-02",
    "draft-ietf-ipsec-nat-t-ike-01": "draft-ietf-ipsec-nat-t-ike-01",
    "draft-ietf-ipsec-nat-t-ike-00": "draft-ietf-ipsec-nat-t-ike-00",
}


def packets(capture: str) -> list[dict]:
    return json.loads((VECTORS / f"{capture}.json").read_text())["packets"]


def cleartext_vid_rows(capture: str) -> list[tuple[str, int, str]]:
    """(sender, exchange, VID hex) of the cleartext messages, first seen first."""
    rows: list[tuple[str, int, str]] = []
    for packet in packets(capture):
        if packet["encrypted"]:
            continue
        message = Message.parse(bytes.fromhex(packet["data_hex"]))
        for vid in message.payloads_of(VendorId):
            row = (packet["src"], packet["exchange"], vid.data.hex().upper())
            if row not in rows:
                rows.append(row)
    return rows


def markdown_rows(capture: str) -> list[tuple[str, int, str, str]]:
    rows = []
    for line in (CAPTURE_DIR / f"{capture}.vendor-ids.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].isdigit():
            rows.append((cells[0], int(cells[1]), cells[2], cells[3]))
    return rows


@pytest.mark.parametrize("capture", CAPTURES)
def test_vendor_ids_in_first_messages_match_the_reference_list(capture):
    expected = markdown_rows(capture)
    assert cleartext_vid_rows(capture) == [row[:3] for row in expected]
    for _, _, vid_hex, wireshark_name in expected:
        entry = recognize(bytes.fromhex(vid_hex))
        assert entry is not None, vid_hex
        assert entry.name == WIRESHARK_TO_OURS[wireshark_name]


def test_vpnc_sends_its_own_vid_in_aggressive_mode_message_3():
    packet = packets("vpnc-aggr")[2]
    message = Message.parse(bytes.fromhex(packet["data_hex"]))
    decrypted = message.payloads_from_plaintext(bytes.fromhex(packet["plaintext_hex"]))
    names = [recognize(v.data).name for v in decrypted.payloads_of(VendorId)]
    assert names == ["vpnc (unknown to wireshark)", "CISCO-UNITY"]


@pytest.mark.parametrize(
    "capture, sender, expected",
    [
        ("ss-main", "198.18.1.2", dict(xauth=True, dpd=True, unity=True, fragmentation=True,
                                       natt_version=NattVersion.RFC3947)),
        ("ss-main", "198.18.0.1", dict(xauth=True, dpd=True, unity=False, fragmentation=True,
                                       natt_version=NattVersion.RFC3947)),
        ("vpnc-aggr", "198.18.2.1", dict(xauth=True, dpd=True, unity=True, fragmentation=False,
                                         natt_version=NattVersion.RFC3947)),
    ],
)
def test_peer_features_of_real_first_messages(capture, sender, expected):
    first = next(p for p in packets(capture) if p["src"] == sender)
    vids = [v.data for v in Message.parse(bytes.fromhex(first["data_hex"])).payloads_of(VendorId)]
    features = peer_features(vids)
    for name, value in expected.items():
        assert getattr(features, name) == value, name
    assert features.dynamic and features.unknown == ()


def test_natt_preference_order():
    drafts = {v: natt_vendor_id(v) for v in NattVersion}
    assert peer_features([drafts[NattVersion.DRAFT_00], drafts[NattVersion.DRAFT_02]]).natt_version \
        is NattVersion.DRAFT_02
    assert peer_features([drafts[NattVersion.DRAFT_02], drafts[NattVersion.DRAFT_02N]]).natt_version \
        is NattVersion.DRAFT_02N
    assert peer_features(list(drafts.values())).natt_version is NattVersion.RFC3947
    assert peer_features([drafts[NattVersion.DRAFT_03], drafts[NattVersion.DRAFT_01]]).natt_version \
        is NattVersion.DRAFT_03
    assert peer_features([]).natt_version is None
    assert NattVersion.RFC3947.is_rfc and not NattVersion.DRAFT_03.is_rfc


def test_xauth_vid_is_an_exact_eight_byte_match():
    assert recognize(bytes.fromhex("09002689DFD6B712")) is XAUTH
    assert recognize(bytes.fromhex("09002689DFD6B712") + b"\x00" * 8) is None
    assert recognize(bytes.fromhex("09002689DFD6B7")) is None
    assert not peer_features([bytes.fromhex("09002689DFD6B71200")]).dynamic


def test_versioned_vids_match_on_prefix():
    assert recognize(DPD.data[:14] + b"\x01\x01") is DPD
    assert peer_features([DPD.data[:14] + b"\x01\x01"]).dpd
    assert not peer_features([DPD.data[:14] + b"\x02\x00"]).dpd  # unknown major version
    assert recognize(DPD.data[:14]) is None  # too short
    assert recognize(CISCO_UNITY.data[:14] + b"\x02\x00") is CISCO_UNITY
    assert recognize(FRAGMENTATION.data[:16] + b"\x00\x00\x00\x00") is FRAGMENTATION
    assert recognize(FRAGMENTATION.data[:16]) is None
    ms = recognize(bytes.fromhex("1E2B516905991C7D7C96FCBFB587E46100000009"))
    assert ms is not None and ms.kind is VendorKind.IMPLEMENTATION


def test_unknown_vids_are_reported():
    features = peer_features([b"\x01\x02", NATT_RFC3947.data])
    assert features.unknown == (b"\x01\x02",)
    assert features.natt_version is NattVersion.RFC3947


def test_table_entries_are_consistent():
    names = [entry.name for entry in KNOWN_VENDOR_IDS]
    assert len(names) == len(set(names))
    for entry in KNOWN_VENDOR_IDS:
        assert recognize(entry.data) is entry
        assert entry.prefix <= entry.length == len(entry.data)
