"""Operating dynipsec with real clients logged in: every `dynipsec show ...`,
`logout ...` and `reload` command (tables and --json), the Prometheus endpoint scraped
from inside the router namespace, a SIGHUP reload that keeps the subscribers and gives
the workers a new local user, and the JSON log: one line per subscriber event with its
subscriber id, the refusal reasons, and no secret of the configuration anywhere (INFO).

Needs root, Mininet and the Debian packages (marker `lab`); one gateway (local AAA,
JSON log, metrics on 127.0.0.1:9477 of the router) for the module.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from clients import ClientError
from tests.lab.conftest import client_for, node_name

pytestmark = pytest.mark.lab

METRICS = "http://127.0.0.1:9477/metrics"
NEW_USER, NEW_PASSWORD = "reload-user", "reload-pw-6c1f"
WRONG_PASSWORD = "not-the-password-9d"


@pytest.fixture(scope="module")
def gateway(gateway_factory):
    gw = gateway_factory("dynipsec", "dynipsec-cli", aaa="local")
    gw.config["metrics"] = {"enabled": True, "address": "127.0.0.1", "port": 9477}
    gw.config["logging"] = {"level": "info", "format": "json"}
    # the log file is appended to: this module reads what its own run wrote
    gw.log_start = gw.log_path.stat().st_size if gw.log_path.exists() else 0
    with gw:
        yield gw


def dynipsec(gateway, *args, check: int | None = 0) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", "responder", *args, "-s",
                          gateway.daemon.control_socket], capture_output=True, text=True,
                         timeout=60)
    if check is not None:
        assert run.returncode == check, (args, run.returncode, run.stdout, run.stderr)
    return run


def as_json(gateway, *args) -> dict:
    return json.loads(dynipsec(gateway, *args, "--json").stdout)


def table(text: str) -> list[dict]:
    """A CLI table (header, dashes, rows) as dicts."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0].split()
    return [dict(zip(header, line.split())) for line in lines[2:] if not line.startswith("refused")]


def scrape(lab) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families
    text = lab.router.cmd(f"curl -s --max-time 10 {METRICS}")
    assert "dynipsec_subscribers" in text, text[:2000]
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def metric(samples, name: str, **labels) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == str(w) for k, w in labels.items()))


def write_config(gateway, config: dict) -> None:
    gateway.daemon.config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def logged_in(gateway) -> set[str]:
    return {row["user"] for row in gateway.subscriber_rows()}


