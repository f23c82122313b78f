"""Subscriber lifecycle through dynipsec with real clients and the real FreeRADIUS:
licenses, teardown by DPD / idle timeout / INITIAL-CONTACT, the remote delete grace,
200 login/logout cycles leaving nothing behind, and a Stop with the right
Acct-Terminate-Cause for every Start of the module.

Needs root, Mininet and the Debian packages (marker `lab`). The module's gateway runs
local AAA (users from the lab plan) with RADIUS accounting to FreeRADIUS, DPD 2 s / 6 s,
a remote delete grace of 4 s and a local user with an idle timeout of 4 s; the license
tests and the grace re-attach test run a gateway of their own (before the module gateway
starts: tests run in file order). Clients 40-49 of the session lab, users 201-215 and
(for the cycles) 001-200.
"""
from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from clients import ClientError
from clients.strongswan import CONNECTION
from lab.gateways.dynipsec import DynipsecGateway
from tests.lab.conftest import cli, client_for, node_name, poll_until
from tests.lab.test_dynipsec_login import acct_records, resources_in_use, vr_cmd

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else "python3"
DPD = (2.0, 6.0)
GRACE = 4.0
IDLE_USER, IDLE_TIMEOUT = "user204", 4
CYCLES = 200

#: user -> the Acct-Terminate-Cause its sessions must end with (checked at module end)
EXPECTED_CAUSE: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def fifty_clients(lab):
    if len([c for c in lab.clients if not c.behind_nat]) < 50:
        pytest.skip("needs the 50 access-LAN clients of the default lab (clients 40-49)")


@pytest.fixture(scope="module")
def acct_mark(lab):
    """How many accounting records FreeRADIUS had before this module."""
    return len(lab.accounting_records())


@pytest.fixture(scope="module")
def gateway(lab, plan, acct_mark):
    workdir = lab.node_dir(lab.topology.router_name) / "gateway-dynipsec-lifecycle"
    with DynipsecGateway(lab.router, workdir, plan, lab, aaa="local", dpd=DPD,
                         remote_delete_grace=GRACE,
                         extra_users={IDLE_USER: {"idle_timeout": IDLE_TIMEOUT}}) as gw:
        yield gw


def users_of(gateway) -> set[str]:
    return {s.user for s in gateway.subscribers()}


def log_since(gateway, offset: int) -> str:
    return gateway.log_path.read_text(errors="replace")[offset:]


def stop_of(lab, acct_session_id: str, timeout: float = 5.0) -> dict:
    assert poll_until(lambda: any(r["Acct-Status-Type"] == "Stop"
                                  for r in acct_records(lab, acct_session_id)), timeout), \
        acct_records(lab, acct_session_id)
    records = acct_records(lab, acct_session_id)
    assert [r["Acct-Status-Type"] for r in records if r["Acct-Status-Type"] != "Interim-Update"] \
        == ["Start", "Stop"], records
    return records[-1]


def check_released(lab, gateway, row: dict, timeout: float = 3.0) -> None:
    """Interface, /32 route, address and licenses of `row` are gone."""
    assert poll_until(lambda: resources_in_use(gateway) == (0, 0, 0), timeout), \
        resources_in_use(gateway)
    assert not vr_cmd(lab, row["netns"], f"ip route show {row['address']}/32").strip()
    assert row["interface"] not in vr_cmd(lab, row["netns"], "ip -o link show")


