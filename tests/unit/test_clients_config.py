"""Configuration rendering of the client harnesses and the reference gateway (no root).

charon has no dry run: the rendered files are checked with clients.settings, a
parser for strongSwan's settings syntax, plus the lines each pitfall needs.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from clients.base import ClientSettings, parse_ping_summary
from clients.charon import parse_list_sas
from clients.settings import SettingsError, lookup, parse_settings
from clients.strongswan import AttributeParser, ClientCharon
from clients.base import ClientError
from clients.vpnc import VPNC_MAX_LINE, VpncClient, info_from_vpnc_env, read_env_record
from lab.gateways.plan import default_plan
from lab.gateways.strongswan import MAIN_MODE_ID, GatewayCharon

PLAN = default_plan()


class FakeNode:
    name = "dlc1"
    pid = 1

    def popen(self, *args, **kwargs):  # pragma: no cover - never started here
        raise AssertionError("no process may start in a unit test")

    cmd = popen


def settings(mode="aggressive", group="vr1"):
    return ClientSettings(gateway=PLAN.gateway, group=group, psk=PLAN.psk_for(group, mode),
                          user="user001", password="pw-user001", mode=mode)


# -- strongSwan client ------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["main", "aggressive"])
def test_strongswan_client_config(tmp_path, mode):
    charon = ClientCharon(FakeNode(), tmp_path, settings(mode))
    charon.build_config()
    charon.check_config()  # parses both files
    conf = parse_settings(charon.conf_path.read_text())
    load = lookup(conf, "charon.load").split()
    assert load.index("kernel-libipsec") < load.index("kernel-netlink")
    assert int(lookup(conf, "charon.threads")) >= 10
    assert lookup(conf, "charon.cisco_unity") == "yes"
    assert lookup(conf, "charon.i_dont_care_about_security_and_use_aggressive_mode_psk") == "yes"
    assert lookup(conf, "charon.plugins.vici.socket") == f"unix://{tmp_path.resolve()}/charon.vici"
    assert lookup(conf, "charon.plugins.resolve.file") == f"{tmp_path.resolve()}/resolv.conf"
    # enc 3 (which dumps the Xauth password) goes only to the FIFO, never to charon.log
    assert "enc" not in lookup(conf, "charon.filelog.client")
    assert lookup(conf, "charon.filelog.attributes.path").endswith("attributes.fifo")

    swanctl = parse_settings(charon.swanctl_conf_path.read_text())
    gw = lookup(swanctl, "connections.gw")
    assert gw["version"] == "1"
    assert gw["aggressive"] == ("yes" if mode == "aggressive" else "no")
    assert gw["encap"] == "yes"
    assert gw["local"]["id"] == "keyid:vr1"
    assert gw["local-xauth"] == {"auth": "xauth", "xauth_id": "user001"}
    assert gw["children"]["gw"]["remote_ts"] == "10.50.0.0/24"
    assert lookup(swanctl, "secrets.ike-group.secret") == PLAN.psk_for("vr1", mode)
    assert lookup(swanctl, "secrets.xauth-user.secret") == "pw-user001"
    assert os.stat(charon.swanctl_conf_path).st_mode & 0o077 == 0


def test_settings_repr_hides_secrets():
    text = repr(settings())
    assert "pw-user001" not in text and "psk-vr1" not in text


# -- reference gateway ------------------------------------------------------------------
def test_gateway_config(tmp_path):
    charon = GatewayCharon(FakeNode(), tmp_path, PLAN)
    charon.build_config()
    charon.check_config()
    conf = parse_settings(charon.conf_path.read_text())
    load = lookup(conf, "charon.load").split()
    assert load.index("kernel-libipsec") < load.index("kernel-netlink")
    assert lookup(conf, "charon.i_dont_care_about_security_and_use_aggressive_mode_psk") == "yes"

    swanctl = parse_settings(charon.swanctl_conf_path.read_text())
    conns = swanctl["connections"]
    assert set(conns) == {"vr1-main", "vr1-aggressive", "vr2-main", "vr2-aggressive"}
    for group in PLAN.groups:
        main, aggr = conns[f"{group.group}-main"], conns[f"{group.group}-aggressive"]
        assert main["aggressive"] == "no" and aggr["aggressive"] == "yes"
        # Main Mode connections are bound to the address so they are enumerated first
        assert main["local_addrs"] == PLAN.gateway and aggr["local_addrs"] == "%any"
        assert main["local"]["id"] == MAIN_MODE_ID and aggr["local"]["id"] == PLAN.gateway
        for conn in (main, aggr):
            assert conn["remote"]["id"] == f"keyid:{group.group}"
            assert conn["pools"] == f"pool-{group.group}"
            assert conn["encap"] == "yes"
            assert "modp1024" in conn["proposals"]  # vpnc offers DH group 2 only
            assert conn["children"][f"{group.group}-{'main' if conn is main else 'aggressive'}"][
                "local_ts"] == group.intranet
        pool = swanctl["pools"][f"pool-{group.group}"]
        assert pool["addrs"] == group.pool
        assert pool["dns"] == ", ".join(group.dns)
        assert pool["nbns"] == ", ".join(group.wins)
        assert pool["28672"] == group.banner and pool["28674"] == group.default_domain

    secrets = swanctl["secrets"]
    main_key = secrets["ike-main-mode"]
    assert main_key["secret"] == PLAN.main_mode_psk
    assert {v for k, v in main_key.items() if k.startswith("id")} == {
        MAIN_MODE_ID, "keyid:vr1", "keyid:vr2"}
    assert secrets["ike-vr2"]["secret"] == "psk-vr2"
    xauth = [v for k, v in secrets.items() if k.startswith("xauth-")]
    assert len(xauth) == len(PLAN.users)
    assert {"id": "user250", "secret": "pw-user250"} in xauth


def test_settings_parser_rejects_broken_files():
    with pytest.raises(SettingsError):
        parse_settings("charon {\n  threads = 12\n")
    with pytest.raises(SettingsError):
        parse_settings("}\n")
    with pytest.raises(SettingsError):
        parse_settings("charon {\n  this is not a setting\n}\n")
    assert parse_settings('a {\n b = "x # not a comment" # comment\n}\n') == {
        "a": {"b": "x # not a comment"}}


# -- vpnc -------------------------------------------------------------------------------
def test_vpnc_config_leaves_the_password_out(tmp_path):
    client = VpncClient(FakeNode(), tmp_path, settings())
    client.prepare()
    text = client.conf_path.read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert "pw-user001" not in text
    assert not any(line.startswith("Xauth password") for line in lines)
    for expected in ("IPSec gateway 198.18.0.1", "IPSec ID vr1", "IPSec secret psk-vr1",
                     "Xauth username user001", "NAT Traversal Mode force-natt",
                     "IKE DH Group dh2", "No Detach",
                     f"Script {client.script_path} 10.50.0.0/24"):
        assert expected in lines
    assert os.access(client.script_path, os.X_OK)


def test_vpnc_config_in_a_long_work_directory(tmp_path):
    """vpnc cuts configuration lines at 198 bytes and reads the rest as a line of its own:
    the Script line carries no work directory, so a deep run directory still works, and a
    line that would still be cut is refused before vpnc starts."""
    deep = tmp_path / ("d" * 60) / ("e" * 30)
    client = VpncClient(FakeNode(), deep, settings())
    client.prepare()
    assert all(len(line) <= VPNC_MAX_LINE for line in client.conf_path.read_text().splitlines())
    deeper = tmp_path / ("d" * 100) / ("e" * 100)
    with pytest.raises(ClientError, match=r"vpnc.conf:\d+: \d+ bytes, vpnc reads at most 198"):
        VpncClient(FakeNode(), deeper, settings()).prepare()


def test_vpnc_rejects_main_mode(tmp_path):
    with pytest.raises(ValueError):
        VpncClient(FakeNode(), tmp_path, settings(mode="main"))


def test_vpnc_script_records_what_vpnc_hands_over(tmp_path):
    """Runs the script for reason=pre-init (it only records; no interface is touched)."""
    client = VpncClient(FakeNode(), tmp_path, settings())
    client.prepare()
    env = {"PATH": os.environ["PATH"], "reason": "pre-init", "TUNDEV": "tun0",
           "INTERNAL_IP4_ADDRESS": "10.99.1.7", "INTERNAL_IP4_NETMASK": "255.255.255.0",
           "INTERNAL_IP4_DNS": "10.50.0.53 10.50.0.54",
           "INTERNAL_IP4_NBNS": "10.50.0.137 10.50.0.138",
           "CISCO_BANNER": "Welcome\nsecond line", "CISCO_DEF_DOMAIN": "vr1.lab",
           "CISCO_SPLIT_INC": "1", "CISCO_SPLIT_INC_0_ADDR": "10.50.0.0",
           "CISCO_SPLIT_INC_0_MASKLEN": "24", "UNRELATED": "not recorded"}
    subprocess.run([str(client.script_path), "10.50.0.0/24"], env=env, check=True, timeout=10)
    record = read_env_record(client.env_record("pre-init"))
    assert "UNRELATED" not in record and "PATH" not in record
    info = info_from_vpnc_env(record)
    assert info.address == "10.99.1.7" and info.netmask == "255.255.255.0"
    assert info.dns == ["10.50.0.53", "10.50.0.54"]
    assert info.wins == ["10.50.0.137", "10.50.0.138"]
    assert info.banner == "Welcome\nsecond line"
    assert info.default_domain == "vr1.lab"
    assert info.split_networks == ["10.50.0.0/24"]


# -- parsers of client output -------------------------------------------------------------
ENC3_SAMPLE = """\
10[ENC] <gw|1> generating payload of type CONFIGURATION_ATTRIBUTE_V1
10[ENC] <gw|1>   generating rule 3 ATTRIBUTE_VALUE
10[ENC] <gw|1>    0: 70 77 2D 75 73 65 72 30 30 31                    pw-user001
10[ENC] <gw|1>   parsing rule 1 ATTRIBUTE_TYPE
10[ENC] <gw|1>    => 1
10[ENC] <gw|1>   parsing rule 3 ATTRIBUTE_VALUE
10[ENC] <gw|1>    => 4 bytes @ 0x7f10d0002120
10[ENC] <gw|1>    0: 0A 63 01 01                                      .c..
10[ENC] <gw|1> parsing CONFIGURATION_ATTRIBUTE_V1 payload finished
10[ENC] <gw|1>   parsing rule 1 ATTRIBUTE_TYPE
10[ENC] <gw|1>    => 4
10[ENC] <gw|1>   parsing rule 3 ATTRIBUTE_VALUE
10[ENC] <gw|1>    => 4 bytes @ 0x7f10cc0301b0
10[ENC] <gw|1>    0: 0A 32 00 89                                      .2..
10[ENC] <gw|1> parsing CONFIGURATION_ATTRIBUTE_V1 payload finished
10[ENC] <gw|1>   parsing rule 1 ATTRIBUTE_TYPE
10[ENC] <gw|1>    => 28672
10[ENC] <gw|1>   parsing rule 3 ATTRIBUTE_VALUE
10[ENC] <gw|1>    => 18 bytes @ 0x7f10cc0318e0
10[ENC] <gw|1>    0: 57 65 6C 63 6F 6D 65 20 74 6F 20 56 52 20 31 20  Welcome to VR 1 
10[ENC] <gw|1>   16: 21 21                                            !!
10[ENC] <gw|1> parsing CONFIGURATION_ATTRIBUTE_V1 payload finished
10[ENC] <gw|1>   parsing rule 1 ATTRIBUTE_TYPE
10[ENC] <gw|1>    => 28676
10[ENC] <gw|1>   parsing rule 3 ATTRIBUTE_VALUE
10[ENC] <gw|1>    => 14 bytes @ 0x7f10cc030050
10[ENC] <gw|1>    0: 0A 32 00 00 FF FF FF 00 00 00 00 00 00 00        .2............
10[ENC] <gw|1> parsing CONFIGURATION_ATTRIBUTE_V1 payload finished
"""


def test_attribute_parser_keeps_received_values_only():
    parser = AttributeParser()
    for line in ENC3_SAMPLE.splitlines():
        parser.feed("23:12:47.929 " + line)
    parser.flush()
    assert parser.replies == [{"address": ["10.99.1.1"], "wins": ["10.50.0.137"],
                               "banner": ["Welcome to VR 1 !!"],
                               "split_include": ["10.50.0.0/24"]}]
    assert "pw-user001" not in repr(parser.replies)


RAW_SAS = (
    "list-sa event {vr1-aggressive {uniqueid=1 version=1 state=ESTABLISHED local-host=198.18.0.1 "
    "remote-id=vr1 remote-xauth-id=user001 remote-vips=[10.99.1.1] child-sas {vr1-aggressive-1 "
    "{name=vr1-aggressive state=INSTALLED local-ts=[10.50.0.0/24] remote-ts=[10.99.1.1/32]}}}}\n"
    "list-sas reply {}\n")


def test_parse_list_sas():
    (sa,) = parse_list_sas(RAW_SAS)
    assert sa["name"] == "vr1-aggressive" and sa["state"] == "ESTABLISHED"
    assert sa["remote-xauth-id"] == "user001" and sa["remote-vips"] == ["10.99.1.1"]
    child = sa["child-sas"]["vr1-aggressive-1"]
    assert child["local-ts"] == ["10.50.0.0/24"] and child["state"] == "INSTALLED"


def test_parse_ping_summary():
    assert parse_ping_summary("3 packets transmitted, 2 received, 33% packet loss") == (
        parse_ping_summary("3 packets transmitted, 2 packets received"))
    result = parse_ping_summary("3 packets transmitted, 3 received, 0% packet loss")
    assert (result.sent, result.received, result.ok) == (3, 3, True)
    assert parse_ping_summary("ping: connect: Network is unreachable").sent == 0



@pytest.mark.parametrize("make", [
    lambda node, workdir: ClientCharon(node, workdir, settings()),
    lambda node, workdir: GatewayCharon(node, workdir, PLAN),
], ids=["client", "gateway"])
def test_vici_socket_of_a_long_work_directory_fits_in_sun_path(tmp_path, make):
    """A run directory deep enough that workdir/charon.vici exceeds the 107 bytes of
    sun_path (charon then fails to start, with an empty log): the socket moves to a
    short path, the same one for the same directory, another for another."""
    from clients.process import MAX_SOCKET_PATH

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    charon = make(FakeNode(), deep)
    charon.build_config()
    socket = lookup(parse_settings(charon.conf_path.read_text()),
                    "charon.plugins.vici.socket").removeprefix("unix://")
    assert len(socket.encode()) <= MAX_SOCKET_PATH
    assert socket == str(charon.vici_path) == str(make(FakeNode(), deep).vici_path)
    other = tmp_path / ("d" * 60) / ("f" * 60)
    assert make(FakeNode(), other).vici_path != charon.vici_path
