"""The reference gateway: strongSwan's charon as IKEv1 responder in the router node.

It serves the same remote-access plan as dynipsec will (lab/gateways/plan.py), so
that the lab, the clients and the benchmarks can be checked without dynipsec and
results compared side by side. Decrypted subscriber traffic leaves charon's
ipsec0 (kernel-libipsec) inside the router namespace; the lab's policy routing
(`ip rule from <pool> lookup 100+k`) carries it to the subscriber's VR. Answers
come back through the route charon installs per subscriber in table 220
(`<vip> dev ipsec0 src <anchor>`). kernel-libipsec refuses to install that
route (and then deletes the CHILD_SA) unless the router owns an address inside
the local traffic selector, the VR's intranet, which lives in the VR namespace:
so the gateway puts one "anchor" address per intranet (its last host, /32) on
the router's loopback while it runs.

AAA: ``local`` (the default) checks Xauth against the plan's users in swanctl.conf
and sends no accounting; ``radius`` (needs the lab topology with its AAA host) loads
eap-radius, checks Xauth with ``xauth-radius`` against the lab's FreeRADIUS and sends
RADIUS accounting Start/Stop (``eap-radius.accounting``), like the dynipsec gateway.

Interface shared with the dynipsec gateway (see lab/gateways/__init__.py):
start(), stop(), ready, subscribers() -> [GatewaySubscriber(user, address, group)].
"""
from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

from clients.charon import Charon, SwanctlError, render
from clients.process import PidTracker, ProcessHost
from lab.gateways.base import Gateway, GatewayError, GatewaySubscriber
from lab.gateways.plan import AccessPlan

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
#: local identity of the Main Mode connections (see swanctl-gateway.conf.j2)
MAIN_MODE_ID = "keyid:gateway-main-mode"
AAA_MODES = ("local", "radius")
#: the lab FreeRADIUS's ports (lab/aaa.py)
RADIUS_AUTH_PORT, RADIUS_ACCT_PORT = 1812, 1813


def main_mode_ids(plan: AccessPlan) -> dict[str, str]:
    """Gateway address -> local identity of its Main Mode connections: the identity names
    the address's Main Mode key, so each address needs one of its own."""
    return {address: MAIN_MODE_ID if address == plan.gateway else f"{MAIN_MODE_ID}-{address}"
            for address in plan.addresses}


class GatewayCharon(Charon):
    name = "charon-gateway"

    def __init__(self, node: ProcessHost, workdir: Path, plan: AccessPlan,
                 tracker: PidTracker | None = None, log_level: int = 1,
                 dpd_delay: int = 10, dpd_timeout: int = 30, radius: dict | None = None):
        super().__init__(node, workdir, tracker)
        self.plan = plan
        self.log_level = log_level
        self.dpd_delay = dpd_delay
        self.dpd_timeout = dpd_timeout
        self.radius = radius

    def build_config(self) -> None:
        values = dict(node=self.node.name, workdir=self.workdir, vici_socket=self.vici_path, plan=self.plan,
                      users=sorted(self.plan.users.items()), main_mode_ids=main_mode_ids(self.plan),
                      log_level=self.log_level, dpd_delay=self.dpd_delay,
                      dpd_timeout=self.dpd_timeout)
        render("strongswan-gateway.conf.j2", self.conf_path, TEMPLATES, **values)
        render("swanctl-gateway.conf.j2", self.swanctl_conf_path, TEMPLATES, **values)
        if self.radius is not None:
            self.conf_path.write_text(with_eap_radius(self.conf_path.read_text(), **self.radius))
            self.swanctl_conf_path.write_text(
                self.swanctl_conf_path.read_text().replace("auth = xauth-generic",
                                                           "auth = xauth-radius"))
        # both files hold secrets (group keys, user passwords, the RADIUS secret)
        os.chmod(self.conf_path, 0o600)
        os.chmod(self.swanctl_conf_path, 0o600)


def radius_settings(topology) -> dict:
    """eap-radius settings for the lab's FreeRADIUS (server, secret, NAS identifier)."""
    if topology is None or not topology.aaa.enabled:
        raise GatewayError("aaa='radius' needs the lab topology with its AAA host")
    return {"server": str(topology.management.aaa), "secret": topology.aaa.secret,
            "nas_identifier": topology.router_name}


