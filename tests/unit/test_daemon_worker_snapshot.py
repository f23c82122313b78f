"""The worker's configuration: the supervisor's snapshot of the validated model
(responder/config/snapshot.py), read back without pydantic, yaml or (without RADIUS)
pyrad; the objects built from it equal those built from the model; the first IPC line;
a reload applying a new snapshot to a running orchestrator."""
from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest

from responder.config import builders, parse_config
from responder.config import snapshot as snap
from responder.daemon import ipc
from responder.daemon.orchestrator import select_profile
from responder.daemon.worker import read_configuration
from responder.daemon.worker_reload import WorkerReload
from responder.ikev1.policy import Identity

from .test_daemon_orchestrator import CONFIG, Rig, run

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "responder" / "examples"

#: every section a worker reads, with secrets inline and from a file
EVERYTHING = {
    **copy.deepcopy(CONFIG),
    "listen": [{"address": "198.18.0.1", "default_profile": "fallback"},
               {"address": "198.18.0.2", "ike_port": 1500, "natt_port": 14500}],
    "ike": {"proposals": ["aes256-sha256-modp2048", "3des-sha1-modp1024"], "lifetime": "2h",
            "dpd": {"interval": 5, "timeout": 20}, "limits": {"max_sas": 77},
            "retransmit": {"tries": 3}, "key_export_file": "keys.txt",
            "default_rule_action": "deny", "remote_delete_grace": 7},
    "ike_policy_rules": [{"name": "lab", "peer": "198.18.0.0/16", "action": "accept"},
                         {"identity": "keyid:bad", "action": "deny"}],
    "static_tunnels": [{"name": "branch", "peer": "203.0.113.9", "secret_file": "branch.psk",
                        "local_selector": "10.1.0.0/16", "remote_selector": "10.2.0.0/16",
                        "transforms": ["aes128-sha1"], "pfs_group": "modp2048",
                        "lifetime": {"seconds": 600, "kilobytes": 5000}}],
    "aaa": {
        "default_method": "radius",
        "local_users": {"alice": {"password": "pw-alice", "address": "10.99.1.7",
                                  "netmask": "255.255.255.0", "dns": ["10.9.9.9", "10.9.9.8"],
                                  "session_timeout": "1h", "idle_timeout": 90.5}},
        "radius": {"nas_ip": "198.18.0.1", "default_group": "b", "server_groups": {
            "a": {"servers": [{"address": "192.0.2.10", "secret": "rad-a"}], "dead_time": 5},
            "b": {"servers": [{"address": "192.0.2.11", "secret_file": "radius.secret",
                               "require_message_authenticator": False, "retries": 0}]}}},
        "domain_maps": {"corp": {"method": "local", "vr": "vr2", "strip_domain": True}},
    },
    "logging": {"level": "debug", "format": "json"},
}
SECRETS = ("psk-vr1", "psk-vr2", "pw-alice", "rad-a", "branch-from-file",
           "radius-from-file")


def model(data, base_dir=None):
    return parse_config(copy.deepcopy(data), source="test", base_dir=base_dir)


@pytest.fixture
def everything(tmp_path):
    (tmp_path / "branch.psk").write_text("branch-from-file\n")
    (tmp_path / "radius.secret").write_text("radius-from-file\n")
    return model(EVERYTHING, tmp_path)


def configurations(everything):
    from responder.config import load_config

    from lab.gateways import plan_from_topology
    from lab.gateways.dynipsec import render_config
    from lab.topology import load_topology

    topology = load_topology("default")
    lab = render_config(plan_from_topology(topology), control_socket="c.sock", topology=topology)
    return [everything, model(CONFIG), model(lab),
            load_config(str(EXAMPLES / "minimal.yaml")),
            load_config(str(EXAMPLES / "lab-default.yaml"))]


def through_json(cfg):
    return snap.worker_config(json.loads(json.dumps(snap.worker_snapshot(cfg))))


