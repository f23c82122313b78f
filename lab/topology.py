"""Lab topologies: a YAML file validated into a `Topology` (pure data, no side effects).

A topology says which nodes exist and which addresses they carry; `lab.engine` turns it
into a Mininet network. Node names are derived from the topology's `prefix`, so two labs
with different prefixes can run side by side on one machine.

Every mistake in a file is reported at once, one line each, with the path of the key:

    vrs[1].intranet.server: '10.50.0.300' is not a valid IPv4 address

(Two rounds: all type/shape errors first; the consistency rules that relate several keys,
e.g. "address inside its subnet", run once the shapes are right, again all at once.)
"""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Iterator

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr,
                      ValidationError, model_validator)
from pydantic_core import PydanticCustomError

REPO_ROOT = Path(__file__).resolve().parents[1]
TOPOLOGY_DIR = REPO_ROOT / "topologies"

#: Linux limits interface names to 15 characters; Mininet names them NODE-ethN.
IFNAME_MAX = 15
PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,4}$")
VR_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,7}$")


class TopologyError(ValueError):
    """A topology file is missing, unreadable or invalid; `problems` holds one line each."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems))


# -- address types with readable errors ------------------------------------------------
def _ipv4_address(value: Any) -> ipaddress.IPv4Address:
    if isinstance(value, ipaddress.IPv4Address):
        return value
    try:
        return ipaddress.IPv4Address(value if isinstance(value, str) else str(value))
    except ValueError:
        raise PydanticCustomError("ipv4_address", "{value} is not a valid IPv4 address",
                                  {"value": repr(value)}) from None


def _ipv4_network(value: Any) -> ipaddress.IPv4Network:
    if isinstance(value, ipaddress.IPv4Network):
        return value
    text = value if isinstance(value, str) else str(value)
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        why = "host bits set" if "host bits" in str(exc) else "expected ADDRESS/PREFIXLEN"
        raise PydanticCustomError("ipv4_network", "{value} is not a valid IPv4 network ({why})",
                                  {"value": repr(value), "why": why}) from None


IPv4 = Annotated[ipaddress.IPv4Address, BeforeValidator(_ipv4_address)]
IPv4Net = Annotated[ipaddress.IPv4Network, BeforeValidator(_ipv4_network)]


class Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- sections ----------------------------------------------------------------------------
class AccessLan(Strict):
    """The access network where clients live; a bridge `lan0` inside the router."""

    subnet: IPv4Net
    router: IPv4  # the public address the gateway listens on
    #: further public addresses of the router, on the same bridge: a Main Mode VPN is
    #: chosen by the address the client connects to, so each needs an address of its own
    addresses: list[IPv4] = []


class PointToPoint(Strict):
    """A /30-style link between the router and one neighbour."""

    subnet: IPv4Net
    router: IPv4


class Management(PointToPoint):
    aaa: IPv4


class Transit(PointToPoint):
    vr: IPv4


class Intranet(Strict):
    """The private network behind a VR, with one server that also answers as DNS/WINS."""

    subnet: IPv4Net
    gateway: IPv4
    server: IPv4
    dns: tuple[IPv4, IPv4]
    wins: tuple[IPv4, IPv4]


class VirtualRouter(Strict):
    name: str
    table: int = Field(ge=1, le=252)  # router policy-routing table for this VR's pool
    transit: Transit
    intranet: Intranet
    pool: IPv4Net


class Clients(Strict):
    """Client i (1-based) gets `first` + block*256 + offset, `per_block` hosts per /24 block."""

    count: int = Field(default=50, ge=0, le=5000)
    first: IPv4
    per_block: int = Field(default=250, ge=1, le=254)


class NatInside(Strict):
    subnet: IPv4Net
    gateway: IPv4
    first_client: IPv4


class Nat(Strict):
    """A NAT host on the access LAN with its own inside bridge and nftables masquerade."""

    public: IPv4
    inside: NatInside
    clients: int = Field(default=4, ge=0, le=200)


class NatHost(Nat):
    """A NAT host of the `nats` list: on the access LAN, or (`upstream`) on the inside
    network of an earlier NAT host, which puts its clients behind both NATs.
    Node PREFIX+name; its clients PREFIX+client_prefix+i."""

    name: str
    upstream: str | None = None  # the name of an earlier entry; None: the access LAN
    client_prefix: str


#: the `nat` section as an entry of the `nats` list: node PREFIXnat, clients PREFIXn<i>
LEGACY_NAT_NAME = "nat"
LEGACY_NAT_CLIENT_PREFIX = "n"


class ReplyAttributes(Strict):
    """RADIUS reply attributes for one user (FreeRADIUS names in RADIUS_REPLY_NAMES)."""

    framed_ip_address: IPv4 | None = None
    framed_ip_netmask: IPv4 | None = None
    session_timeout: int | None = Field(default=None, ge=1)
    idle_timeout: int | None = Field(default=None, ge=1)
    class_: str | None = Field(default=None, alias="class")
    reply_message: str | None = None
    virtual_router: str | None = None  # Juniper 4874/1: a VR name of this topology
    address_pool: str | None = None  # Juniper 4874/2
    primary_dns: IPv4 | None = None  # Juniper 4874/4
    secondary_dns: IPv4 | None = None  # Juniper 4874/5
    primary_wins: IPv4 | None = None  # Juniper 4874/6
    secondary_wins: IPv4 | None = None  # Juniper 4874/7

    def radius_pairs(self) -> list[tuple[str, str, bool]]:
        """(FreeRADIUS attribute name, value, is_string) for each attribute set."""
        pairs = []
        for field, (radius_name, is_string) in RADIUS_REPLY_NAMES.items():
            value = getattr(self, field)
            if value is not None:
                pairs.append((radius_name, str(value), is_string))
        return pairs


#: field -> (FreeRADIUS dictionary name, quoted string?); names from dictionary.rfc2865
#: and dictionary.erx (Juniper/ERX vendor 4874).
RADIUS_REPLY_NAMES: dict[str, tuple[str, bool]] = {
    "framed_ip_address": ("Framed-IP-Address", False),
    "framed_ip_netmask": ("Framed-IP-Netmask", False),
    "session_timeout": ("Session-Timeout", False),
    "idle_timeout": ("Idle-Timeout", False),
    "class_": ("Class", True),
    "reply_message": ("Reply-Message", True),
    "virtual_router": ("ERX-Virtual-Router-Name", True),
    "address_pool": ("ERX-Address-Pool-Name", True),
    "primary_dns": ("ERX-Primary-Dns", False),
    "secondary_dns": ("ERX-Secondary-Dns", False),
    "primary_wins": ("ERX-Primary-Wins", False),
    "secondary_wins": ("ERX-Secondary-Wins", False),
}


class User(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    password: str = Field(min_length=1, max_length=128)
    reply: ReplyAttributes = ReplyAttributes()


class UsersRange(Strict):
    """Generated users: user001 .. user250 with password pw-user001 .. (lab-only)."""

    prefix: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    count: int = Field(ge=1, le=100000)
    digits: int = Field(default=3, ge=1, le=8)
    password_prefix: str = ""

    def users(self) -> Iterator[User]:
        for i in range(1, self.count + 1):
            name = f"{self.prefix}{i:0{self.digits}d}"
            yield User(name=name, password=f"{self.password_prefix}{name}")


class IkeGroup(Strict):
    """An IKE group (key-id as sent by vpnc / strongSwan aggressive mode) -> VR, pool, PSK."""

    name: str = Field(min_length=1)
    vr: str
    pool: IPv4Net
    psk: str = Field(min_length=1)
    #: the public address this group's VPN is served on (access.router or one of
    #: access.addresses); None: access.router, whose Main Mode key all such groups share
    address: IPv4 | None = None


class Aaa(Strict):
    enabled: bool = True
    secret: str = Field(min_length=1)
    nas: IPv4 | None = None  # None: the router's management address
    coa_port: int = Field(default=3799, ge=1, le=65535)
    groups: list[IkeGroup] = []
    users_range: UsersRange | None = None
    #: explicit users; after validation the generated `users_range` users are appended,
    #: so `users` is always the complete list.
    users: list[User] = []
    _explicit_count: int = PrivateAttr(default=0)

    @model_validator(mode="after")
    def _expand_users_range(self) -> "Aaa":
        self._explicit_count = len(self.users)
        if self.users_range is not None:
            explicit = {u.name for u in self.users}
            generated = [u for u in self.users_range.users() if u.name not in explicit]
            object.__setattr__(self, "users", [*self.users, *generated])
        return self

    @property
    def explicit_users(self) -> list[User]:
        """The users listed in the YAML (without the generated range)."""
        return self.users[:self._explicit_count]

    def user(self, name: str) -> User:
        for user in self.users:
            if user.name == name:
                return user
        raise KeyError(name)


class RouterView(BaseModel):
    """Convenience view of the router's addresses (derived, not in the YAML)."""

    name: str
    public_address: ipaddress.IPv4Address
    management_address: ipaddress.IPv4Address


