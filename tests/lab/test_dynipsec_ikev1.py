"""The IKEv1 engine inside dynipsec against real clients.

* strongSwan in Main Mode and in Aggressive Mode completes phase 1 and is
  recognised as DYNAMIC (`show ike-sa --json`: dynamic, Xauth VID among the
  peer's vendor IDs); vpnc logs in too (for the capture);
* the project's initiator WITHOUT the Xauth VID completes phase 1 and Quick Mode
  for a configured static tunnel; a static phase 1 cannot negotiate a dynamic
  phase 2, a dynamic phase 1 cannot negotiate the static tunnel's selectors
  (both refused with INVALID_ID_INFORMATION, reported by the initiator);
* tshark dissects every packet dynipsec sent in the lab capture without
  malformed / expert-error marks and, with the keys dynipsec exported
  (``ike.key_export_file``, Wireshark's IKEv1 decryption table), decrypts the
  Transaction and Quick Mode exchanges of the strongSwan MM / AM and vpnc logins.

Needs root, Mininet, strongSwan, vpnc and tshark (marker `lab`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clients.parts import PROGRAMS, require
from tests.lab.conftest import cli

pytestmark = pytest.mark.lab

if os.geteuid() != 0:
    pytest.skip("lab tests need root (Mininet namespaces)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable
TSHARK = PROGRAMS["tshark"][0]
XAUTH_VID = "09002689dfd6b712"
STATIC_SECRET = "static-tunnel-key-d3"
STATIC_REMOTE, STATIC_LOCAL = "192.0.2.0/24", "10.50.0.0/24"
BAD_MARKERS = ("Malformed", "Expert Info (Error", "[Malformed")
#: the real-client logins: (kind, mode, group, client index, user)
LOGINS = [("strongswan", "main", "vr1", 10, "user010"),
          ("strongswan", "aggressive", "vr2", 11, "user011"),
          ("vpnc", "aggressive", "vr1", 12, "user012")]


def direct_clients(lab):
    return [slot for slot in lab.clients if not slot.behind_nat]


@pytest.fixture(scope="module")
def static_slot(lab):
    return direct_clients(lab)[13]


@pytest.fixture(scope="module")
def gateway(lab, plan, static_slot):
    from lab.gateways.dynipsec import DynipsecGateway

    workdir = lab.node_dir(lab.topology.router_name) / "gateway-dynipsec-ikev1"
    workdir.mkdir(parents=True, exist_ok=True)
    keys = workdir / "ikev1_decryption_table"
    keys.unlink(missing_ok=True)
    extra = {
        "ike": {"key_export_file": str(keys)},
        "static_tunnels": [{"name": "site-a", "peer": static_slot.address,
                            "secret": STATIC_SECRET, "remote_selector": STATIC_REMOTE,
                            "local_selector": STATIC_LOCAL}],
    }
    gw = DynipsecGateway(lab.router, workdir, plan, lab, extra_config=extra)
    gw.started_at = time.time()
    with gw:
        gw.key_file = keys
        yield gw


def run_initiator(lab, node: str, *args: str, psk: str, timeout: float = 30) -> dict:
    """`python -m clients.ikev1_initiator` in a client's namespace; the session line."""
    workdir = lab.node_dir(node)
    psk_file = workdir / "ikev1-d3.psk"
    psk_file.write_text(psk)
    os.chmod(psk_file, 0o600)
    argv = [PYTHON, "-m", "clients.ikev1_initiator", "--server", str(lab.topology.access.router),
            "--psk-file", str(psk_file), "--timeout", "10", *args]
    process = lab.node(node).popen(argv, cwd=str(REPO), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    lab.track_pid(process.pid, "ikev1-initiator d3")
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    finally:
        lab.untrack_pid(process.pid)
    lines = [dict(field.split("=", 1) for field in line.split())
             for line in out.splitlines() if line.startswith("session=")]
    assert len(lines) == 1, f"{out}\n{err[-3000:]}"
    lines[0]["stderr"] = err
    return lines[0]


def test_strongswan_and_vpnc_logins_are_dynamic(lab, plan, gateway, record_property, wait_until):
    from clients import ClientSettings, make_client

    started = time.monotonic()
    gateway.login_cookies = {}
    for kind, mode, group, index, user in LOGINS:
        node = lab.clients[index].name
        settings = ClientSettings(gateway=plan.gateway, group=group,
                                  psk=plan.psk_for(group, mode), user=user,
                                  password=plan.users[user], mode=mode,
                                  remote_networks=(plan.group(group).intranet,))
        with make_client(kind, lab.node(node), lab.node_dir(node), settings,
                         tracker=lab) as client:
            client.connect()
            info = client.wait_up(20)
            assert plan.group(group).in_pool(info.address), info
            [sub] = gateway.subscriber_rows(user=user)
            rows = [r for r in cli(gateway, "show", "ike-sa", "--json")["rows"]
                    if r["ike_sa"] == sub["ike_sa"] and r["user"] == user]
            assert len(rows) == 1, rows
            row = rows[0]
            assert row["exchange"] == mode and row["dynamic"] is True, row
            assert XAUTH_VID in row["vendor_ids"], row
            assert row["children"] >= 1, row  # Quick Mode done (for the capture)
            gateway.login_cookies[f"{kind}-{mode}"] = (row["cookies"][:16], user)
            client.disconnect()
        assert wait_until(lambda: user not in {s.user for s in gateway.subscribers()}, 5)
    record_property("three_logins_s", round(time.monotonic() - started, 1))


def test_static_tunnel_without_xauth_vid(lab, plan, gateway, static_slot):
    line = run_initiator(lab, static_slot.name, "--mode", "main",
                         "--id", f"ipv4:{static_slot.address}", "--no-xauth-vid",
                         "--static-selectors", f"{STATIC_REMOTE},{STATIC_LOCAL}",
                         psk=STATIC_SECRET)
    assert line["ok"] == "yes", line
    assert line["spis"] != "-", line
    # static: no subscriber, the log says so
    assert not gateway.subscriber_rows()
    log = gateway.log_path.read_text(errors="replace")
    assert "without the Xauth VID: static, no subscriber" in log


def test_static_phase1_cannot_negotiate_dynamic_phase2(lab, plan, gateway, static_slot):
    vr1 = plan.group("vr1")
    line = run_initiator(lab, static_slot.name, "--mode", "main",
                         "--id", f"ipv4:{static_slot.address}", "--no-xauth-vid",
                         "--static-selectors", f"{static_slot.address}/32,{vr1.intranet}",
                         psk=STATIC_SECRET)
    assert line["ok"] == "no", line
    assert line["notify"] == "INVALID_ID_INFORMATION", line


def test_dynamic_phase1_cannot_negotiate_static_selectors(lab, plan, gateway, wait_until):
    node = lab.clients[14].name
    user = "user014"
    password_file = lab.node_dir(node) / "ikev1-d3.pw"
    password_file.write_text(plan.users[user])
    os.chmod(password_file, 0o600)
    line = run_initiator(lab, node, "--mode", "aggressive", "--id", "keyid:vr1",
                         "--user", user, "--password-file", str(password_file),
                         "--local-selector", STATIC_REMOTE, "--remote-selector", STATIC_LOCAL,
                         psk=plan.psk_for("vr1", "aggressive"))
    # Xauth and Mode-Config went through; the Quick Mode for the static selectors not
    assert plan.group("vr1").in_pool(line["address"]), line
    assert line["ok"] == "no" and line["notify"] == "INVALID_ID_INFORMATION", line
    # the initiator gave up without a Delete: log the subscriber out from our side
    gateway.terminate(user=user)
    assert wait_until(lambda: user not in {s.user for s in gateway.subscribers()}, 5)


def test_tshark_dissects_and_decrypts_what_dynipsec_sent(lab, plan, gateway):
    require("tshark")
    cookies = getattr(gateway, "login_cookies", {})
    if len(cookies) != len(LOGINS):
        pytest.skip("needs the logins of test_strongswan_and_vpnc_logins_are_dynamic")
    pcap = lab.run_dir / "router-public.pcap"
    time.sleep(0.5)  # tcpdump -U writes each packet at once; let the last ones land
    lines = [line for line in gateway.key_file.read_text().splitlines() if line.strip()]
    exported = {line.split(",")[0] for line in lines}
    assert {icookie for icookie, _ in cookies.values()} <= exported, (cookies, exported)
    argv = [TSHARK, "-r", str(pcap), "-V"]
    for line in lines:
        argv += ["-o", f"uat:ikev1_decryption_table:{line}"]
    sent_by_us = (f"ip.src == {plan.gateway} && udp && "
                  f"frame.time_epoch >= {gateway.started_at:.3f}")
    text = subprocess.run(argv + ["-Y", sent_by_us], capture_output=True, text=True,
                          timeout=60, check=True).stdout
    assert text.count("\nFrame ") + text.startswith("Frame ") > 20, text[:2000]
    for marker in BAD_MARKERS:
        at = text.find(marker)
        assert at < 0, text[max(0, at - 3000):at + 300]
    # per login: its Transaction and Quick Mode exchanges decrypted (both directions)
    for login, (icookie, user) in cookies.items():
        spi = ":".join(icookie[i:i + 2] for i in range(0, 16, 2))

        def dissect(exchange: int) -> str:
            return subprocess.run(
                argv + ["-Y", f"isakmp.ispi == {spi} && isakmp.exchangetype == {exchange}"],
                capture_output=True, text=True, timeout=60, check=True).stdout

        transaction, quick_mode = dissect(6), dissect(32)
        # the client's REPLY (user name in clear once decrypted) and our Mode-Config
        assert f"XAUTH_USER_NAME: {user}" in transaction, (login, transaction[:3000])
        assert "INTERNAL_IP4_ADDRESS" in transaction, login
        assert "Identification" in quick_mode and "Nonce" in quick_mode, \
            (login, quick_mode[:3000])
        for marker in BAD_MARKERS:
            assert marker not in transaction + quick_mode, login
