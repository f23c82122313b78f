"""Operating the daemon: reload plans (what changed, what needs a restart), the
supervisor applying a reload, subscriber event lines and the JSON log format, the
telemetry of an in-memory login (log lines, login outcomes, latencies), the Prometheus
registry, and the control CLI's errors and exit codes."""
from __future__ import annotations

import asyncio
import copy
import json
import logging

import pytest
import yaml

from responder.config import parse_config
from responder.daemon import control
from responder.daemon.logsetup import JsonFormatter, TextFormatter, sub_id, subscriber_event
from responder.config.snapshot import worker_config, worker_snapshot
from responder.daemon.reload import changed_paths, diff_configs, effective_config, pool_grows
from responder.daemon.supervisor import Supervisor
from responder.daemon.telemetry import WorkerTelemetry, vendor_names
from responder.subscriber import SubscriberEvent

from .test_daemon_orchestrator import CONFIG, Rig, run

BASE = {**copy.deepcopy(CONFIG), "metrics": {"enabled": False}}


def changed(**edits):
    data = copy.deepcopy(BASE)
    for path, value in edits.items():
        node = data
        keys = path.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[int(key)]
        if isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value
    return parse_config(data)


# -- reload plans -------------------------------------------------------------------------
def test_no_change_is_an_empty_plan():
    plan = diff_configs(parse_config(BASE), parse_config(copy.deepcopy(BASE)))
    assert plan.changed == [] and not plan.needs_restart and plan.summary() == "no change"


@pytest.mark.parametrize("edits,applied", [
    ({"licenses": {"ipsec_tunnel": 5, "subscriber": 7}},
     ["licenses.ipsec_tunnel", "licenses.subscriber"]),
    ({"aaa__local_users__dave": {"password": "pw-dave"}}, ["aaa.local_users.dave"]),
    ({"aaa__local_users__alice": {"password": "new-pw"}}, ["aaa.local_users.alice"]),
    ({"pools__vr1__extra": {"ranges": ["10.99.3.0/24"]}}, ["pools.vr1.extra"]),
    ({"pools__vr1__vr1": {"ranges": ["10.99.0.0/23"]}}, ["pools.vr1.vr1"]),
    ({"vrs__vr3": {"netns": "nsvr3"}}, ["vrs.vr3"]),
    ({"vrs__vr1": {"netns": "nsvr1", "interface_prefix": "ipa", "mtu": 1300}}, ["vrs.vr1.mtu"]),
    ({"ike__dpd": {"interval": 5, "timeout": 20}}, ["ike.dpd.interval", "ike.dpd.timeout"]),
    ({"logging": {"level": "debug", "format": "json"}}, ["logging.level", "logging.format"]),
])
def test_what_applies_without_a_restart(edits, applied):
    plan = diff_configs(parse_config(BASE), changed(**edits))
    assert plan.applied == applied and plan.restart == {}


def test_profile_limits_timers_and_mode_config_apply():
    new = copy.deepcopy(BASE)
    new["tunnel_profiles"][0] = {**new["tunnel_profiles"][0], "max_interfaces": 3,
                                 "idle_timeout": "10m",
                                 "mode_config": {"dns": ["10.50.0.1"], "banner": "new"}}
    plan = diff_configs(parse_config(BASE), parse_config(new))
    assert plan.applied == ["tunnel_profiles"] and not plan.restart


@pytest.mark.parametrize("edits,path", [
    ({"listen": [{"address": "198.18.0.1", "ike_port": 5500}]}, "listen"),
    ({"workers": 4}, "workers"),
    ({"vrs__vr1": {"netns": "other", "interface_prefix": "ipa"}}, "vrs.vr1.netns"),
    ({"pools__vr1__vr1": {"ranges": ["10.99.1.0/25"]}}, "pools.vr1.vr1"),
    ({"control": {"socket": "/tmp/other.sock"}}, "control.socket"),
    ({"metrics": {"enabled": True, "port": 9999}}, "metrics.enabled"),
])
def test_what_needs_a_restart(edits, path):
    plan = diff_configs(parse_config(BASE), changed(**edits))
    assert path in plan.restart and plan.needs_restart, plan
    assert path in plan.summary()


