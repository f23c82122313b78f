"""The lab gateways' AAA work per mode: accounting only when asked (dynipsec), RADIUS
Xauth and accounting through eap-radius (the reference strongSwan gateway)."""
from __future__ import annotations

from lab.gateways import plan_from_topology
from lab.gateways.dynipsec import render_config
from lab.gateways.strongswan import radius_settings, with_eap_radius
from lab.topology import load_topology

TOPOLOGY = load_topology("default")
PLAN = plan_from_topology(TOPOLOGY)


def rendered(**options) -> dict:
    return render_config(PLAN, control_socket="control.sock", topology=TOPOLOGY, **options)


def test_dynipsec_sends_accounting_by_default():
    assert rendered()["aaa"]["accounting"]["enabled"] is True


def test_dynipsec_without_accounting_keeps_radius_and_local_users():
    aaa = rendered(accounting=False)["aaa"]
    assert "accounting" not in aaa
    assert aaa["local_users"] and aaa["radius"]["default_group"] == "lab"


STRONGSWAN_CONF = """charon {
  load = random nonce openssl xauth-generic unity
  plugins {
    vici {
      socket = unix://vici
    }
  }
}
"""


def test_strongswan_radius_mode_loads_eap_radius_with_accounting():
    settings = radius_settings(TOPOLOGY)
    conf = with_eap_radius(STRONGSWAN_CONF, **settings)
    assert "load = random nonce openssl xauth-generic unity eap-radius\n" in conf
    block = conf.split("eap-radius {", 1)[1].split("vici {", 1)[0]
    assert "accounting = yes" in block
    assert f"address = {TOPOLOGY.management.aaa}" in block
    assert f'secret = "{TOPOLOGY.aaa.secret}"' in block
    assert f"nas_identifier = {TOPOLOGY.router_name}" in block


def test_a_deep_work_directory_keeps_the_gateway_state_inside_it(tmp_path):
    """The control socket of a deep work directory moves to the temporary directory
    (sun_path is 108 bytes); the state directory must not follow it there."""
    from lab.gateways.dynipsec import DynipsecGateway

    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 5)
    gateway = DynipsecGateway(None, deep, PLAN, topology=TOPOLOGY)
    assert not gateway.daemon.control_socket.startswith(str(tmp_path))
    assert gateway.config["state_dir"] == str(deep.resolve() / "state")
