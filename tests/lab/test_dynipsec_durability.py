"""dynipsec loses nothing when parts of it die: real strongSwan clients, the lab's real
FreeRADIUS, real VR namespaces.

* a worker SIGKILLed: exactly its subscribers are logged out (Stop with Port-Error,
  addresses and licenses back), the other worker's subscribers keep passing traffic
  through their ESP during and after the kill;
* a TUN device with the daemon's naming left in a VR namespace (as a crashed run can
  leave it) is removed when the daemon starts;
* the supervisor SIGKILLed while a Stop waits for an unreachable FreeRADIUS: the next
  start sends it (once), after Accounting-On, with new Acct-Session-Ids; a clean stop
  sends Accounting-Off.

Needs root, Mininet and the Debian packages (marker `lab`). Clients 0-5 of the session
lab, users 231-238.
"""
from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.lab.conftest import client_for, node_name
from tests.lab.test_dynipsec_login import acct_records, resources_in_use, vr_cmd

pytestmark = pytest.mark.lab

LEFTOVER = "ips19-999"        # vr1's prefix is ips1: worker 9, subscriber 999
RELOGINS = 10                 # all on one worker after them: once in 32,768 runs


@pytest.fixture(scope="module")
def gateway(lab, plan, gateway_factory):
    with gateway_factory("dynipsec", "dynipsec-durability", aaa="local", workers=2) as gw:
        yield gw


def users_of(gateway) -> set[str]:
    return {s.user for s in gateway.subscribers()}


def records_kinds(lab, session_id: str) -> list[str]:
    return [r["Acct-Status-Type"] for r in acct_records(lab, session_id)]


def _connect_until_both_workers(lab, plan, gateway, stack, wait_until) -> dict[int, list]:
    """Clients log in one by one until both workers hold at least one. Steering follows
    the random initiator cookie, so six logins land on one worker once in 32 runs: then
    the sixth client logs out and in again (a new cookie each time). Returns
    worker -> [(client, row), ...]."""
    by_worker: dict[int, list] = {0: [], 1: []}
    for index in range(6 + RELOGINS):
        if index >= 6:
            client, row = by_worker[row["worker"]].pop()
            client.disconnect()
            assert wait_until(lambda: user not in users_of(gateway), 10)
        else:
            user = f"user{231 + index}"
            client = stack.enter(client_for(lab, plan, node_name(lab, index), "strongswan",
                                            "aggressive", user, "vr1"))
        client.connect()
        client.wait_up(20)
        row = gateway.subscriber_rows(user=user)[0]
        by_worker[row["worker"]].append((client, row))
        if by_worker[0] and by_worker[1]:
            return by_worker
    raise AssertionError(f"{6 + RELOGINS} logins all steered to one worker: {by_worker}")


class _Clients:
    def __init__(self):
        self.clients = []

    def enter(self, client):
        self.clients.append(client)
        return client

    def close(self):
        for client in self.clients:
            client.close()