def with_eap_radius(conf: str, *, server: str, secret: str, nas_identifier: str) -> str:
    """The rendered strongswan.conf with eap-radius loaded (Xauth by RADIUS, accounting)."""
    lines = []
    for line in conf.splitlines(keepends=True):
        if line.strip().startswith("load = ") and "xauth-generic" in line:
            line = line.rstrip("\n") + " eap-radius\n"
        lines.append(line)
        if line.strip() == "plugins {":
            lines.append(
                "    eap-radius {\n"
                "      accounting = yes\n"
                f"      nas_identifier = {nas_identifier}\n"
                "      servers {\n"
                "        lab {\n"
                f"          address = {server}\n"
                f"          secret = \"{secret}\"\n"
                f"          auth_port = {RADIUS_AUTH_PORT}\n"
                f"          acct_port = {RADIUS_ACCT_PORT}\n"
                "        }\n"
                "      }\n"
                "    }\n")
    return "".join(lines)


class StrongSwanGateway(Gateway):
    """strongSwan charon as the lab's IKEv1 remote-access gateway."""

    kind = "strongswan"

    def __init__(self, node: ProcessHost, workdir: Path, plan: AccessPlan,
                 tracker: PidTracker | None = None, log_level: int = 1,
                 dpd_delay: int = 10, dpd_timeout: int = 30, *, aaa: str = "local",
                 topology=None):
        super().__init__(node, workdir, plan, tracker)
        if aaa not in AAA_MODES:
            raise ValueError(f"aaa must be one of {AAA_MODES}, not {aaa!r}")
        self.aaa = aaa
        topology = topology if topology is not None else getattr(tracker, "topology", None)
        radius = radius_settings(topology) if aaa == "radius" else None
        self.charon = GatewayCharon(node, self.workdir, plan, tracker, log_level,
                                    dpd_delay, dpd_timeout, radius=radius)
        self._anchors_added: list[str] = []

    @property
    def log_path(self) -> Path:
        # charon logs into its filelog (strongswan.conf); its stdout stays empty
        return self.charon.filelog_path

    @property
    def ready(self) -> bool:
        return self.charon.alive() and self.charon.vici_path.exists()

    def start(self) -> "StrongSwanGateway":
        try:
            self._add_anchor_addresses()
            self.charon.start()
        except Exception as exc:
            self.stop()
            raise GatewayError(f"reference gateway on {self.node.name} did not start: {exc}") from exc
        log.info("reference gateway (strongSwan) on %s serves %s for groups %s (AAA %s)",
                 self.node.name, ", ".join(self.plan.addresses),
                 ", ".join(g.group for g in self.plan.groups), self.aaa)
        return self

    def anchor_addresses(self) -> list[str]:
        """One router address per VR intranet, so kernel-libipsec can install routes."""
        anchors = []
        for group in self.plan.groups:
            network = ipaddress.ip_network(group.intranet)
            anchor = str(network[-2]) if network.num_addresses > 2 else str(network[0])
            if anchor not in anchors:
                anchors.append(anchor)
        return anchors

    def _add_anchor_addresses(self) -> None:
        for anchor in self.anchor_addresses():
            out = self.node.cmd(f"ip addr add {anchor}/32 dev lo 2>&1").strip()
            if out and "File exists" not in out:
                raise GatewayError(f"anchor address {anchor} on {self.node.name}: {out}")
            if not out:
                self._anchors_added.append(anchor)

    def stop(self) -> None:
        """Stops charon (its ipsec0 and routes go with it), removes the anchors."""
        self.charon.stop()
        for anchor in self._anchors_added:
            self.node.cmd(f"ip addr del {anchor}/32 dev lo")
        self._anchors_added = []

    def subscribers(self) -> list[GatewaySubscriber]:
        """Logged-in subscribers from `swanctl --list-sas` (established IKE SAs with a VIP)."""
        try:
            sas = self.charon.list_sas()
        except SwanctlError as exc:
            raise GatewayError(str(exc)) from exc
        found = []
        for sa in sas:
            vips = sa.get("remote-vips") or []
            if sa.get("state") != "ESTABLISHED" or not vips:
                continue
            group = sa["name"].rsplit("-", 1)[0]
            found.append(GatewaySubscriber(user=sa.get("remote-xauth-id", ""), address=vips[0],
                                    group=group))
        return found

    def terminate(self, user: str | None = None, address: str | None = None) -> int:
        """Logs subscribers out from the gateway side (sends Delete); returns how many."""
        count = 0
        for sa in self.charon.list_sas():
            if user and sa.get("remote-xauth-id") != user:
                continue
            if address and address not in (sa.get("remote-vips") or []):
                continue
            self.charon.swanctl("--terminate", "--ike-id", sa["uniqueid"], "--loglevel", "0")
            count += 1
        return count