# -- a. licenses ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["subscriber", "tunnel"])
def test_last_license_refused_then_granted(lab, plan, acct_mark, kind, wait_until):
    """One license of `kind` left (the other pool large): of two simultaneous strongSwan
    logins one is refused with the license reason (Xauth FAIL, no address), the other
    works; once it logs out the refused one logs in."""
    licenses = (1000, 1) if kind == "subscriber" else (1, 1000)
    reason = "subscriber" if kind == "subscriber" else "IPsec tunnel"
    counter = f"{kind}-license"
    workdir = lab.node_dir(lab.topology.router_name) / f"gateway-dynipsec-licenses-{kind}"
    users = ("user201", "user202")
    with DynipsecGateway(lab.router, workdir, plan, lab, aaa="local", licenses=licenses) as gw:
        with client_for(lab, plan, node_name(lab, 40), "strongswan", "aggressive", users[0],
                        "vr1") as a, \
                client_for(lab, plan, node_name(lab, 41), "strongswan", "aggressive", users[1],
                           "vr1") as b:
            a.prepare()
            b.prepare()
            offsets = {c.settings.user: c.log_path.stat().st_size for c in (a, b)}
            a.connect()
            b.connect()
            outcome = {}
            for client in (a, b):
                try:
                    outcome[client.settings.user] = client.wait_up(20).address
                except ClientError:
                    outcome[client.settings.user] = None
            winners = [u for u, address in outcome.items() if address]
            assert len(winners) == 1, outcome
            winner, loser = (a, b) if outcome[users[0]] else (b, a)
            # refused with the license reason: show licenses, the log; no address, no Start
            answer = cli(gw, "show", "licenses", "--json")
            assert answer["refused"].get(counter) == 1, answer
            assert not {k for k in answer["refused"] if k.endswith("-license")} - {counter}
            rows = {r["kind"]: r for r in answer["rows"]}
            assert rows[reason]["in_use"] == rows[reason]["total"] == 1, rows
            log = gw.log_path.read_text(errors="replace")
            assert re.search(rf"user '{loser.settings.user}' denied: no {reason} license "
                             r"available \(1 of 1 in use\)", log), log[-3000:]
            assert re.search(rf"Xauth user '{loser.settings.user}' failed after 1 attempts "
                             r"\(license-refused\)", log), log[-3000:]
            assert users_of(gw) == {winner.settings.user}
            assert sum(r["used"] for r in gw.show("pools")) == 1
            # the refused client got STATUS=FAIL at its first attempt (no re-prompt)
            client_log = loser.log_path.read_text(errors="replace")[offsets[loser.settings.user]:]
            assert re.search(rf"XAuth authentication of '{loser.settings.user}' \(myself\) "
                             "failed", client_log), client_log[-3000:]
            assert client_log.count("parsed TRANSACTION request") == 2, client_log[-3000:]
            assert client_log.count("CPRQ(X_USER X_PWD)") == 1, client_log[-3000:]
            row = gw.subscriber_rows(user=winner.settings.user)[0]
            EXPECTED_CAUSE[winner.settings.user] = "User-Request"
            winner.disconnect()
            assert wait_until(lambda: resources_in_use(gw) == (0, 0, 0), 5)
            loser.connect()
            info = loser.wait_up(20)
            assert plan.group("vr1").in_pool(info.address)
            assert {r["kind"]: r for r in gw.show("licenses")}[reason]["in_use"] == 1
            row2 = gw.subscriber_rows(user=loser.settings.user)[0]
            loser.disconnect()
            check_released(lab, gw, row2, 5)
    for r in (row, row2):
        assert stop_of(lab, r["acct_session_id"])["Acct-Terminate-Cause"] == "User-Request"


# -- i. remote delete grace -------------------------------------------------------------------
def test_remote_delete_grace_reattaches_then_logs_out(lab, plan, acct_mark, record_property, wait_until):
    """strongSwan deletes all its SAs and comes back at once: the same subscriber continues
    (address, interface, accounting session); it deletes them again and stays away: logged
    out after the grace, one Start and one Stop (User-Request).

    One worker: a subscriber lives on one worker, and the new phase 1 is steered by its
    new initiator cookie; on another worker it is a new login (the supervisor then ends
    the waiting one at once, see test_many_cycles... for the grace logout with 2 workers)."""
    user = "user205"
    expected = plan.group("vr2")
    workdir = lab.node_dir(lab.topology.router_name) / "gateway-dynipsec-grace"
    with DynipsecGateway(lab.router, workdir, plan, lab, aaa="local", workers=1,
                         remote_delete_grace=GRACE) as gateway, \
            client_for(lab, plan, node_name(lab, 44), "strongswan", "aggressive", user,
                       "vr2") as client:
        client.connect()
        first = client.wait_up(20)
        row = gateway.subscriber_rows(user=user)[0]
        client.charon.swanctl("--terminate", "--ike", CONNECTION, "--timeout", "5",
                              "--loglevel", "0", timeout=10)
        deleted = time.monotonic()
        assert wait_until(lambda: not gateway.show("ike-sa"), 3), gateway.show("ike-sa")
        assert user in users_of(gateway)  # waiting in the grace, resources kept
        client.connect()
        second = client.wait_up(20)
        back_after = time.monotonic() - deleted
        assert back_after < GRACE, back_after
        assert second.address == first.address
        again = gateway.subscriber_rows(user=user)
        assert len(again) == 1, again
        for field in ("key", "interface", "address", "acct_session_id"):
            assert again[0][field] == row[field], (field, again[0], row)
        assert again[0]["ike_sa"] != row["ike_sa"]
        assert client.ping(expected.server, count=2).received == 2
        time.sleep(GRACE + 0.5)  # the first grace timer must not fire any more
        assert user in users_of(gateway)
        client.charon.swanctl("--terminate", "--ike", CONNECTION, "--timeout", "5",
                              "--loglevel", "0", timeout=10)
        deleted = time.monotonic()
        assert wait_until(lambda: user not in users_of(gateway), GRACE + 4)
        gone_after = time.monotonic() - deleted
        check_released(lab, gateway, row)
    assert GRACE - 0.5 <= gone_after <= GRACE + 3, gone_after
    EXPECTED_CAUSE[user] = "User-Request"
    assert stop_of(lab, row["acct_session_id"])["Acct-Terminate-Cause"] == "User-Request"
    record_property("reattach_s", round(back_after, 2))
    print(f"\n[lifecycle] strongSwan back {back_after:.1f} s after its Delete: re-attached "
          f"({first.address} kept); after the second Delete logged out in {gone_after:.1f} s")