class Topology(Strict):
    name: str
    prefix: str
    access: AccessLan
    management: Management
    vrs: list[VirtualRouter] = Field(min_length=1)
    clients: Clients
    nat: Nat | None = None
    nats: list[NatHost] = []
    aaa: Aaa

    # -- node names ----------------------------------------------------------------------
    @property
    def router_name(self) -> str:
        return f"{self.prefix}r"

    @property
    def aaa_name(self) -> str:
        return f"{self.prefix}aaa"

    @property
    def nat_name(self) -> str:
        return f"{self.prefix}nat"

    def vr_netns(self, vr: VirtualRouter | str) -> str:
        """Node and `ip netns` name of a VR (topology name 'vr1' -> 'dlvr1')."""
        return f"{self.prefix}{vr if isinstance(vr, str) else vr.name}"

    def server_name(self, index: int) -> str:
        """Intranet server of the VR at 1-based `index`."""
        return f"{self.prefix}srv{index}"

    def client_name(self, i: int) -> str:
        return f"{self.prefix}c{i}"

    def nat_client_name(self, i: int) -> str:
        return f"{self.prefix}{LEGACY_NAT_CLIENT_PREFIX}{i}"

    # -- NAT hosts (the `nat` section first, then `nats`, in build order) ----------------
    @property
    def nat_hosts(self) -> list[NatHost]:
        legacy = []
        if self.nat is not None:
            legacy = [NatHost(name=LEGACY_NAT_NAME, client_prefix=LEGACY_NAT_CLIENT_PREFIX,
                              **self.nat.model_dump())]
        return [*legacy, *self.nats]

    def nat_host(self, name: str) -> NatHost:
        for nat in self.nat_hosts:
            if nat.name == name:
                return nat
        raise KeyError(name)

    def nat_host_name(self, nat: NatHost) -> str:
        return f"{self.prefix}{nat.name}"

    def nat_host_client_name(self, nat: NatHost, i: int) -> str:
        return f"{self.prefix}{nat.client_prefix}{i}"

    @staticmethod
    def nat_host_client_address(nat: NatHost, i: int) -> ipaddress.IPv4Address:
        return nat.inside.first_client + (i - 1)

    def nat_uplink(self, nat: NatHost) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]:
        """(network, default gateway) of the side a NAT host masquerades into."""
        if nat.upstream is None:
            return self.access.subnet, self.access.router
        upstream = self.nat_host(nat.upstream)
        return upstream.inside.subnet, upstream.inside.gateway

    @property
    def public_addresses(self) -> list[ipaddress.IPv4Address]:
        """Every address the gateway listens on: access.router first."""
        return [self.access.router, *self.access.addresses]

    def vr(self, name: str) -> VirtualRouter:
        """A VR by topology name ('vr1') or netns name ('dlvr1')."""
        for vr in self.vrs:
            if name in (vr.name, self.vr_netns(vr)):
                return vr
        raise KeyError(name)

    @property
    def router(self) -> RouterView:
        return RouterView(name=self.router_name, public_address=self.access.router,
                          management_address=self.management.router)

    @property
    def nas_address(self) -> ipaddress.IPv4Address:
        return self.aaa.nas or self.management.router

    # -- addresses -----------------------------------------------------------------------
    def client_address(self, i: int) -> ipaddress.IPv4Address:
        block, offset = divmod(i - 1, self.clients.per_block)
        return self.clients.first + block * 256 + offset

    def nat_client_address(self, i: int) -> ipaddress.IPv4Address:
        assert self.nat is not None
        return self.nat.inside.first_client + (i - 1)

    def node_names(self) -> list[str]:
        names = [self.router_name, self.aaa_name]
        for k, vr in enumerate(self.vrs, 1):
            names += [self.vr_netns(vr), self.server_name(k)]
        for nat in self.nat_hosts:
            names.append(self.nat_host_name(nat))
            names += [self.nat_host_client_name(nat, i) for i in range(1, nat.clients + 1)]
        names += [self.client_name(i) for i in range(1, self.clients.count + 1)]
        return names

    def with_overrides(self, *, clients: int | None = None, prefix: str | None = None) -> "Topology":
        """A validated copy with another client count and/or prefix."""
        data = self.model_dump(mode="json", by_alias=True)
        data["aaa"].pop("users", None)
        data["aaa"]["users"] = [u.model_dump(mode="json", by_alias=True, exclude_defaults=True)
                                for u in self.aaa.explicit_users]
        if clients is not None:
            data["clients"]["count"] = clients
        if prefix:
            data["prefix"] = prefix
        return parse_topology(data, source=f"{self.name} (overridden)")

    def summary(self) -> dict[str, Any]:
        """Plain-data description for lab.json and `dynipsec lab status`."""
        return {
            "name": self.name,
            "prefix": self.prefix,
            "router": {"name": self.router_name, "public": str(self.access.router),
                       "addresses": [str(a) for a in self.public_addresses],
                       "management": str(self.management.router)},
            "aaa": {"name": self.aaa_name, "address": str(self.management.aaa),
                    "enabled": self.aaa.enabled, "users": len(self.aaa.users)},
            "vrs": [{"name": vr.name, "netns": self.vr_netns(vr), "server": self.server_name(k),
                     "transit": str(vr.transit.subnet), "intranet": str(vr.intranet.subnet),
                     "pool": str(vr.pool), "table": vr.table}
                    for k, vr in enumerate(self.vrs, 1)],
            "clients": self.clients.count,
            "nat": None if not self.nat else {"name": self.nat_name, "public": str(self.nat.public),
                                               "inside": str(self.nat.inside.subnet),
                                               "clients": self.nat.clients},
            "nats": [{"name": self.nat_host_name(nat), "public": str(nat.public),
                      "upstream": nat.upstream, "inside": str(nat.inside.subnet),
                      "clients": nat.clients} for nat in self.nat_hosts],
        }