def test_secrets_compared_by_value_never_shown():
    old = parse_config(BASE)
    new = copy.deepcopy(BASE)
    new["pre_shared_keys"][0]["secret"] = "another-psk"
    plan = diff_configs(old, parse_config(new))
    assert plan.changed == ["pre_shared_keys"] and plan.applied == ["pre_shared_keys"]
    assert "another-psk" not in json.dumps(plan.as_dict()) + plan.summary()


def test_a_restart_section_holds_back_the_rest_of_it():
    old = parse_config(BASE)
    new = copy.deepcopy(BASE)
    new["vrs"]["vr1"]["netns"] = "moved"
    new["vrs"]["vr3"] = {"netns": "nsvr3"}
    new["licenses"] = {"ipsec_tunnel": 9, "subscriber": 9}
    effective, plan = effective_config(old, parse_config(new))
    assert set(plan.restart) == {"vrs.vr1.netns", "vrs.vr3"}
    assert "licenses.ipsec_tunnel" in plan.applied
    assert effective.vrs == old.vrs and effective.licenses.ipsec_tunnel == 9


def test_pool_growth():
    cfg = parse_config(BASE)
    grown = changed(pools__vr1__vr1={"ranges": ["10.99.1.0/24", "10.99.5.0/24"]})
    moved = changed(pools__vr1__vr1={"ranges": ["10.99.5.0/24"]})
    old = cfg.pools["vr1"]["vr1"]
    assert pool_grows(old, grown.pools["vr1"]["vr1"])
    assert not pool_grows(old, moved.pools["vr1"]["vr1"])
    assert changed_paths(cfg, grown) == ["pools.vr1.vr1"]


# -- the supervisor applies a reload ------------------------------------------------------
def write(path, data):
    path.write_text(yaml.safe_dump(json.loads(json.dumps(data))))


def test_workers_get_a_snapshot_of_the_running_configuration(tmp_path):
    """A reload sends every worker a snapshot of what the supervisor applied (restart-only
    changes held back, secret files read); a worker started later gets the same one."""
    (tmp_path / "psk").write_text("psk-from-file\n")
    start = copy.deepcopy(BASE)
    start["pre_shared_keys"][0] = {"identity": "keyid:vr1", "secret_file": "psk"}
    path = tmp_path / "responder.yaml"
    write(path, start)
    sup = Supervisor(parse_config(start, base_dir=tmp_path), str(path))
    sent = []

    async def ask_workers(message):
        sent.append(message)
        return [{"ok": True}]

    sup.ask_workers = ask_workers
    new = copy.deepcopy(start)
    new["aaa"]["local_users"]["dave"] = {"password": "pw-dave"}
    new["vrs"]["vr1"]["netns"] = "moved"                     # needs a restart
    write(path, new)
    assert run(sup.reload())["workers"] == [{"ok": True, "error": None}]
    (message,) = sent
    cfg = worker_config(message["snapshot"])
    assert "dave" in cfg.aaa.local_users and cfg.vrs["vr1"].netns == "nsvr1"
    assert cfg.pre_shared_keys[0].secret_bytes() == b"psk-from-file"
    assert message["snapshot"] == worker_snapshot(sup.cfg)
    assert "restart needed for vrs.vr1.netns" in message["summary"]