def test_objects_built_from_the_snapshot_equal_those_built_from_the_model(everything):
    for cfg in configurations(everything):
        worker = through_json(cfg)
        assert snap.build_responder_policy(worker) == builders.build_responder_policy(cfg)
        for mine, theirs in zip(worker.tunnel_profiles, cfg.tunnel_profiles):
            assert snap.build_esp_policy(mine) == builders.build_esp_policy(theirs)
        assert snap.build_local_users(worker) == builders.build_local_users(cfg)
        assert snap.build_radius_groups(worker) == builders.build_radius_groups(cfg)
        assert snap.radius_default_group(worker) == builders.radius_default_group(cfg)
        assert snap.build_nas_identity(worker) == builders.build_nas_identity(cfg)
        assert (snap.build_domain_maps(worker)._entries
                == builders.build_domain_maps(cfg)._entries)
        assert snap.profile_limits(worker) == builders.profile_limits(cfg)


def test_the_snapshot_reads_like_the_model(everything):
    worker = through_json(everything)
    assert snap.worker_snapshot(worker) == snap.worker_snapshot(everything)  # a fixed point
    for identity, local in ((Identity(11, "vr2"), "198.18.0.1"),
                            (Identity(2, "a.example"), "198.18.0.1"),
                            (Identity(1, "198.18.1.9"), "198.18.0.1"),
                            (Identity(1, "198.18.1.9"), "192.0.2.1")):
        mine, theirs = (select_profile(c, local, identity) for c in (worker, everything))
        assert (mine and mine.name) == (theirs and theirs.name)
    vr1 = worker.profile("vr1")
    assert vr1.mode_config.dns == tuple(everything.profile("vr1").mode_config.dns)
    assert vr1.local_networks == tuple(everything.profile("vr1").local_networks)
    assert worker.vrs["vr2"].interface_prefix == "ipb" and worker.ike.remote_delete_grace == 7
    assert worker.ike.key_export_file == "keys.txt" and worker.logging.format == "json"
    assert worker.static_tunnels[0].secret_bytes() == b"branch-from-file"


def test_a_user_with_a_password_only_goes_as_its_password_only():
    """Every worker parses the snapshot: a table of thousands of users is mostly
    passwords, and left-out fields read back as None or empty."""
    cfg = model({**CONFIG, "aaa": {"local_users": {
        "bob": {"password": "pw-bob"},
        "carol": {"password": "pw-carol", "dns": ["10.9.9.9"], "vr": "vr1"}}}})
    users = snap.worker_snapshot(cfg)["aaa"]["local_users"]
    assert users["bob"] == {"password": "pw-bob"}
    assert users["carol"] == {"password": "pw-carol", "dns": ["10.9.9.9"], "vr": "vr1"}
    bob = through_json(cfg).aaa.local_users["bob"]
    assert (bob.address, bob.vr, bob.dns, bob.session_timeout) == (None, None, (), None)
    assert snap.build_local_users(through_json(cfg)) == builders.build_local_users(cfg)


def test_secrets_travel_but_never_print(everything):
    worker = through_json(everything)
    text = repr(worker) + str(worker)
    assert not [s for s in SECRETS if s in text]
    assert worker.aaa.local_users["alice"].password.get_secret_value() == "pw-alice"
    plain = json.dumps(snap.worker_snapshot(everything))
    assert all(s in plain for s in SECRETS)


def test_a_snapshot_of_another_layout_is_refused(everything):
    plain = snap.worker_snapshot(everything)
    with pytest.raises(ValueError, match="version"):
        snap.worker_config({**plain, "version": snap.SNAPSHOT_VERSION + 1})


# -- what a worker process imports -----------------------------------------------------------
CHECK_IMPORTS = """
import json, sys
import responder.daemon.worker
from responder.config.snapshot import worker_config
from responder.daemon.worker_reload import build_authenticator
authenticator, radius = build_authenticator(worker_config(json.load(sys.stdin)))
print(json.dumps({m: m in sys.modules for m in ("pydantic", "yaml", "pyrad")}))
"""


def imported_by_a_worker(cfg) -> dict[str, bool]:
    done = subprocess.run([sys.executable, "-c", CHECK_IMPORTS], cwd=REPO, check=True,
                          input=json.dumps(snap.worker_snapshot(cfg)), capture_output=True,
                          text=True, timeout=60)
    return json.loads(done.stdout)


def test_a_worker_imports_neither_pydantic_nor_yaml_and_pyrad_only_for_radius(everything):
    without_radius = model(CONFIG)
    assert imported_by_a_worker(without_radius) == {"pydantic": False, "yaml": False,
                                                    "pyrad": False}
    assert imported_by_a_worker(everything) == {"pydantic": False, "yaml": False,
                                                "pyrad": True}