# -- cross checks (need several fields at once) -----------------------------------------
def _cross_check(t: Topology) -> list[str]:
    """Consistency rules pydantic field types cannot express; all problems at once."""
    problems: list[str] = []

    def need(ok: bool, path: str, message: str) -> None:
        if not ok:
            problems.append(f"{path}: {message}")

    need(bool(PREFIX_PATTERN.match(t.prefix)), "prefix",
         f"{t.prefix!r} must be 1-5 lowercase letters/digits starting with a letter "
         f"(interface names are limited to {IFNAME_MAX} characters)")
    need(t.access.router in t.access.subnet, "access.router",
         f"{t.access.router} is not inside access.subnet {t.access.subnet}")
    for key in ("router", "aaa"):
        addr = getattr(t.management, key)
        need(addr in t.management.subnet, f"management.{key}",
             f"{addr} is not inside management.subnet {t.management.subnet}")
    need(t.management.router != t.management.aaa, "management.aaa", "same address as management.router")
    problems += _check_access_addresses(t)
    problems += _check_vrs(t)
    problems += _check_clients(t)
    problems += _check_nat(t)
    problems += _check_nats(t)
    problems += _check_aaa(t)
    problems += _check_node_names(t)
    problems += _check_interface_names(t)
    return problems


def _check_access_addresses(t: Topology) -> list[str]:
    problems = []
    seen = {t.access.router}
    for i, addr in enumerate(t.access.addresses):
        at = f"access.addresses[{i}]"
        if addr not in t.access.subnet:
            problems.append(f"{at}: {addr} is not inside access.subnet {t.access.subnet}")
        if addr in seen:
            problems.append(f"{at}: {addr} is used twice (access.router included)")
        seen.add(addr)
    return problems


