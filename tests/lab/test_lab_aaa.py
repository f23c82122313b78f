"""FreeRADIUS on the AAA host: PAP with reply attributes, accounting, RFC 5176 to the router."""
from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

TOOLS = str(Path(__file__).with_name("radius_tools.py"))


def run_tool(host, *args: str) -> dict:
    proc = host.popen([sys.executable, TOOLS, *map(str, args)], text=True)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, f"radius_tools {args[0]} failed: {err}"
    return json.loads(out.strip().splitlines()[-1])


def auth(lab, user: str, password: str) -> dict:
    t = lab.topology
    return run_tool(lab.router, "auth", t.management.aaa, t.aaa.secret, user, password, t.nas_address)


def test_pap_accept_with_vendor_attributes(lab):
    reply = auth(lab, "radius-vr2", "pw-radius-vr2")
    assert reply["code"] == "Access-Accept", reply
    attrs = reply["attributes"]
    assert attrs["ERX-Virtual-Router-Name"] == ["vr2"]
    assert attrs["ERX-Address-Pool-Name"] == ["vr2"]
    assert attrs["ERX-Primary-Dns"] == ["10.50.0.53"]
    assert attrs["ERX-Secondary-Dns"] == ["10.50.0.54"]
    assert attrs["ERX-Primary-Wins"] == ["10.50.0.137"]
    assert attrs["ERX-Secondary-Wins"] == ["10.50.0.138"]


def test_pap_accept_with_address_and_timeouts(lab):
    fixed = auth(lab, "radius-fixed", "pw-radius-fixed")
    assert fixed["code"] == "Access-Accept"
    assert fixed["attributes"]["Framed-IP-Address"] == ["10.99.1.200"]
    assert fixed["attributes"]["Framed-IP-Netmask"] == ["255.255.255.255"]
    assert fixed["attributes"]["Class"] == ["lab-class-fixed"]
    short = auth(lab, "radius-short", "pw-radius-short")
    assert short["attributes"]["Session-Timeout"] == [5]
    assert auth(lab, "radius-idle", "pw-radius-idle")["attributes"]["Idle-Timeout"] == [10]


def test_generated_user_accepted_and_bad_password_rejected(lab):
    assert auth(lab, "user001", "pw-user001")["code"] == "Access-Accept"
    assert auth(lab, "user250", "pw-user250")["code"] == "Access-Accept"
    assert auth(lab, "user001", "wrong")["code"] == "Access-Reject"
    assert auth(lab, "nobody", "pw-nobody")["code"] == "Access-Reject"


def test_accounting_start_and_stop_land_in_the_detail_file(lab):
    t = lab.topology
    session = uuid.uuid4().hex[:12]
    for status in ("Start", "Stop"):
        reply = run_tool(lab.router, "acct", t.management.aaa, t.aaa.secret, "user002", session,
                         status, t.nas_address)
        assert reply["code"] == "Accounting-Response"
    records = [r for r in lab.accounting_records() if r.get("Acct-Session-Id") == session]
    assert [r["Acct-Status-Type"] for r in records] == ["Start", "Stop"]
    assert records[0]["User-Name"] == "user002"
    assert records[1]["Acct-Terminate-Cause"] == "User-Request"
    assert records[0]["NAS-IP-Address"] == str(t.nas_address)


def test_disconnect_request_reaches_a_listener_on_the_router(lab):
    t = lab.topology
    listener = lab.router.popen([sys.executable, TOOLS, "listen", str(t.nas_address),
                                 str(t.management.aaa), t.aaa.secret, str(t.aaa.coa_port)], text=True)
    lab.track_pid(listener.pid, "pyrad DM listener (test)")
    try:
        assert listener.stdout.readline().strip() == "listening"
        output = lab.aaa_disconnect(user="user003", framed_ip="10.99.1.7", session_id="dm-test-1")
        assert "Received Disconnect-ACK" in output, output
        request = json.loads(listener.stdout.readline())
        assert request["code"] == "Disconnect-Request"
        assert request["source"] == str(t.management.aaa)
        assert request["attributes"]["User-Name"] == ["user003"]
        assert request["attributes"]["Framed-IP-Address"] == ["10.99.1.7"]
        coa = lab.aaa_coa(user="user003", extra={"Session-Timeout": "60"})
        assert "Received CoA-ACK" in coa, coa
    finally:
        listener.terminate()
        listener.wait(5)
        lab.untrack_pid(listener.pid)