def test_supervisor_reload_applies_and_refuses(tmp_path, caplog):
    path = tmp_path / "responder.yaml"
    write(path, BASE)
    sup = Supervisor(parse_config(BASE), str(path))
    sup.acquire(0, {"key": "0:1", "user": "alice", "vr": "vr1", "profile_vr": "vr1",
                    "profile_pool": "vr1"})
    leased = sup.held["0:1"].lease.address
    new = copy.deepcopy(BASE)
    new["licenses"] = {"ipsec_tunnel": 50, "subscriber": 40}
    new["pools"]["vr1"]["vr1"] = {"ranges": ["10.99.0.0/23"]}
    new["pools"]["vr2"]["more"] = {"ranges": ["10.99.9.0/24"]}
    new["workers"] = 3
    write(path, new)
    result = run(sup.reload())
    assert result["ok"] and result["restart_needed"].keys() == {"workers"}
    assert [(s.kind, s.size, s.in_use) for s in sup.licenses.stats()] == [
        ("IPsec tunnel", 50, 1), ("subscriber", 40, 1)]
    pools = {(s.vr, s.pool): (s.size, s.used) for s in sup.pools.stats()}
    assert pools[("vr1", "vr1")] == (510, 1) and pools[("vr2", "more")] == (254, 0)
    assert sup.cfg.workers == 1 and sup.last_reload is result
    sup._release("0:1")                       # the lease survived the pool growing
    assert sup.pools.holder("vr1", leased) is None
    # a broken file: refused with its one-line errors, the running configuration stays
    path.write_text(path.read_text().replace("ipsec_tunnel: 50", "ipsec_tunnel: -1"))
    with caplog.at_level(logging.ERROR):
        refused = run(sup.reload())
    assert not refused["ok"] and any("licenses.ipsec_tunnel" in e for e in refused["errors"])
    assert any("licenses.ipsec_tunnel" in r.getMessage() for r in caplog.records)
    assert sup.licenses.stats()[0].size == 50 and sup.stats["reloads_refused"] == 1


# -- log lines ----------------------------------------------------------------------------
def _record(caplog):
    return [r for r in caplog.records if r.name == "responder.events"][-1]


def test_subscriber_event_text_and_json(caplog):
    with caplog.at_level(logging.INFO):
        subscriber_event("0:17", "user001", "phase1-up", peer="198.18.0.5:500",
                         vids=["strongSwan", "XAUTH"], note="two words")
    record = _record(caplog)
    assert record.getMessage() == ('sub=w0-17 user=user001 event=phase1-up peer=198.18.0.5:500 '
                                   'vids=strongSwan,XAUTH note="two words"')
    assert "w1 INFO responder.events: sub=w0-17" in TextFormatter("w1").format(record)
    line = json.loads(JsonFormatter("w1").format(record))
    assert line["sub"] == "w0-17" and line["user"] == "user001" and line["event"] == "phase1-up"
    assert line["proc"] == "w1" and line["level"] == "info" and line["vids"] == ["strongSwan",
                                                                                 "XAUTH"]
    assert sub_id(None) == "-" and sub_id("3:9") == "w3-9" and sub_id("1.2:5") == "w1.2-5"


def test_json_formatter_plain_records_and_exceptions():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("y",),
                                   sys.exc_info())
    line = json.loads(JsonFormatter("sup").format(record))
    assert line["msg"] == "failed y" and "ValueError: boom" in line["exc"]


def test_vendor_names():
    from responder.ikev1.vendor_ids import XAUTH
    assert vendor_names([XAUTH.data, XAUTH.data, b"\x01\x02\x03\x04\x05"]) == [
        "XAUTH", "unknown:01020304"]


# -- telemetry of an in-memory login ------------------------------------------------------
def test_login_events_outcomes_and_latencies(tmp_path, caplog):
    async def main():
        rig = Rig(tmp_path)
        telemetry = WorkerTelemetry(0, rig.engine, lambda: rig.wire.now)
        rig.orchestrator.link = telemetry.wrap_link(rig.orchestrator.link)
        telemetry.attach(rig.orchestrator)
        rig.drain = lambda: [telemetry.handle_event(e) for e in rig.engine.events()]
        rig.orchestrator.flush = rig.drain
        ok = rig.session("alice", "pw-alice")
        assert await rig.run_until(lambda: ok.established)
        bad = rig.session("bob", "wrong", port=11_000)
        assert await rig.run_until(lambda: rig.orchestrator.refused["auth-failed"] == 1)
        (key, record), = rig.supervisor.registry.items()
        report = telemetry.report()
        rig.orchestrator.logout([key], SubscriberEvent.ADMIN_LOGOUT)
        return record, report, bad

    with caplog.at_level(logging.INFO):
        record, report, _ = run(main())
    lines = [r.getMessage() for r in caplog.records if r.name == "responder.events"]
    alice = [line for line in lines if line.startswith("sub=w0-1 ")]
    events = [line.split(" event=")[1].split()[0] for line in alice]
    assert events[:2] == ["phase1-up", "xauth-credentials"] and "phase2-up" in events
    assert events[-1] == "logout" and "cause=admin-logout" in alice[-1]
    assert all("user=alice" in line for line in alice[1:])
    assert any("event=xauth-failed" in line and "user=bob" in line and "reason=denied" in line
               for line in lines), lines
    assert any("event=logout" in line and "cause=auth-failed" in line for line in lines)
    assert "XAUTH" in " ".join(record["vendor_ids"]).upper()
    assert ["success", "", 1] in report["logins"] and ["refused", "auth-failed", 1] in report["logins"]
    assert set(report["latency"]) >= {"phase1", "xauth_aaa", "quick_mode", "login"}
    assert not any("pw-alice" in line or "wrong" in line for line in lines)