def _short_name_problems(at: str, name: str) -> list[str]:
    """Names that become part of node and interface names (IFNAMSIZ is 16)."""
    if VR_NAME_PATTERN.match(name):
        return []
    return [f"{at}: {name!r} must be 1-8 lowercase letters/digits"]


def _check_vrs(t: Topology) -> list[str]:
    problems = []
    seen_names: set[str] = set()
    seen_tables: set[int] = set()
    for k, vr in enumerate(t.vrs):
        at = f"vrs[{k}]"
        problems += _short_name_problems(f"{at}.name", vr.name)
        if vr.name in seen_names:
            problems.append(f"{at}.name: {vr.name!r} is used twice")
        if vr.table in seen_tables:
            problems.append(f"{at}.table: {vr.table} is used twice")
        seen_names.add(vr.name)
        seen_tables.add(vr.table)
        for key in ("router", "vr"):
            addr = getattr(vr.transit, key)
            if addr not in vr.transit.subnet:
                problems.append(f"{at}.transit.{key}: {addr} is not inside {vr.transit.subnet}")
        net = vr.intranet.subnet
        for key, addr in [("gateway", vr.intranet.gateway), ("server", vr.intranet.server),
                          *[(f"dns[{i}]", a) for i, a in enumerate(vr.intranet.dns)],
                          *[(f"wins[{i}]", a) for i, a in enumerate(vr.intranet.wins)]]:
            if addr not in net:
                problems.append(f"{at}.intranet.{key}: {addr} is not inside {net}")
        if vr.intranet.gateway == vr.intranet.server:
            problems.append(f"{at}.intranet.server: same address as the gateway")
        if vr.pool.overlaps(t.access.subnet):
            problems.append(f"{at}.pool: {vr.pool} overlaps the access LAN {t.access.subnet}")
    return problems