def test_cli_metrics_reload_and_logout(lab, plan, gateway, wait_until):
    vr1, vr2 = plan.group("vr1"), plan.group("vr2")
    before = scrape(lab)
    assert metric(before, "dynipsec_subscribers") == 0
    success_before = metric(before, "dynipsec_logins_total", outcome="success")
    a = client_for(lab, plan, node_name(lab, 41), "strongswan", "main", "user041", "vr1")
    b = client_for(lab, plan, node_name(lab, 42), "vpnc", "aggressive", "user042", "vr2")
    with a, b:
        a.connect()
        b.connect()
        info_a, info_b = a.wait_up(20), b.wait_up(20)

        # -- show subscribers: table, filters, --json -------------------------------------
        text = dynipsec(gateway, "show", "subscribers").stdout
        assert text.splitlines()[0].split() == ["user", "address", "vr", "interface", "profile",
                                                "worker", "uptime", "bytes_in", "bytes_out",
                                                "vendor_ids"]
        rows = {r["user"]: r for r in table(text)}
        assert rows.keys() == {"user041", "user042"}
        assert rows["user041"]["address"] == info_a.address and rows["user041"]["vr"] == "vr1"
        assert rows["user042"]["address"] == info_b.address and rows["user042"]["profile"] == "vr2"
        answer = as_json(gateway, "show", "subscribers")
        by_user = {r["user"]: r for r in answer["rows"]}
        for user, row in by_user.items():
            assert "XAUTH" in row["vendor_ids"], row           # the clients' recognized VIDs
            assert row["interface"].startswith("ips") and row["netns"] in (vr1.vr, vr2.vr)
            assert {"worker", "uptime", "bytes_in", "bytes_out"} <= row.keys()
        assert "CISCO-UNITY" in by_user["user042"]["vendor_ids"]     # vpnc, and its own VID
        assert any(v.startswith("vpnc") for v in by_user["user042"]["vendor_ids"])
        assert "RFC 3947 NAT-T" in by_user["user041"]["vendor_ids"]  # strongSwan
        assert [r["user"] for r in as_json(gateway, "show", "subscribers", "--vr", "vr1")[
            "rows"]] == ["user041"]
        assert [r["user"] for r in as_json(gateway, "show", "subscribers", "--vr", vr2.vr)[
            "rows"]] == ["user042"]
        assert [r["user"] for r in as_json(gateway, "show", "subscribers", "--profile", "vr2")[
            "rows"]] == ["user042"]
        assert [r["user"] for r in table(dynipsec(gateway, "show", "subscribers", "--user",
                                                   "user041").stdout)] == ["user041"]

        # -- SAs ------------------------------------------------------------------------------
        ike = as_json(gateway, "show", "ike-sa")["rows"]
        assert {r["user"] for r in ike} == {"user041", "user042"}
        assert {r["ike_sa"] for r in ike} == {r["ike_sa"] for r in by_user.values()}
        assert {r["user"] for r in table(dynipsec(gateway, "show", "ike-sa").stdout)} == {
            "user041", "user042"}
        ipsec = as_json(gateway, "show", "ipsec-sa")["rows"]
        assert {r["subscriber"] for r in ipsec} == {r["key"] for r in by_user.values()}
        assert "subscriber" in dynipsec(gateway, "show", "ipsec-sa").stdout.splitlines()[0]

        # -- licenses, pools, profiles, statistics ---------------------------------------------
        licenses = as_json(gateway, "show", "licenses")
        assert [(r["total"], r["in_use"], r["free"]) for r in licenses["rows"]] == [
            (1000, 2, 998)] * 2
        assert "refused" in licenses
        text = dynipsec(gateway, "show", "licenses").stdout
        assert [line.split()[-3:] for line in text.splitlines()[2:4]] == [["1000", "2", "998"]] * 2
        assert "refused logins by reason:" in text
        pools = {r["pool"]: r for r in as_json(gateway, "show", "pools")["rows"]}
        assert pools["vr1"]["used"] == 1 and pools["vr2"]["used"] == 1
        assert {r["pool"]: r["used"] for r in table(dynipsec(gateway, "show", "pools").stdout)} \
            == {"vr1": "1", "vr2": "1"}
        profiles = {r["profile"]: r for r in as_json(gateway, "show", "tunnel-profiles")["rows"]}
        assert profiles["vr1"]["subscribers"] == 1 and profiles["vr2"]["subscribers"] == 1
        assert {r["profile"]: r["subscribers"] for r in table(
            dynipsec(gateway, "show", "tunnel-profiles").stdout)} == {"vr1": "1", "vr2": "1"}
        stats = as_json(gateway, "show", "statistics")
        assert stats["subscribers"] == 2 and len(stats["workers"]) == 2
        assert stats["metrics"] == "127.0.0.1:9477"
        assert re.search(r"^subscribers\s+2$", dynipsec(gateway, "show", "statistics").stdout, re.M)

        # -- metrics, scraped inside the router namespace ---------------------------------------
        assert a.ping(vr1.server, count=2).received == 2
        samples = scrape(lab)
        assert metric(samples, "dynipsec_subscribers") == 2
        assert metric(samples, "dynipsec_subscribers", vr="vr1", profile="vr1") == 1
        assert metric(samples, "dynipsec_subscribers", vr="vr2", profile="vr2") == 1
        assert metric(samples, "dynipsec_logins_total", outcome="success") == success_before + 2
        assert metric(samples, "dynipsec_licenses_in_use", kind="subscriber") == 2
        assert metric(samples, "dynipsec_ike_sas") >= 2 and metric(samples, "dynipsec_ipsec_sas") == 2
        assert metric(samples, "dynipsec_packets_total", direction="in") >= 2
        for exchange in ("phase1", "xauth_aaa", "quick_mode", "login"):
            assert metric(samples, "dynipsec_exchange_seconds_count", exchange=exchange) >= 2

        # -- reload (SIGHUP): applied without dropping anyone, restart-only reported ------------
        keys = {r["key"] for r in gateway.subscriber_rows()}
        original = json.loads(json.dumps(gateway.config))
        changed = json.loads(json.dumps(original))
        changed["licenses"] = {"ipsec_tunnel": 500, "subscriber": 400}
        changed["aaa"]["local_users"][NEW_USER] = {"password": NEW_PASSWORD}
        write_config(gateway, changed)
        os.kill(gateway.pid, signal.SIGHUP)
        assert wait_until(lambda: [r["total"] for r in gateway.show("licenses")] == [500, 400], 10)
        reload_info = as_json(gateway, "show", "statistics")["reload"]
        assert reload_info["ok"] and not reload_info["restart_needed"]
        assert f"aaa.local_users.{NEW_USER}" in reload_info["applied"]
        assert all(w["ok"] for w in reload_info["workers"]), reload_info
        assert {r["key"] for r in gateway.subscriber_rows()} == keys      # nobody dropped
        changed["workers"] = 3
        write_config(gateway, changed)
        run = dynipsec(gateway, "reload")
        assert "restart needed" in run.stdout and "workers" in run.stdout, run.stdout
        assert as_json(gateway, "show", "statistics")["reload"]["restart_needed"].keys() == {"workers"}
        assert len(gateway.workers()) == 2
        broken = json.loads(json.dumps(changed))
        broken["licenses"]["ipsec_tunnel"] = -5
        write_config(gateway, broken)
        run = dynipsec(gateway, "reload", check=1)
        assert "licenses.ipsec_tunnel" in run.stderr and "refused" in run.stderr, run.stderr
        assert [r["total"] for r in gateway.show("licenses")] == [500, 400]
        write_config(gateway, changed)
        assert as_json(gateway, "reload")["reloaded"]
        assert {r["key"] for r in gateway.subscriber_rows()} == keys

        # the workers know the new local user
        with client_for(lab, plan, node_name(lab, 43), "strongswan", "aggressive", NEW_USER,
                        "vr1", password=NEW_PASSWORD) as c:
            c.connect()
            info_c = c.wait_up(20)
            assert vr1.in_pool(info_c.address)
            assert logged_in(gateway) == {"user041", "user042", NEW_USER}

            # -- logout by user, by address in a VR, by VR -------------------------------------
            assert dynipsec(gateway, "logout", "--user", "user041").stdout.startswith(
                "1 subscriber(s) logged out")
            assert json.loads(dynipsec(gateway, "logout", "--address", info_b.address, "--vr",
                                       "vr1", "--json").stdout)["count"] == 0
            assert json.loads(dynipsec(gateway, "logout", "--address", info_b.address, "--vr",
                                       "vr2", "--json").stdout)["count"] == 1
            assert wait_until(lambda: logged_in(gateway) == {NEW_USER}, 5), logged_in(gateway)
            assert json.loads(dynipsec(gateway, "logout", "--vr", "vr1", "--json").stdout)[
                "count"] == 1
            assert wait_until(lambda: not logged_in(gateway), 5)
    dynipsec(gateway, "logout", check=2)

    # -- logout by profile and all -----------------------------------------------------------
    d = client_for(lab, plan, node_name(lab, 44), "vpnc", "aggressive", "user044", "vr2")
    e = client_for(lab, plan, node_name(lab, 45), "strongswan", "aggressive", "user045", "vr1")
    with d, e:
        d.connect()
        e.connect()
        d.wait_up(20)
        e.wait_up(20)
        assert json.loads(dynipsec(gateway, "logout", "--profile", "vr2", "--json").stdout)[
            "count"] == 1
        assert wait_until(lambda: logged_in(gateway) == {"user045"}, 5)
        assert dynipsec(gateway, "logout", "--all").stdout.startswith("1 subscriber(s)")
        assert wait_until(lambda: not logged_in(gateway), 5)
    assert wait_until(lambda: [r["in_use"] for r in gateway.show("licenses")] == [0, 0], 5)
    # a worker restarted while the file on disk is broken runs what the others run
    write_config(gateway, broken)
    dynipsec(gateway, "reload", check=1)
    victim = gateway.workers()[1]
    os.kill(victim["pid"], signal.SIGKILL)
    assert wait_until(lambda: [(w["generation"], w["ready"]) for w in gateway.workers()][1]
                      == (victim["generation"] + 1, True), 10), gateway.workers()
    assert all("error" not in w for w in as_json(gateway, "show", "statistics")["workers"])
    write_config(gateway, original)
    assert as_json(gateway, "reload")["reloaded"]
    samples = scrape(lab)
    assert metric(samples, "dynipsec_subscribers") == 0
    assert metric(samples, "dynipsec_logins_total", outcome="success") == success_before + 5


