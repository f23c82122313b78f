"""tshark dissects every datagram of an in-memory login without complaint,
and decrypts it with the key the engine exports (Wireshark IKEv1 table)."""

import subprocess

import pytest
import scapy.all as scapy_all

from clients.parts import PROGRAMS, require
from responder.ikev1.enums import IdType
from responder.ikev1.events import KeyExport
from responder.ikev1.payloads import Identification
from responder.ikev1.policy import Identity, PresharedKey, ResponderPolicy

from clients.ikev1_initiator.pair import PSK, make_pair

TSHARK = PROGRAMS["tshark"][0]
BAD_MARKERS = ("Malformed", "Expert Info (Error", "[Malformed")


@pytest.fixture(autouse=True, scope="module")
def tshark_installed():
    require("tshark")


def write_pcap(pair, path) -> None:
    packets = [scapy_all.Ether() / scapy_all.IP(src=d.local[0], dst=d.remote[0]) /
               scapy_all.UDP(sport=d.local[1], dport=d.remote[1]) / scapy_all.Raw(d.data)
               for d in pair.wire]
    scapy_all.wrpcap(str(path), packets)


def dissect(pair, tmp_path) -> str:
    [export] = pair.of_type(KeyExport)
    path = tmp_path / "login.pcap"
    write_pcap(pair, path)
    text = subprocess.run(
        [TSHARK, "-r", str(path), "-V", "-o", f"uat:ikev1_decryption_table:{export.line}"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    for marker in BAD_MARKERS:
        at = text.find(marker)
        assert at < 0, text[max(0, at - 2000):at + 200]
    return text


def test_main_mode_login_dissects_cleanly(tmp_path):
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),), export_keys=True))
    pair.main_mode(initial_contact=True)
    pair.quick_mode(pfs_group=14)
    pair.send(pair.initiator.r_u_there(7))
    pair.responder.delete_phase1(pair.of_type(KeyExport)[0].sa_id, pair.now)
    pair.collect()
    text = dissect(pair, tmp_path)
    assert "R-U-THERE-ACK" in text  # only visible once decrypted
    assert "Delete SPI" in text


def test_aggressive_mode_login_dissects_cleanly(tmp_path):
    policy = ResponderPolicy(psks=(PresharedKey(PSK, identity=Identity(IdType.KEY_ID, "grp")),),
                             export_keys=True, force_encap=True)
    pair = make_pair(policy, initiator_kwargs=dict(identity=Identification.key_id("grp")))
    pair.aggressive_mode()
    pair.quick_mode()
    text = dissect(pair, tmp_path)
    assert "NAT-D (RFC 3947)" in text
    assert "Nonce DATA" in text