def _check_clients(t: Topology) -> list[str]:
    if t.clients.count == 0:
        return []
    problems = []
    first, last = t.client_address(1), t.client_address(t.clients.count)
    if first not in t.access.subnet or last not in t.access.subnet:
        problems.append(f"clients.count: {t.clients.count} clients from {first} end at {last}, "
                        f"outside access.subnet {t.access.subnet}")
    reserved = {t.access.router: "access.router"}
    reserved |= {addr: f"access.addresses[{i}]" for i, addr in enumerate(t.access.addresses)}
    if t.nat:
        reserved[t.nat.public] = "nat.public"
    reserved |= {nat.public: f"nats[{i}].public" for i, nat in enumerate(t.nats)
                 if nat.upstream is None}
    for addr, what in reserved.items():
        if first <= addr <= last and addr in _client_addresses(t):
            problems.append(f"clients.count: client addresses run into {what} {addr}")
    return problems


def _client_addresses(t: Topology) -> set[ipaddress.IPv4Address]:
    return {t.client_address(i) for i in range(1, t.clients.count + 1)}


def _check_nat(t: Topology) -> list[str]:
    if t.nat is None:
        return []
    problems = []
    nat = t.nat
    if nat.public not in t.access.subnet:
        problems.append(f"nat.public: {nat.public} is not inside access.subnet {t.access.subnet}")
    if nat.public == t.access.router:
        problems.append("nat.public: same address as access.router")
    inside = nat.inside.subnet
    if nat.inside.gateway not in inside:
        problems.append(f"nat.inside.gateway: {nat.inside.gateway} is not inside {inside}")
    if nat.clients:
        last = t.nat_client_address(nat.clients)
        if nat.inside.first_client not in inside or last not in inside:
            problems.append(f"nat.clients: {nat.clients} clients from {nat.inside.first_client} "
                            f"end at {last}, outside {inside}")
        elif nat.inside.first_client <= nat.inside.gateway <= last:
            problems.append(f"nat.clients: client addresses run into nat.inside.gateway {nat.inside.gateway}")
    if inside.overlaps(t.access.subnet):
        problems.append(f"nat.inside.subnet: {inside} overlaps the access LAN {t.access.subnet}")
    return problems