# -- the first IPC line --------------------------------------------------------------------
def test_the_first_line_is_read_and_the_next_one_stays_for_the_channel():
    cfg = model(CONFIG)
    supervisor, worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with supervisor, worker:
        first = ipc.encode({"op": ipc.CONFIGURE, "snapshot": snap.worker_snapshot(cfg)})
        supervisor.sendall(first + ipc.encode({"op": "lockout", "lock": []}))
        assert read_configuration(worker).profile("vr2").vr == "vr2"
        assert worker.recv(1 << 16) == b'{"op":"lockout","lock":[]}\n'


def test_a_first_line_that_is_no_configuration_is_refused():
    supervisor, worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with supervisor, worker:
        supervisor.sendall(ipc.encode({"op": "shutdown"}))
        with pytest.raises(ipc.IpcError, match="configure"):
            read_configuration(worker)
        supervisor.close()
        with pytest.raises(ipc.ChannelClosed):
            ipc.read_first_message(worker)


# -- a reload in a running worker -----------------------------------------------------------
def test_a_reload_gives_new_logins_the_new_users_profiles_and_policy(tmp_path):
    new = copy.deepcopy(CONFIG)
    new["aaa"]["local_users"] = {"dave": {"password": "pw-dave"}}
    new["tunnel_profiles"][0]["transforms"] = ["aes128-sha1"]
    new["tunnel_profiles"][0]["max_interfaces"] = 5
    new["ike"]["remote_delete_grace"] = 3
    new_cfg = model(new)

    async def main():
        rig = Rig(tmp_path)
        gate = types.SimpleNamespace(fallback=None)
        reload = WorkerReload(0, responder=rig.engine, gate=gate, orchestrator=rig.orchestrator)
        before = rig.session("dave", "pw-dave", port=10_000)
        assert not await rig.run_until(lambda: before.established, rounds=60)
        assert reload.apply(snap.worker_snapshot(new_cfg), "1 change(s) applied") == {"ok": True}
        assert rig.engine.policy == builders.build_responder_policy(new_cfg)
        assert gate.fallback == rig.engine.policy.dynamic_esp
        o = rig.orchestrator
        assert o.esp_policies["vr1"] == builders.build_esp_policy(new_cfg.profile("vr1"))
        assert o.table.profile_limits == {"vr1": 5} and o.remote_delete_grace == 3
        after = rig.session("dave", "pw-dave", port=10_100)
        assert await rig.run_until(lambda: after.established)
        assert [r["user"] for r in rig.supervisor.registry.values()] == ["dave"]
        reload.close()

    run(main())


# -- the supervisor's side of a spawn --------------------------------------------------------
def test_a_spawned_worker_gets_the_snapshot_on_its_socketpair_not_its_command_line(
        tmp_path, monkeypatch):
    import asyncio
    import os

    from responder.daemon.supervisor import Supervisor, WorkerHandle

    cfg = model(CONFIG)
    sup = Supervisor(cfg, str(tmp_path / "responder.yaml"))
    handle = WorkerHandle(0, [])
    seen = {}

    class Process:
        pid = 4242

        async def wait(self):
            await asyncio.Event().wait()

    async def create_subprocess_exec(*argv, pass_fds=(), **options):
        seen.update(argv=argv, options=options,
                    peer=socket.socket(fileno=os.dup(pass_fds[0])))
        return Process()

    monkeypatch.setattr(asyncio, "create_subprocess_exec", create_subprocess_exec)

    async def main():
        await sup._spawn(handle)
        await handle.channel.drain()
        handle.channel.close()          # what was sent stays readable, then EOF
        await asyncio.sleep(0.05)
        with seen["peer"]:
            return ipc.read_first_message(seen["peer"])

    message = run(main())
    assert message == {"op": ipc.CONFIGURE, "snapshot": snap.worker_snapshot(cfg)}
    command_line = " ".join(seen["argv"])
    assert "responder.daemon.worker" in command_line and "env" not in seen["options"]
    assert not [s for s in ("psk-vr1", "psk-vr2", "pw-alice", "pw-bob") if s in command_line]