# -- b. client killed: DPD --------------------------------------------------------------------
def test_client_killed_dpd_tears_down(lab, plan, gateway, record_property, wait_until):
    """strongSwan SIGKILLed (no Delete): DPD 2 s / 6 s declares the peer dead; interface,
    route, address and licenses go; Stop with Lost-Carrier."""
    user = "user203"
    with client_for(lab, plan, node_name(lab, 42), "strongswan", "aggressive", user,
                    "vr1") as client:
        client.connect()
        client.wait_up(20)
        row = gateway.subscriber_rows(user=user)[0]
        killed = time.monotonic()
        client.kill()
        assert wait_until(lambda: user not in users_of(gateway), DPD[0] + DPD[1] + 6)
        detected = time.monotonic() - killed
    check_released(lab, gateway, row)
    EXPECTED_CAUSE[user] = "Lost-Carrier"
    assert stop_of(lab, row["acct_session_id"])["Acct-Terminate-Cause"] == "Lost-Carrier"
    assert DPD[1] - 1 <= detected <= DPD[0] + DPD[1] + 2, detected
    record_property("dpd_detection_s", round(detected, 2))
    print(f"\n[lifecycle] killed client detected dead by DPD after {detected:.1f} s "
          f"(interval {DPD[0]:g} s, timeout {DPD[1]:g} s)")


# -- c. idle timeout --------------------------------------------------------------------------
def test_idle_timeout_counts_data_only(lab, plan, gateway, record_property, wait_until):
    """Local user with idle timeout 4 s: pings through the tunnel for longer than that
    keep it; then silent (our DPD probes every 2 s and the client's answers are IKE,
    not data) it goes after ~4 s; Stop with Idle-Timeout."""
    with client_for(lab, plan, node_name(lab, 43), "strongswan", "aggressive", IDLE_USER,
                    "vr1") as client:
        client.connect()
        client.wait_up(20)
        row = gateway.subscriber_rows(user=IDLE_USER)[0]
        assert row["idle_timeout"] == IDLE_TIMEOUT
        ping = client.ping(plan.group("vr1").server, count=7, interval=1.0, timeout=10)
        assert ping.received >= 6, ping
        silent_from = time.monotonic()
        offset = gateway.log_path.stat().st_size
        assert IDLE_USER in users_of(gateway), "logged out although data flowed"
        assert wait_until(lambda: IDLE_USER not in users_of(gateway), IDLE_TIMEOUT + 6)
        idle_for = time.monotonic() - silent_from
    # meanwhile the peer answered our DPD probe: IKE traffic, which is no activity
    log = log_since(gateway, offset)
    assert re.search(rf" w{row['worker']} .*\[{re.escape(row['ike_sa'])}\] DPD: R-U-THERE",
                     log), log[-3000:]
    check_released(lab, gateway, row)
    EXPECTED_CAUSE[IDLE_USER] = "Idle-Timeout"
    assert stop_of(lab, row["acct_session_id"])["Acct-Terminate-Cause"] == "Idle-Timeout"
    assert IDLE_TIMEOUT - 1 <= idle_for <= IDLE_TIMEOUT + 3, idle_for
    record_property("idle_logout_s", round(idle_for, 2))
    print(f"\n[lifecycle] idle subscriber logged out {idle_for:.1f} s after its last packet "
          f"(idle timeout {IDLE_TIMEOUT} s, DPD probes answered meanwhile)")