def _check_nats(t: Topology) -> list[str]:
    """The `nats` list: each entry hangs off the access LAN or an earlier entry's inside."""
    problems = []
    earlier: dict[str, NatHost] = {LEGACY_NAT_NAME: t.nat_hosts[0]} if t.nat else {}
    insides = [("access.subnet", t.access.subnet)] + ([("nat.inside.subnet", t.nat.inside.subnet)]
                                                       if t.nat else [])
    for i, nat in enumerate(t.nats):
        at = f"nats[{i}]"
        problems += _short_name_problems(f"{at}.name", nat.name)
        if nat.name in earlier:
            problems.append(f"{at}.name: {nat.name!r} is used twice (the nat section is {LEGACY_NAT_NAME!r})")
        problems += _short_name_problems(f"{at}.client_prefix", nat.client_prefix)
        if nat.upstream is not None and nat.upstream not in earlier:
            problems.append(f"{at}.upstream: {nat.upstream!r} is not an earlier NAT host "
                            f"({', '.join(earlier) or 'none'})")
        else:
            upstream = earlier[nat.upstream] if nat.upstream is not None else None
            problems += _check_nat_uplink(t, nat, at, upstream)
        problems += _check_nat_inside(t, nat, at)
        for what, subnet in insides:
            if nat.inside.subnet.overlaps(subnet):
                problems.append(f"{at}.inside.subnet: {nat.inside.subnet} overlaps {what} {subnet}")
        insides.append((f"{at}.inside.subnet", nat.inside.subnet))
        earlier[nat.name] = nat
    return problems


def _check_nat_uplink(t: Topology, nat: NatHost, at: str, upstream: NatHost | None) -> list[str]:
    network, gateway = t.nat_uplink(nat)
    if nat.public not in network:
        return [f"{at}.public: {nat.public} is not inside its upstream network {network}"]
    if nat.public == gateway:
        return [f"{at}.public: same address as its upstream gateway {gateway}"]
    if upstream and upstream.clients and (upstream.inside.first_client <= nat.public
                                          <= t.nat_host_client_address(upstream, upstream.clients)):
        return [f"{at}.public: {nat.public} is a client address of NAT host {upstream.name!r}"]
    return []


def _check_nat_inside(t: Topology, nat: NatHost, at: str) -> list[str]:
    inside = nat.inside.subnet
    problems = []
    if nat.inside.gateway not in inside:
        problems.append(f"{at}.inside.gateway: {nat.inside.gateway} is not inside {inside}")
    if nat.clients:
        last = t.nat_host_client_address(nat, nat.clients)
        if nat.inside.first_client not in inside or last not in inside:
            problems.append(f"{at}.clients: {nat.clients} clients from {nat.inside.first_client} "
                            f"end at {last}, outside {inside}")
        elif nat.inside.first_client <= nat.inside.gateway <= last:
            problems.append(f"{at}.clients: client addresses run into {at}.inside.gateway")
    return problems


def _check_node_names(t: Topology) -> list[str]:
    # node names are derived (prefix + role + index): two roles may still meet, e.g. a
    # NAT client prefix 'c' against the access-LAN clients
    names = t.node_names()
    twice = sorted({name for name in names if names.count(name) > 1})
    return [f"nats: node name(s) {', '.join(twice[:5])} would be used twice; "
            f"choose another name or client_prefix"] if twice else []