# -- metrics --------------------------------------------------------------------------------
def test_metrics_registry(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    sup = Supervisor(parse_config({**BASE, "metrics": {"enabled": True}}), str(tmp_path / "c"))
    sup.acquire(0, {"key": "0:1", "user": "alice", "vr": "vr1", "profile_vr": "vr1",
                    "profile_pool": "vr1"})
    sup._session_up("0:1", 0, {"key": "0:1", "id": 1, "user": "alice", "vr": "vr1",
                               "profile": "vr1", "address": "10.99.1.1", "children": 1,
                               "acct_session_id": "x", "peer": "198.18.1.2:500"})
    sup.metrics.absorb({"logins": [["success", "", 1], ["refused", "license", 2]],
                        "latency": {"phase1": [0.02], "login": [0.3]}})
    text = run(sup.metrics.render()).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("dynipsec_subscribers", (("profile", "vr1"), ("vr", "vr1")))] == 1
    assert samples[("dynipsec_subscribers", (("profile", "vr2"), ("vr", "vr2")))] == 0
    assert samples[("dynipsec_logins_total", (("outcome", "success"), ("reason", "")))] == 1
    assert samples[("dynipsec_logins_total", (("outcome", "refused"), ("reason", "license")))] == 2
    assert samples[("dynipsec_licenses_in_use", (("kind", "ipsec-tunnel"),))] == 1
    assert samples[("dynipsec_ipsec_sas", (("worker", "0"),))] == 1
    assert samples[("dynipsec_exchange_seconds_count", (("exchange", "login"),))] == 1
    assert ("dynipsec_octets_total", (("direction", "in"),)) in samples
    # ESP drops by reason, from the workers' data path statistics (drop_<reason>)
    from prometheus_client import generate_latest
    sup.metrics.worker_stats = [{"ike_sas": 3, "datapath": {"esp_dropped": 5, "drop_replay": 3,
                                                            "drop_integrity": 2}}]
    text = generate_latest(sup.metrics.registry).decode()
    assert 'dynipsec_esp_dropped_total{reason="replay",worker="0"} 3.0' in text
    assert 'dynipsec_esp_dropped_total{reason="integrity",worker="0"} 2.0' in text
    assert 'dynipsec_ike_sas{worker="0"} 3.0' in text


# -- the CLI ------------------------------------------------------------------------------------
def test_cli_daemon_not_running_and_permission(tmp_path, capsys):
    from responder.cli import main
    assert main(["show", "subscribers", "-s", str(tmp_path / "none.sock")]) == control.EXIT_NOT_RUNNING
    assert "not running" in capsys.readouterr().err
    assert main(["reload", "-s", str(tmp_path / "none.sock")]) == control.EXIT_NOT_RUNNING
    assert main(["logout", "-s", str(tmp_path / "none.sock")]) == control.EXIT_USAGE


def test_cli_table_cells():
    text = control._table([{"user": "a", "vendor_ids": ["X", "Y"], "uptime": 1.5, "vr": None}],
                          ("user", "vendor_ids", "uptime", "vr"))
    assert text.splitlines()[2].split() == ["a", "X,Y", "1.5", "-"]