# -- j. INITIAL-CONTACT -----------------------------------------------------------------------
def test_initial_contact_drops_the_old_session(lab, plan, gateway, record_property, wait_until):
    """vpnc killed (no Delete) and started again on the same host: its INITIAL-CONTACT
    removes the old subscriber at once (long before DPD would), the new one works."""
    user = "user206"
    offset = gateway.log_path.stat().st_size
    with client_for(lab, plan, node_name(lab, 45), "vpnc", "aggressive", user, "vr1") as client:
        client.connect()
        client.wait_up(20)
        old = gateway.subscriber_rows(user=user)[0]
        client.kill()
        restarted = time.monotonic()
        client.connect()
        info = client.wait_up(20)
        assert wait_until(lambda: old["key"] not in {r["key"] for r in
                                                     gateway.subscriber_rows(user=user)}, 2)
        replaced_after = time.monotonic() - restarted
        rows = gateway.subscriber_rows(user=user)
        assert len(rows) == 1 and rows[0]["key"] != old["key"], rows
        assert rows[0]["address"] == info.address
        assert client.ping(plan.group("vr1").server, count=2).received == 2
        log = log_since(gateway, offset)
        assert "INITIAL-CONTACT" in log
        # by its worker, or by the supervisor when the new phase 1 went to another worker
        assert re.search(rf"(older subscriber {re.escape(old['key'])} logged out|older "
                         rf"session\(s\) {re.escape(old['key'])} go \(initial-contact\))",
                         log), log[-3000:]
        assert re.search(rf"{re.escape(old['key'])} .*logged out: initial-contact", log), log[-3000:]
        new = rows[0]
        client.disconnect()
    assert wait_until(lambda: resources_in_use(gateway) == (0, 0, 0), GRACE + 4)
    assert not vr_cmd(lab, old["netns"], f"ip -o link show {old['interface']} 2>/dev/null").strip()
    assert stop_of(lab, old["acct_session_id"])["Acct-Terminate-Cause"] == "Lost-Carrier"
    assert stop_of(lab, new["acct_session_id"])["Acct-Terminate-Cause"] == "User-Request"
    assert replaced_after < DPD[1]
    record_property("initial_contact_replace_s", round(replaced_after, 2))
    print(f"\n[lifecycle] vpnc restarted: old subscriber replaced {replaced_after:.1f} s later "
          f"(DPD would need {DPD[1]:g}+ s)")


# -- e. 200 login/logout cycles ---------------------------------------------------------------
def _snapshot(lab, plan, gateway) -> dict:
    snap = {what: cli(gateway, "show", what, "--json")["rows"]
            for what in ("licenses", "pools", "ike-sa", "ipsec-sa", "subscribers")}
    for group in plan.groups:
        snap[f"link {group.vr}"] = vr_cmd(lab, group.vr, "ip -br link")
        snap[f"route {group.vr}"] = vr_cmd(lab, group.vr, "ip route")
    return snap