def test_worker_killed_only_its_subscribers_go_the_others_keep_traffic(
        lab, plan, gateway, wait_until, record_property):
    server = plan.group("vr1").server
    stack = _Clients()
    try:
        by_worker = _connect_until_both_workers(lab, plan, gateway, stack, wait_until)
        victim_index = max(by_worker, key=lambda w: len(by_worker[w]))
        victims = by_worker[victim_index]
        survivors = by_worker[1 - victim_index]
        for client, _ in survivors:
            assert client.ping(server, count=2).received == 2
        workers = {w["index"]: w for w in gateway.workers()}
        victim = workers[victim_index]
        during: dict[str, object] = {}
        COUNT = 25

        def ping_during(client):
            during[client.settings.user] = client.ping(server, count=COUNT, interval=0.2,
                                                       timeout=COUNT * 0.2 + 5)
        pingers = [threading.Thread(target=ping_during, args=(c,)) for c, _ in survivors]
        for thread in pingers:
            thread.start()
        time.sleep(1.0)
        killed = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        victim_users = {row["user"] for _, row in victims}
        assert wait_until(lambda: not victim_users & users_of(gateway), 15)
        logged_out_after = time.monotonic() - killed
        for thread in pingers:
            thread.join(COUNT * 0.2 + 15)
        survivors_left = len(survivors)
        # licenses (tunnel + subscriber per survivor), addresses, registry: the survivors' only
        assert wait_until(lambda: resources_in_use(gateway) ==
                          (2 * survivors_left, survivors_left, survivors_left), 30), \
            resources_in_use(gateway)
        assert users_of(gateway) == {row["user"] for _, row in survivors}
        for _, row in survivors:
            assert gateway.subscriber_rows(user=row["user"])[0]["key"] == row["key"]
        for user, result in during.items():
            assert result.received >= COUNT - 1, (user, result)
        assert wait_until(lambda: all(w["ready"] for w in gateway.workers())
                          and {w["index"]: w for w in gateway.workers()}[victim_index]
                          ["generation"] == victim["generation"] + 1, 30)
        for client, _ in survivors:     # after the kill and the restart
            assert client.ping(server, count=3).received == 3
        for _, row in victims:
            assert wait_until(lambda row=row: "Stop" in records_kinds(lab, row["acct_session_id"]), 15)
            stop = acct_records(lab, row["acct_session_id"])[-1]
            assert stop["Acct-Terminate-Cause"] == "Port-Error", stop
            assert not vr_cmd(lab, row["netns"], f"ip route show {row['address']}/32").strip()
            assert row["interface"] not in vr_cmd(lab, row["netns"], "ip -o link show")
        for _, row in survivors:
            assert "Stop" not in records_kinds(lab, row["acct_session_id"])
        for client, _ in victims:
            client.kill()
        for client, _ in survivors:
            client.disconnect()
        assert wait_until(lambda: resources_in_use(gateway) == (0, 0, 0), 30), \
            resources_in_use(gateway)
    finally:
        stack.close()
    lost = {user: COUNT - result.received for user, result in during.items()}
    record_property("worker_loss_logout_s", round(logged_out_after, 2))
    print(f"\n[durability] worker {victim_index} killed: {len(victims)} subscribers logged out "
          f"in {logged_out_after:.1f} s; {len(survivors)} on the other worker lost {lost} of "
          f"{COUNT} pings meanwhile")


def test_leftover_interface_removed_at_start(lab, plan, gateway, wait_until):
    """A persistent TUN named like the daemon's, with a /32 route, in vr1's namespace
    (what a crashed run can leave): gone once the daemon has started again."""
    vr = plan.group("vr1").vr
    address = "10.255.77.9"
    node = lab.node(vr)
    gateway.stop()
    try:
        out = node.cmd(f"ip tuntap add mode tun name {LEFTOVER} && ip link set {LEFTOVER} up && "
                       f"ip route add {address}/32 dev {LEFTOVER} scope link && echo made")
        assert out.strip().endswith("made"), out
        offset = gateway.log_path.stat().st_size
        gateway.start()
        assert LEFTOVER not in vr_cmd(lab, vr, "ip -o link show")
        assert not vr_cmd(lab, vr, f"ip route show {address}/32").strip()
        log = gateway.log_path.read_text(errors="replace")[offset:]
        assert re.search(rf"VR {re.escape(vr)}: 1 interfaces and 1 access routes of an earlier "
                         rf"run removed \({LEFTOVER}\)", log), log[-3000:]
        assert "start-up cleanup: 1 leftover interfaces removed" in log
    finally:
        node.cmd(f"ip link delete {LEFTOVER} 2>/dev/null")
        if not gateway.ready:
            gateway.start()


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for init to reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def _state_dir(gateway) -> Path:
    return Path(gateway.config["state_dir"])


def _radius_addresses(gateway) -> list[str]:
    groups = gateway.config["aaa"]["radius"]["server_groups"].values()
    return sorted({str(server["address"]) for group in groups for server in group["servers"]})


