"""What a remote-access gateway serves and what its clients need: the access plan.

Gateways (the reference strongSwan one, later dynipsec) and the scenario runner
read the same plan, taken from the topology: the public address, one VR group
per virtual router (key-id, pool, intranet, DNS/WINS), and the Xauth users.

Main Mode with a pre-shared key: the key is needed before the peer's identity
arrives, so a gateway address has one Main Mode key for every group served there
(`main_mode_key(address)`); Aggressive Mode carries the group name in its first
message, so each group has its own key there. A group bound to an address of its
own (`VrGroup.gateway`) is served on that address only: one Main Mode VPN per
address, keyed with the first bound group's key.
"""
from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any


@dataclasses.dataclass(frozen=True)
class VrGroup:
    """One IKE group (key-id) and the virtual router its subscribers land on."""

    group: str                 # IKE key-id / group name, e.g. "vr1"
    vr: str                    # VR node / netns name, e.g. "dlvr1"
    pool: str                  # address pool, e.g. "10.99.1.0/24"
    psk: str = dataclasses.field(repr=False)   # Aggressive Mode group key
    intranet: str = "10.50.0.0/24"
    server: str = "10.50.0.10"
    dns: tuple[str, ...] = ("10.50.0.53", "10.50.0.54")
    wins: tuple[str, ...] = ("10.50.0.137", "10.50.0.138")
    banner: str = ""
    default_domain: str = ""
    #: the public address this group is bound to; "": the plan's gateway (shared)
    gateway: str = ""

    @property
    def netmask(self) -> str:
        """The pool's netmask, sent as INTERNAL_IP4_NETMASK."""
        return str(ipaddress.ip_network(self.pool).netmask)

    def in_pool(self, address: str | None) -> bool:
        return bool(address) and ipaddress.ip_address(address) in ipaddress.ip_network(self.pool)


@dataclasses.dataclass(frozen=True)
class AccessPlan:
    gateway: str                                  # public address clients connect to
    groups: tuple[VrGroup, ...]
    users: dict[str, str] = dataclasses.field(repr=False)   # Xauth user -> password
    main_mode_psk: str = dataclasses.field(default="", repr=False)

    def __post_init__(self):
        if not self.groups:
            raise ValueError("an access plan needs at least one VR group")
        if not self.main_mode_psk:
            # one key per gateway address in Main Mode: default to the key of the first
            # group served on the plan's gateway
            shared = self.groups_at(self.gateway) or self.groups
            object.__setattr__(self, "main_mode_psk", shared[0].psk)

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address the gateway serves, the plan's gateway first."""
        bound = [g.gateway for g in self.groups if g.gateway and g.gateway != self.gateway]
        return tuple(dict.fromkeys([self.gateway, *bound]))

    def gateway_for(self, group: str | VrGroup) -> str:
        """The address a client of `group` connects to."""
        entry = group if isinstance(group, VrGroup) else self.group(group)
        return entry.gateway or self.gateway

    def groups_at(self, address: str) -> tuple[VrGroup, ...]:
        return tuple(g for g in self.groups if self.gateway_for(g) == address)

    def main_mode_key(self, address: str) -> str:
        """The Main Mode key of a gateway address: chosen before any identity is known."""
        if address == self.gateway:
            return self.main_mode_psk
        return self.groups_at(address)[0].psk

    def group(self, name: str) -> VrGroup:
        for group in self.groups:
            if name in (group.group, group.vr):
                return group
        raise KeyError(f"no VR group {name!r} (have {[g.group for g in self.groups]})")

    def psk_for(self, group: str, mode: str) -> str:
        if mode == "main":
            return self.main_mode_key(self.gateway_for(group))
        return self.group(group).psk

    def user_names(self) -> list[str]:
        return sorted(self.users)


# -- from the topology -----------------------------------------------------------
def plan_from_topology(topology: Any) -> AccessPlan:
    """Builds the plan from a lab.topology.Topology (topologies/*.yaml).

    The topology has no Main Mode key of its own: the first group's key serves
    Main Mode for every group (see the module docstring). Unity banner and
    default domain are derived from the VR name.
    """
    groups = []
    for entry in topology.aaa.groups:
        vr = topology.vr(entry.vr)
        intranet = vr.intranet
        groups.append(VrGroup(
            group=entry.name,
            vr=topology.vr_netns(vr),
            pool=str(entry.pool),
            psk=entry.psk,
            intranet=str(intranet.subnet),
            server=str(intranet.server),
            dns=tuple(str(a) for a in intranet.dns),
            wins=tuple(str(a) for a in intranet.wins),
            banner=f"Welcome to {vr.name} ({topology.name} lab)",
            default_domain=f"{vr.name}.{topology.name}.lab",
            gateway=_bound_address(entry),
        ))
    users = {user.name: user.password for user in topology.aaa.users}
    return AccessPlan(gateway=str(topology.access.router), groups=tuple(groups), users=users)


def _bound_address(group: Any) -> str:
    """The address a group is bound to, "" when it is shared on the router's main address."""
    return "" if group.address is None else str(group.address)


def default_plan(prefix: str = "dl", users: int = 250) -> AccessPlan:
    """The default topology's plan (docs/lab-contract.md), for tests and development."""
    groups = tuple(
        VrGroup(group=f"vr{k}", vr=f"{prefix}vr{k}", pool=f"10.99.{k}.0/24",
                psk=f"psk-vr{k}", banner=f"Welcome to VR {k}",
                default_domain=f"vr{k}.lab.example")
        for k in (1, 2))
    return AccessPlan(gateway="198.18.0.1", groups=groups,
                      users={f"user{i:03d}": f"pw-user{i:03d}" for i in range(1, users + 1)},
                      main_mode_psk="psk-main-mode")
