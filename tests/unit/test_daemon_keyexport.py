"""ike.key_export_file: workers append Wireshark IKEv1 decryption-table lines."""

import os
import stat

from lab.gateways.dynipsec import merge_config
from responder.daemon.keyexport import with_key_export
from responder.ikev1.events import KeyExport, Phase1Deleted


def test_key_export_lines_appended_0600_other_events_passed_on(tmp_path):
    path = tmp_path / "ikev1_decryption_table"
    seen = []
    handler = with_key_export(path, seen.append)
    handler(KeyExport("ike1", "0102030405060708,aabb"))
    other = Phase1Deleted("ike1", ("198.18.1.2", 500), "peer-delete")
    handler(other)
    with_key_export(path, seen.append)(KeyExport("ike2", "1112131415161718,ccdd"))
    assert path.read_text() == "0102030405060708,aabb\n1112131415161718,ccdd\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert seen == [other]


def test_no_export_file_no_wrapper():
    seen = []
    assert with_key_export(None, seen.append) == seen.append


def test_gateway_extra_config_merges_mappings_and_replaces_lists():
    base = {"ike": {"force_encap": True, "dpd": {"interval": 10}}, "static_tunnels": [1]}
    merged = merge_config(base, {"ike": {"key_export_file": "/x"}, "static_tunnels": [2]})
    assert merged == {"ike": {"force_encap": True, "dpd": {"interval": 10},
                              "key_export_file": "/x"}, "static_tunnels": [2]}
    assert base["ike"] == {"force_encap": True, "dpd": {"interval": 10}}