def test_stop_of_a_sigkilled_supervisor_sent_after_restart(lab, plan, gateway, wait_until):
    """FreeRADIUS unreachable (a blackhole route in the router) while a client logs out:
    its Stop waits in the journal; the supervisor is SIGKILLed; the route goes; the next
    start sends the Stop exactly once, before Accounting-On; a clean stop sends
    Accounting-Off. (Packets only held up, e.g. a SIGSTOPped server reading them later,
    would arrive as well: delivered without an answer, the replay is a second copy.)"""
    user = "user238"
    blackholes = [f"blackhole {address}/32" for address in _radius_addresses(gateway)]
    with client_for(lab, plan, node_name(lab, 5), "strongswan", "aggressive", user, "vr1") as client:
        client.connect()
        client.wait_up(20)
        row = gateway.subscriber_rows(user=user)[0]
        assert wait_until(lambda: "Start" in records_kinds(lab, row["acct_session_id"]), 10)
        for route in blackholes:
            assert not lab.router.cmd(f"ip route add {route} 2>&1").strip()
        try:
            client.disconnect()
            assert wait_until(lambda: user not in users_of(gateway), 10)
            journal = _state_dir(gateway) / "accounting.journal"
            assert wait_until(lambda: '"status":2' in journal.read_text()
                              and row["acct_session_id"] in journal.read_text(), 10)
            supervisor = gateway.pid
            workers = [w["pid"] for w in gateway.workers()]
            assert b"responder" in Path(f"/proc/{supervisor}/cmdline").read_bytes()
            os.kill(supervisor, signal.SIGKILL)
            assert wait_until(lambda: not gateway.daemon.alive(), 10)
            # the workers go with their supervisor (parent-death signal), none orphaned
            assert wait_until(lambda: not any(_running(pid) for pid in workers), 15), workers
        finally:
            for route in blackholes:
                lab.router.cmd(f"ip route del {route} 2>&1")
    gateway.stop()                     # reaps the killed process, detaches the VR names
    boot_before = (_state_dir(gateway) / "boot-count").read_text().strip()
    mark = len(lab.accounting_records())
    gateway.start()
    assert wait_until(lambda: "Stop" in records_kinds(lab, row["acct_session_id"]), 20)
    time.sleep(2)                      # a duplicate would follow right behind
    assert records_kinds(lab, row["acct_session_id"]).count("Stop") == 1
    stop = [r for r in acct_records(lab, row["acct_session_id"]) if r["Acct-Status-Type"] == "Stop"][0]
    assert stop["Acct-Terminate-Cause"] == "User-Request"
    new_records = lab.accounting_records()[mark:]
    kinds = [r["Acct-Status-Type"] for r in new_records]
    assert "Accounting-On" in kinds, kinds
    assert kinds.index("Accounting-On") > [i for i, r in enumerate(new_records)
                                           if r.get("Acct-Session-Id") == row["acct_session_id"]][0]
    boot_now = (_state_dir(gateway) / "boot-count").read_text().strip()
    assert int(boot_now) == int(boot_before) + 1
    # a new login gets an Acct-Session-Id of the new boot
    with client_for(lab, plan, node_name(lab, 4), "strongswan", "aggressive", "user237",
                    "vr1") as again:
        again.connect()
        again.wait_up(20)
        new_row = gateway.subscriber_rows(user="user237")[0]
        again.disconnect()
    assert new_row["acct_session_id"] != row["acct_session_id"]
    assert new_row["acct_session_id"].startswith(f"{int(boot_now):08X}")
    mark = len(lab.accounting_records())
    gateway.stop()
    assert wait_until(lambda: "Accounting-Off" in [r["Acct-Status-Type"] for r in
                                                   lab.accounting_records()[mark:]], 10)
    assert (_state_dir(gateway) / "accounting.journal").read_text() == ""
    gateway.start()                    # the module fixture stops it again