def test_many_cycles_leave_nothing_behind(lab, plan, gateway, record_property, wait_until):
    """200 Xauth + Mode-Config + Quick Mode logins and Deletes by the project's initiator
    (users 001-200 from one host) plus 3 strongSwan cycles: licenses, pools, SAs,
    interfaces and routes of both VRs exactly as before."""
    assert wait_until(lambda: not gateway.subscribers(), GRACE + 4)
    before = _snapshot(lab, plan, gateway)
    node = node_name(lab, 46)
    workdir = lab.node_dir(node)
    psk_file, password_file = workdir / "cycles.psk", workdir / "cycles.pw"
    psk_file.write_text(plan.psk_for("vr1", "aggressive"))
    password_file.write_text("pw-user{n:03d}")
    for path in (psk_file, password_file):
        os.chmod(path, 0o600)
    argv = [PYTHON, "-m", "clients.ikev1_initiator", "--server", str(plan.gateway),
            "--mode", "aggressive", "--id", "keyid:vr1", "--psk-file", str(psk_file),
            "--user", "user{n:03d}", "--password-file", str(password_file), "--first", "1",
            "--count", str(CYCLES), "--rate", "25", "--remote-selector",
            plan.group("vr1").intranet, "--timeout", "30", "--quiet"]
    started = time.monotonic()
    process = lab.node(node).popen(argv, cwd=str(REPO), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    lab.track_pid(process.pid, "ikev1-initiator cycles")
    # meanwhile, real strongSwan cycles (aggressive and main mode, both VRs)
    swan = [("aggressive", "vr2", "user211", 47), ("main", "vr1", "user212", 48),
            ("aggressive", "vr1", "user213", 49)]
    clients = [client_for(lab, plan, node_name(lab, i), "strongswan", mode, user, group)
               for mode, group, user, i in swan]
    try:
        for c in clients:
            c.connect()
        for c in clients:
            assert c.wait_up(30).address
        for c in clients:
            c.disconnect()
    finally:
        for c in clients:
            c.close()
    try:
        out, err = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    finally:
        lab.untrack_pid(process.pid)
    logins_done = time.monotonic() - started
    summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    assert process.returncode == 0 and summary.get("established") == CYCLES, \
        f"{summary}\n{err[-3000:]}"
    for n in range(1, CYCLES + 1):
        EXPECTED_CAUSE[f"user{n:03d}"] = "User-Request"
    for _, _, user, _ in swan:
        EXPECTED_CAUSE[user] = "User-Request"
    # every Delete waits out the grace: then everything must be back
    assert wait_until(lambda: not gateway.subscribers(), GRACE + 10), len(gateway.subscribers())
    assert wait_until(lambda: _snapshot(lab, plan, gateway) == before, 5)
    elapsed = time.monotonic() - started
    stats = gateway.request({"cmd": "show", "what": "statistics"})
    record_property("cycles_s", round(elapsed, 1))
    print(f"\n[lifecycle] {CYCLES} initiator cycles + {len(swan)} strongSwan cycles: logins and "
          f"Deletes done in {logins_done:.1f} s, all released (after the {GRACE:g} s grace) in "
          f"{elapsed:.1f} s; initiator: {summary}")
    assert stats


# -- d. a Stop with the right cause for every Start -------------------------------------------
def test_every_start_has_exactly_one_stop(lab, gateway, acct_mark, wait_until):
    """Across the module (both license gateways and the lifecycle gateway): every
    Acct-Session-Id with a Start has exactly one Stop, with the cause its test expects."""
    assert wait_until(lambda: not gateway.subscribers(), GRACE + 4)

    def sessions():
        by_id = collections.defaultdict(list)
        for record in lab.accounting_records()[acct_mark:]:
            by_id[record.get("Acct-Session-Id")].append(record)
        return by_id

    def started():  # a late Stop of an earlier module's session is not ours
        return {sid: recs for sid, recs in sessions().items()
                if any(r["Acct-Status-Type"] == "Start" for r in recs)}

    def complete():
        return all([r["Acct-Status-Type"] for r in recs].count("Stop") >= 1
                   for recs in started().values())
    wait_until(complete, 10)
    by_id = started()
    problems, causes = [], collections.Counter()
    for session_id, records in by_id.items():
        kinds = [r["Acct-Status-Type"] for r in records]
        if kinds.count("Start") != 1 or kinds.count("Stop") != 1:
            problems.append(f"{session_id}: {kinds}")
            continue
        stop = records[kinds.index("Stop")]
        user, cause = stop.get("User-Name"), stop.get("Acct-Terminate-Cause")
        causes[cause] += 1
        if user in EXPECTED_CAUSE and cause != EXPECTED_CAUSE[user]:
            problems.append(f"{session_id} ({user}): {cause}, {EXPECTED_CAUSE[user]} expected")
    assert not problems, problems
    assert len(by_id) >= CYCLES + 10, len(by_id)
    print(f"\n[lifecycle] {len(by_id)} accounting sessions, each one Start and one Stop: "
          f"{dict(causes)}")