def _check_aaa(t: Topology) -> list[str]:
    problems = []
    vr_names = {vr.name for vr in t.vrs}
    public = set(t.public_addresses)
    group_names: set[str] = set()
    for i, group in enumerate(t.aaa.groups):
        if group.vr not in vr_names:
            problems.append(f"aaa.groups[{i}].vr: {group.vr!r} is not a VR of this topology "
                            f"({', '.join(sorted(vr_names))})")
        if group.address is not None and group.address not in public:
            problems.append(f"aaa.groups[{i}].address: {group.address} is not a public address "
                            f"of the router ({', '.join(str(a) for a in t.public_addresses)})")
        if group.name in group_names:
            problems.append(f"aaa.groups[{i}].name: {group.name!r} is used twice")
        group_names.add(group.name)
    user_names: set[str] = set()
    for i, user in enumerate(t.aaa.explicit_users):
        vr = user.reply.virtual_router
        if vr is not None and vr not in vr_names:
            problems.append(f"aaa.users[{i}].reply.virtual_router: {vr!r} is not a VR of this "
                            f"topology ({', '.join(sorted(vr_names))})")
        if user.name in user_names:
            problems.append(f"aaa.users[{i}].name: {user.name!r} is used twice")
        user_names.add(user.name)
    return problems


def _check_interface_names(t: Topology) -> list[str]:
    # The router has one port per neighbour: AAA, VRs, NAT hosts on the access LAN, and
    # every client; a NAT host one per client and downstream NAT host, plus its uplink.
    nats = t.nat_hosts
    router_ports = (1 + len(t.vrs) + sum(n.upstream is None for n in nats) + t.clients.count)
    longest = max(t.node_names(), key=len)
    candidates = [(longest, 1), (t.router_name, router_ports)]
    candidates += [(t.nat_host_name(n), 1 + n.clients + sum(d.upstream == n.name for d in nats))
                   for n in nats]
    problems = []
    for node, ports in candidates:
        ifname = f"{node}-eth{ports}"
        if len(ifname) > IFNAME_MAX:
            problems.append(f"prefix: interface name {ifname!r} would exceed {IFNAME_MAX} "
                            f"characters; use a shorter prefix or VR name")
    return problems


# -- loading -----------------------------------------------------------------------------
def _format_location(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif "[" in str(part) or str(part).startswith("function-"):
            continue  # pydantic's internal step names (e.g. union members)
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


_PYDANTIC_MESSAGES = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key",
}


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        message = _PYDANTIC_MESSAGES.get(err["type"], err["msg"])
        if err["type"] not in _PYDANTIC_MESSAGES and err["type"] not in ("ipv4_address", "ipv4_network"):
            message = f"{err['input']!r}: {message}" if not isinstance(err["input"], (dict, list)) else message
        line = f"{_format_location(err['loc'])}: {message}"
        if line not in lines:
            lines.append(line)
    return lines


def validate_document(model, data: Any, source: str, error, cross_check):
    """Plain data (as loaded from YAML) -> `model`, or `error(source, problems)` listing every
    problem: the wrong top-level type, each field pydantic refused, then `cross_check`'s lines."""
    if not isinstance(data, dict):
        raise error(source, [f"(top level): expected a mapping, got {type(data).__name__}"])
    try:
        document = model.model_validate(data)
    except ValidationError as exc:
        raise error(source, _format_errors(exc)) from None
    problems = cross_check(document)
    if problems:
        raise error(source, problems)
    return document


def parse_topology(data: Any, source: str = "<topology>") -> Topology:
    """Validate plain data (as loaded from YAML); raise TopologyError listing every problem."""
    return validate_document(Topology, data, source, TopologyError, _cross_check)


def topology_path(name_or_path: str | Path) -> Path:
    """`default` -> <repo>/topologies/default.yaml; anything with a slash or suffix is a path."""
    text = str(name_or_path)
    if "/" in text or text.endswith((".yaml", ".yml")):
        return Path(text)
    return TOPOLOGY_DIR / f"{text}.yaml"


def load_topology(name_or_path: str | Path = "default") -> Topology:
    path = topology_path(name_or_path)
    try:
        text = path.read_text()
    except OSError as exc:
        available = ", ".join(sorted(p.stem for p in TOPOLOGY_DIR.glob("*.yaml"))) or "none"
        raise TopologyError(str(path), [f"cannot read topology: {exc.strerror} "
                                        f"(available in {TOPOLOGY_DIR}: {available})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise TopologyError(str(path), [f"{where}invalid YAML: {getattr(exc, 'problem', exc)}"]) from None
    return parse_topology(data, source=str(path))
