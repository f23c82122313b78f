"""The dynipsec gateway: `dynipsec responder run` in the router node, as a lab daemon.

Serves the same access plan as the reference strongSwan gateway (lab/gateways/plan.py),
rendered into a responder configuration (responder/config):

* one VR per plan group, named like the group (``vr1``), living in the group's
  namespace (``dlvr1``); its pool is named like the group too, so that RADIUS
  ``ERX-Virtual-Router-Name = vr2`` / ``ERX-Address-Pool-Name = vr2`` name them;
* one tunnel profile per group (identity ``keyid:<group>``): the group's VR and pool,
  split-include = the group's intranet, DNS/WINS, Unity banner and default domain;
* Aggressive Mode keys per group, one Main Mode key per gateway address (the plan's
  `main_mode_key`); every address is a listen address, and a group bound to an address
  of its own is matched (profile, Aggressive Mode key) on that address only;
* AAA ``local`` (every plan user is a local user) or ``radius`` (the lab's FreeRADIUS on
  the AAA host, no local users); RADIUS accounting (unless ``accounting=False``) and the
  RFC 5176 listener whenever the lab has its AAA host;
* ``force_encap: false``: peers without a NAT that do not force encapsulation (vpnc
  with ``NAT Traversal Mode none``) use raw ESP, IP protocol 50; the lab's strongSwan
  clients force encapsulation themselves (kernel-libipsec), the clients behind the NAT
  host detect the NAT (``extra_config={"ike": {"force_encap": True}}`` makes every
  peer use UDP 4500, like ``encap=yes`` on a strongSwan gateway), and
  ``remote_delete_grace: 0`` by default (a client's Delete logs it out at once, which the
  scenario checks; the product default is the SPEC's one minute);
* ``mode_config.send_unrequested: true`` (strongSwan clients ask for address and DNS
  only; like from the reference gateway they get netmask, WINS, banner, domain too);
* tests may shrink the license pools (``licenses=(tunnel, subscriber)``), DPD and the
  remote delete grace.

Subscribers appear as TUN devices with a /32 route inside the VR namespaces, so unlike
the reference gateway nothing is added to the router itself.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from clients.process import Daemon, DaemonError, PidTracker, ProcessHost, unix_socket_path
from lab.gateways.base import Gateway, GatewayError, GatewaySubscriber
from lab.gateways.plan import AccessPlan

log = logging.getLogger(__name__)

AAA_MODES = ("local", "radius")


def render_config(plan: AccessPlan, *, control_socket: str, topology: Any = None,
                  aaa: str = "local", workers: int = 2,
                  licenses: int | tuple[int, int] = 1000,
                  log_level: str = "info", dpd: tuple[float, float] = (10.0, 30.0),
                  max_attempts: int = 3, extra_users: dict[str, dict] | None = None,
                  remote_delete_grace: float = 0.0, force_encap: bool = False,
                  accounting: bool = True) -> dict:
    """The responder configuration (a dict, dumped as YAML) for the plan. `licenses`:
    both pool sizes, or (IPsec tunnel, subscriber). `accounting=False` leaves RADIUS
    accounting out (the benchmark's local mode, like the reference gateway with local
    users)."""
    if aaa not in AAA_MODES:
        raise ValueError(f"aaa must be one of {AAA_MODES}, not {aaa!r}")
    tunnel_licenses, subscriber_licenses = (licenses if isinstance(licenses, tuple)
                                            else (licenses, licenses))
    groups = plan.groups
    cfg: dict[str, Any] = {
        "listen": [{"address": address} for address in plan.addresses],
        "workers": workers,
        "vrs": {g.group: {"netns": g.vr, "interface_prefix": f"ips{i + 1}", "mtu": 1400}
                for i, g in enumerate(groups)},
        "pools": {g.group: {g.group: {"ranges": [g.pool]}} for g in groups},
        "ike": {
            "force_encap": force_encap,
            "remote_delete_grace": remote_delete_grace,
            "dpd": {"enabled": True, "interval": dpd[0], "timeout": dpd[1]},
            "limits": {"max_half_open_per_peer": 64, "max_sas_per_peer": 64},
        },
        "pre_shared_keys": (
            [{"identity": f"keyid:{g.group}", "secret": g.psk, **_bound(g, "local", g.gateway)}
             for g in groups]
            + [{"local": address, "secret": plan.main_mode_key(address)}
               for address in plan.addresses]),
        "tunnel_profiles": [{
            "name": g.group,
            "match": {"identities": [f"keyid:{g.group}"],
                      **_bound(g, "local_addresses", [g.gateway])},
            "vr": g.group,
            "pool": g.group,
            "local_networks": [g.intranet],
            "mode_config": {
                "dns": list(g.dns), "wins": list(g.wins),
                **({"banner": g.banner} if g.banner else {}),
                **({"default_domain": g.default_domain} if g.default_domain else {}),
                "send_unrequested": True,
            },
            "xauth": {"max_attempts": max_attempts, "timeout": 30},
        } for g in groups],
        "aaa": {"default_method": aaa},
        "licenses": {"ipsec_tunnel": tunnel_licenses, "subscriber": subscriber_licenses},
        "control": {"socket": control_socket},
        "metrics": {"enabled": False},
        "logging": {"level": log_level},
    }
    if aaa == "local":
        users = {name: {"password": password} for name, password in sorted(plan.users.items())}
        for name, extra in (extra_users or {}).items():
            users[name] = {**users.get(name, {}), **extra}
        cfg["aaa"]["local_users"] = users
    if topology is not None and topology.aaa.enabled:
        mgmt = topology.management
        secret = topology.aaa.secret
        cfg["aaa"]["radius"] = {
            "nas_identifier": topology.router_name,
            "nas_ip": str(topology.nas_address),
            "server_groups": {"lab": {"servers": [{
                "address": str(mgmt.aaa), "secret": secret, "timeout": 2, "retries": 2}]}},
            "default_group": "lab",
        }
        if accounting:
            cfg["aaa"]["accounting"] = {"enabled": True, "interim_interval": 600,
                                        "server_group": "lab"}
        cfg["aaa"]["dae"] = {"listen": str(mgmt.router), "port": topology.aaa.coa_port,
                             "clients": [{"address": str(mgmt.aaa), "secret": secret,
                                          "name": "freeradius"}]}
    elif aaa == "radius":
        raise ValueError("aaa='radius' needs the lab topology with its AAA host")
    return cfg


class DynipsecDaemon(Daemon):
    name = "dynipsec"
    ready_timeout = 20.0
    stop_timeout = 15.0

    def __init__(self, node: ProcessHost, workdir: Path, config: dict,
                 tracker: PidTracker | None = None):
        super().__init__(node, workdir, tracker)
        self.config = config

    @property
    def config_path(self) -> Path:
        return self.workdir / "responder.yaml"

    @property
    def control_socket(self) -> str:
        return self.config["control"]["socket"]

    def build_config(self) -> None:
        self.config_path.write_text(
            "# rendered by lab/gateways/dynipsec.py from the lab's access plan\n"
            + yaml.safe_dump(self.config, sort_keys=False))
        os.chmod(self.config_path, 0o600)  # group keys and user passwords

    def check_config(self) -> None:
        from responder.config import ConfigError, load_config
        try:
            load_config(str(self.config_path))
        except ConfigError as exc:
            raise DaemonError("the rendered responder configuration is refused:\n"
                              + "\n".join(exc.problems)) from None

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "responder", "responder", "run", "-c",
                str(self.config_path)]

    def env(self) -> dict[str, str]:
        # the node's cwd may be anywhere: make the checkout importable
        root = str(Path(__file__).resolve().parents[2])
        return {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
                "PYTHONUNBUFFERED": "1"}

    def ready(self) -> bool:
        if not self.alive() or not os.path.exists(self.control_socket):
            return False
        try:
            answer = self.request({"cmd": "ping"}, timeout=1)
        except GatewayError:
            return False
        return all(w.get("ready") for w in answer.get("workers", []))

    def request(self, req: dict, timeout: float = 15.0) -> dict:
        from responder.daemon.control import ControlError, request
        try:
            return request(self.control_socket, req, timeout=timeout)
        except ControlError as exc:
            raise GatewayError(str(exc)) from None


class DynipsecGateway(Gateway):
    """dynipsec as the lab's IKEv1 remote-access gateway (same interface as the
    reference StrongSwanGateway: start, stop, ready, subscribers, terminate)."""

    kind = "dynipsec"

    def __init__(self, node: ProcessHost, workdir: Path, plan: AccessPlan,
                 tracker: PidTracker | None = None, *, aaa: str = "local",
                 topology: Any = None, workers: int = 2,
                 licenses: int | tuple[int, int] = 1000,
                 log_level: str = "info", extra_users: dict[str, dict] | None = None,
                 max_attempts: int = 3, dpd: tuple[float, float] = (10.0, 30.0),
                 remote_delete_grace: float = 0.0, accounting: bool = True,
                 extra_config: dict | None = None):
        super().__init__(node, workdir, plan, tracker)
        self.topology = topology if topology is not None else getattr(tracker, "topology", None)
        socket_path = unix_socket_path(self.workdir.resolve(), "control.sock")
        self.aaa = aaa
        config = render_config(plan, control_socket=str(socket_path), topology=self.topology,
                               aaa=aaa, workers=workers, licenses=licenses,
                               log_level=log_level, extra_users=extra_users,
                               max_attempts=max_attempts, dpd=dpd,
                               remote_delete_grace=remote_delete_grace,
                               accounting=accounting)
        # the default state directory sits beside the control socket, which a deep work
        # directory puts in the temporary directory: keep it with the gateway's other files
        config["state_dir"] = str(self.state_dir)
        if extra_config:  # e.g. static_tunnels, ike.key_export_file
            config = merge_config(config, extra_config)
        self.daemon = DynipsecDaemon(node, self.workdir, config, tracker)
        self._attached: list[str] = []

    @property
    def state_dir(self) -> Path:
        """Boot counter and accounting journal: kept across restarts of this gateway."""
        return self.workdir.resolve() / "state"

    @property
    def config(self) -> dict:
        return self.daemon.config

    @property
    def log_path(self) -> Path:
        return self.daemon.log_path

    @property
    def ready(self) -> bool:
        return self.daemon.ready()

    @property
    def pid(self) -> int | None:
        return self.daemon.pid

    def _vr_pids(self) -> dict[str, int]:
        """netns name -> PID of the VR node (the lab is the tracker)."""
        node_of = getattr(self.tracker, "node", None)
        pids = {}
        for group in self.plan.groups:
            try:
                pids[group.vr] = node_of(group.vr).pid if node_of else None
            except (KeyError, ValueError, AttributeError):
                pids[group.vr] = None
        return {name: pid for name, pid in pids.items() if pid}

    def _attach_vr_names(self) -> None:
        """The router node has a private /run (lab/engine.py PRIVATE_DIRS): the lab's
        `ip netns` names of the VRs are not visible there. Give them again, inside the
        router's own /run/netns (gone with the node's tmpfs, removed at stop)."""
        for name, pid in self._vr_pids().items():
            if self.node.cmd(f"test -e /run/netns/{name} && echo yes").strip() == "yes":
                continue
            out = self.node.cmd(f"ip netns attach {name} {pid} 2>&1").strip()
            if out:
                raise GatewayError(f"ip netns attach {name} {pid} on {self.node.name}: {out}")
            self._attached.append(name)

    def _detach_vr_names(self) -> None:
        for name in self._attached:
            self.node.cmd(f"ip netns delete {name} 2>&1")
        self._attached = []

    def start(self) -> "DynipsecGateway":
        try:
            self._attach_vr_names()
            self.daemon.start()
        except Exception as exc:
            self.stop()
            raise GatewayError(f"dynipsec on {self.node.name} did not start: {exc}") from exc
        log.info("dynipsec gateway on %s serves %s for groups %s (AAA %s)", self.node.name,
                 self.plan.gateway, ", ".join(g.group for g in self.plan.groups), self.aaa)
        return self

    def stop(self) -> None:
        """SIGTERM: every subscriber is logged out (Deletes, Stop), then the processes end."""
        self.daemon.stop()
        self._detach_vr_names()

    def request(self, req: dict, timeout: float = 15.0) -> dict:
        return self.daemon.request(req, timeout=timeout)

    def show(self, what: str, **filters) -> list[dict]:
        return self.request({"cmd": "show", "what": what, **filters}).get("rows", [])

    def subscribers(self) -> list[GatewaySubscriber]:
        return [GatewaySubscriber(user=row.get("user") or "", address=row.get("address") or "",
                           group=row.get("profile") or "")
                for row in self.show("subscribers")]

    def subscriber_rows(self, **filters) -> list[dict]:
        return self.show("subscribers", **filters)

    def terminate(self, user: str | None = None, address: str | None = None) -> int:
        """Logs subscribers out from the gateway side (Delete sent); returns how many."""
        req: dict[str, Any] = {"cmd": "logout"}
        if user:
            req["user"] = user
        if address:
            req["address"] = address
        if len(req) == 1:
            req["all"] = True
        return int(self.request(req, timeout=30).get("count", 0))

    def workers(self) -> list[dict]:
        return self.request({"cmd": "ping"}).get("workers", [])

    def wait_for(self, predicate, timeout: float = 10.0, interval: float = 0.1) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if predicate():
                    return True
            except GatewayError:
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(interval)


def _bound(group, key: str, value: Any) -> dict:
    """{key: value} for a group bound to an address of its own, {} for a shared one."""
    return {key: value} if group.gateway else {}


def merge_config(base: dict, extra: dict) -> dict:
    """`base` with `extra` merged in: mappings recursively, anything else (lists too)
    replaced."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


def pool_netmask(pool: str) -> str:
    return str(ipaddress.ip_network(pool).netmask)