def _secrets(config: dict) -> set[str]:
    found = {k["secret"] for k in config["pre_shared_keys"]}
    found |= {u["password"] for u in config["aaa"].get("local_users", {}).values()}
    radius = config["aaa"].get("radius")
    if radius:
        found |= {s["secret"] for g in radius["server_groups"].values() for s in g["servers"]}
    dae = config["aaa"].get("dae")
    if dae:
        found |= {c["secret"] for c in dae["clients"]}
    return found | {NEW_PASSWORD, WRONG_PASSWORD}


def test_json_log_subscriber_ids_refusals_and_no_secrets(lab, plan, gateway, wait_until):
    """After the logins above and one with a wrong password: every log line is JSON,
    each subscriber event carries its id from phase 1 to logout, refusals say why, and
    not one PSK, password or RADIUS/DAE secret of the configuration is in the log."""
    with client_for(lab, plan, node_name(lab, 46), "strongswan", "aggressive", "user046", "vr1",
                    password=WRONG_PASSWORD) as client:
        client.connect()
        with pytest.raises(ClientError):
            client.wait_up(8)
    assert wait_until(lambda: "auth-failed" in as_json(gateway, "show", "licenses")["refused"], 5)
    text = gateway.log_path.read_bytes()[gateway.log_start:].decode(errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {line!r}")
    assert gateway.config["logging"]["level"] == "info"
    assert not [r for r in records if r.get("level") == "debug"]
    events = [r for r in records if r.get("event")]
    by_sub: dict[str, list[dict]] = {}
    for r in events:
        by_sub.setdefault(r["sub"], []).append(r)
    # user041: one subscriber id from phase 1 to the admin logout
    (sub041,) = {r["sub"] for r in events if r.get("user") == "user041"}
    trail = [r["event"] for r in by_sub[sub041]]
    assert trail[0] == "phase1-up" and "xauth-ok" in trail and "phase2-up" in trail, trail
    assert trail[-1] == "logout" and by_sub[sub041][-1]["cause"] == "admin-logout"
    assert re.fullmatch(r"w\d+-\d+", sub041)
    # the wrong password: refused with its reason, under its own subscriber id
    refused = [r for r in events if r.get("user") == "user046"]
    assert any(r["event"] == "xauth-failed" and r["reason"] == "denied" for r in refused), refused
    assert refused[-1]["event"] == "logout" and refused[-1]["cause"] == "auth-failed"
    assert len({r["sub"] for r in refused}) == 1
    # no secret of the configuration anywhere in the log
    assert gateway.config["aaa"]["radius"] and gateway.config["aaa"]["dae"]   # their secrets too
    for secret in _secrets(gateway.config):
        assert secret not in text, f"a secret of the configuration is in {gateway.log_path}"
