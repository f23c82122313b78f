"""Scenario files (scenarios/*.yaml): a lab behaviour as data, validated into a `ScenarioSpec`.

A scenario names a topology, the gateway and its options, the clients, and a list of
steps; each step does one thing (`do: login`, `do: ping`, ...) and lists what must be
true afterwards (`expect:`), in the spirit of strongSwan's evaluation lines
`host::command::pattern::YES|NO`. `lab.scenario_engine` runs them.

Every mistake is reported at once, one line each, with the key path (unknown keys too):

    scenarios/x.yaml: steps[1].expect[0].present: 'maybe': Input should be a valid boolean

Host names in a scenario carry no prefix: `r` (router), `aaa`, `vr1`, `srv1`, `nat`,
`c3`, `n1`; the runner adds the lab's prefix.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BeforeValidator, Field

from lab.topology import REPO_ROOT, Strict, validate_document

SCENARIO_DIR = REPO_ROOT / "scenarios"
GATEWAY_KINDS = ("dynipsec", "strongswan")
Kind = Literal["dynipsec", "strongswan"]


class ScenarioError(ValueError):
    """A scenario file is missing, unreadable or invalid; `problems` holds one line each."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


# -- topology and gateway ----------------------------------------------------------------
class TopologyRef(Strict):
    """Which topology (a name in topologies/ or a path) and what to change in it."""

    name: str = Field(default="minimal",
                      description="topology name in topologies/ (or a YAML path)")
    clients: int | None = Field(default=None, ge=0, le=5000,
                                description="access-LAN client hosts (default: the topology's)")


class DynipsecOptions(Strict):
    """How the lab renders the responder configuration (lab/gateways/dynipsec.py)."""

    aaa: Literal["local", "radius"] = Field(default="local",
                                            description="local users, or the lab's FreeRADIUS")
    workers: int = Field(default=2, ge=1, le=16, description="worker processes of the responder")
    licenses: int | tuple[int, int] = Field(default=1000,
                                            description="both pools, or [ipsec_tunnel, subscriber]")
    dpd: tuple[float, float] = Field(default=(10.0, 30.0), description="[interval, timeout] seconds")
    remote_delete_grace: float = Field(default=0.0, ge=0,
                                       description="seconds a subscriber stays after the client's Delete")
    max_attempts: int = Field(default=3, ge=1, description="Xauth attempts per login")
    users: dict[str, dict[str, Any]] = Field(default={},
                                             description="extra settings of local users, by name")
    config: dict[str, Any] = Field(default={},
                                   description="merged into the rendered responder configuration")


class StrongswanOptions(Strict):
    """The reference gateway (lab/gateways/strongswan.py)."""

    dpd: tuple[int, int] = Field(default=(10, 30), description="[delay, timeout] seconds")


class GatewaySpec(Strict):
    kinds: list[Kind] = Field(default=["dynipsec", "strongswan"], min_length=1,
                              description="the gateways this scenario is meant for")
    dynipsec: DynipsecOptions = Field(default=DynipsecOptions(),
                                      description="options when the gateway is dynipsec")
    strongswan: StrongswanOptions = Field(default=StrongswanOptions(),
                                          description="options when the gateway is the reference strongSwan")


# -- clients -------------------------------------------------------------------------------
VendorId = Literal["xauth", "dpd", "unity"]
Quirk = Literal["initial-contact", "no-mode-config", "natt-off"]


class ClientSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", description="how steps refer to it")
    host: str = Field(description="client host without prefix: c1, n2")
    kind: Literal["strongswan", "vpnc", "initiator"] = Field(
        description="real client, or the lab's scriptable IKEv1 initiator")
    mode: Literal["main", "aggressive"] = Field(default="aggressive",
                                                description="IKEv1 phase 1 exchange (vpnc: aggressive)")
    group: str = Field(default="vr1", description="IKE group (key-id), a group of the topology")
    user: str = Field(description="Xauth user")
    password: str | None = Field(default=None, description="default: the topology's password")
    address: str | None = Field(default=None, pattern=r"^\d{1,3}(\.\d{1,3}){3}$",
                                description="the gateway address it connects to "
                                            "(default: its group's)")
    natt: Literal["force", "none"] = Field(default="force",
                                           description="none: raw ESP (vpnc without NAT)")
    vendor_ids: list[VendorId] | None = Field(
        default=None, description="initiator: the vendor IDs it sends (default all)")
    quirks: list[Quirk] = Field(default=[], description="initiator: protocol variations")


# -- expectations --------------------------------------------------------------------------
class CheckBase(Strict):
    within: float = Field(default=5.0, ge=0,
                          description="seconds the check may take to become true")
    gateway: Kind | None = Field(default=None, description="only against this gateway")


class ModeConfigCheck(CheckBase):
    """The client received this Mode-Config attribute (default value: its group's)."""

    check: Literal["mode_config"] = Field(description="what the client got by Mode-Config")
    client: str = Field(description="client name")
    attribute: Literal["address", "netmask", "dns", "wins", "banner", "domain"] = Field(
        description="the attribute the client reports")
    equals: str | list[str] | None = Field(
        default=None, description="address: a pool (network); default: the group's value")


class RouteCheck(CheckBase):
    """The subscriber's access route (dynipsec: /32 in the VR; strongSwan: table 220)."""

    check: Literal["route"] = Field(description="the subscriber's access route on the gateway")
    client: str = Field(description="client name")
    present: bool = Field(default=True, description="false: the route must be gone")
    vr: str | None = Field(default=None, description="dynipsec: look in this VR (topology name) "
                                                     "instead of the subscriber's")


class InterfaceCheck(CheckBase):
    """dynipsec: the subscriber's TUN interface in the VR namespace."""

    check: Literal["interface"] = Field(description="the subscriber's interface on the gateway")
    client: str = Field(description="client name")
    present: bool = Field(default=True, description="false: the interface must be gone")


class SubscriberCheck(CheckBase):
    """The gateway lists (or no longer lists) the client's user."""

    check: Literal["subscriber"] = Field(description="the gateway's list of subscribers")
    client: str = Field(description="client name")
    listed: bool = Field(default=True, description="false: the gateway must no longer list it")
    vr: str | None = Field(default=None, description="dynipsec: the VR it must be in")


class AccountingCheck(CheckBase):
    """RADIUS accounting of the client's last session: status types in order, cause."""

    check: Literal["accounting"] = Field(
        description="RADIUS accounting records of the client's session (FreeRADIUS detail file)")
    client: str = Field(description="client name")
    status: list[Literal["Start", "Stop", "Interim-Update"]] = Field(default=["Start"],
                                                                     description="Acct-Status-Type values that must have arrived")
    cause: str | None = Field(default=None, description="Acct-Terminate-Cause of the Stop")


class LogCheck(CheckBase):
    """A regular expression in a log: gateway, radius, or a client's name."""

    check: Literal["log"] = Field(description="a line pattern in a log")
    source: str = Field(default="gateway", description="`gateway`, `radius` or a client name")
    pattern: str = Field(description="regular expression (multiline)")
    present: bool = Field(default=True, description="false: the pattern must not occur")


class CounterCheck(CheckBase):
    """dynipsec: a value of `show statistics` (dotted path) or `show licenses` refusals."""

    check: Literal["counter"] = Field(description="a gateway counter (dynipsec `show statistics`)")
    path: str = Field(description="e.g. licenses.refused.subscriber-license")
    equals: int | None = Field(default=None, description="exact value")
    min: int | None = Field(default=None, description="lowest value")


class CaptureCheck(CheckBase):
    """Packets on the router's public side matching a tshark display filter."""

    check: Literal["capture"] = Field(
        description="frames on the router's public capture (router-public.pcap)")
    filter: str = Field(description="tshark display filter")
    equals: int | None = Field(default=None, description="exact number of matching frames")
    min: int | None = Field(default=None, description="fewest matching frames")
    max: int | None = Field(default=None, description="most matching frames")


class CommandCheck(CheckBase):
    """A command's output in a host matches (YES) or does not match (NO) a pattern."""

    check: Literal["command"] = Field(
        description="a command's output on a host (host::command::pattern::YES|NO)")
    host: str = Field(description="host without prefix (r, c1, vr1, ...)")
    run: str = Field(description="shell command run in the host")
    pattern: str = Field(description="regular expression its output (stdout and stderr) must match")
    present: bool = Field(default=True, description="false: the output must not match")


class ResourcesFreeCheck(CheckBase):
    """dynipsec: no license, address or subscriber in use."""

    check: Literal["resources_free"] = Field(
        description="dynipsec: no licence, address or interface in use")


class WorkersReadyCheck(CheckBase):
    """dynipsec: every worker process is up and ready (e.g. after one was killed)."""

    check: Literal["workers_ready"] = Field(description="dynipsec: the workers are up")
    workers: int | None = Field(default=None, ge=1, description="how many (default: any number)")


def _evaluation_line(value: Any) -> Any:
    """`host::command::pattern::YES|NO` (strongSwan's evaltest.dat) -> a command check."""
    if not isinstance(value, str):
        return value
    parts = value.split("::")
    if len(parts) != 4 or parts[3] not in ("YES", "NO"):
        raise ValueError(f"{value!r}: expected host::command::pattern::YES|NO")
    host, run, pattern, answer = parts
    return {"check": "command", "host": host, "run": run, "pattern": pattern,
            "present": answer == "YES"}


Check = Annotated[
    Union[ModeConfigCheck, RouteCheck, InterfaceCheck, SubscriberCheck, AccountingCheck,
          LogCheck, CounterCheck, CaptureCheck, CommandCheck, ResourcesFreeCheck,
          WorkersReadyCheck],
    Field(discriminator="check"), BeforeValidator(_evaluation_line)]


# -- steps ---------------------------------------------------------------------------------
class StepBase(Strict):
    title: str | None = Field(default=None, description="shown in the progress and the report")
    expect: list[Check] = Field(default=[], description="checks that must hold after the step "
                                                        "(each within its `within` seconds)")


class LoginStep(StepBase):
    """Clients log in concurrently; `refused: true` expects every login to fail."""

    do: Literal["login"] = Field(description="log the clients in (at once)")
    clients: list[str] = Field(min_length=1, description="client names from `clients`")
    timeout: float = Field(default=20.0, gt=0, description="seconds each login may take")
    refused: bool = Field(default=False, description="true: every login must fail")


class LogoutStep(StepBase):
    """Clients log out gracefully (they send Delete)."""

    do: Literal["logout"] = Field(description="log the clients out (the client's own logout)")
    clients: list[str] = Field(min_length=1, description="client names from `clients`")


class KillClientStep(StepBase):
    """Clients vanish without a Delete (SIGKILL)."""

    do: Literal["kill_client"] = Field(
        description="kill the clients' processes (no Delete is sent)")
    clients: list[str] = Field(min_length=1, description="client names from `clients`")


class PingStep(StepBase):
    """Ping through the tunnel from the assigned address; counts echoes on the servers."""

    do: Literal["ping"] = Field(description="ping through the client's tunnel")
    client: str = Field(description="client name")
    target: str | None = Field(default=None, description="default: the group's intranet server")
    count: int = Field(default=3, ge=1, description="echo requests")
    answered: bool = Field(default=True, description="false: no echo may come back")


class IperfStep(StepBase):
    """iperf3 TCP from the client through the tunnel to its intranet server."""

    do: Literal["iperf"] = Field(
        description="iperf3 TCP through the client's tunnel to the intranet server")
    client: str = Field(description="client name")
    seconds: float = Field(default=2.0, gt=0, description="test length")
    min_mbps: float = Field(default=0.1, ge=0, description="lowest throughput that passes, Mbit/s")


class WaitStep(StepBase):
    do: Literal["wait"] = Field(description="wait")
    seconds: float = Field(gt=0, description="how long")


class KillWorkerStep(StepBase):
    """dynipsec: SIGKILL the worker process holding the client's subscriber."""

    do: Literal["kill_worker"] = Field(
        description="dynipsec: SIGKILL the worker that serves the client")
    client: str = Field(description="client name")


class RadiusStep(StepBase):
    """RFC 5176 Disconnect-Request or CoA-Request from the AAA host for the client's user."""

    do: Literal["radius_disconnect", "radius_coa"] = Field(
        description="send a Disconnect-Request or CoA-Request (RFC 5176) from the AAA host")
    client: str = Field(description="client name (its session is the target)")
    attributes: dict[str, str] = Field(default={},
                                       description="further attributes, name: value (e.g. Session-Timeout: '1')")
    answer: str = Field(default="ACK", description="pattern the radclient answer must match")


class ImpairStep(StepBase):
    """Impair the link of a host (its first interface): loss, blackhole, rate, or clear."""

    do: Literal["impair"] = Field(description="impair the host's link (nftables drops, tc tbf)")
    host: str = Field(description="host without prefix; its default interface")
    loss: int | None = Field(default=None, ge=1, le=100, description="percent dropped")
    blackhole: bool = Field(default=False, description="drop everything")
    rate: str | None = Field(default=None, pattern=r"^\d+(\.\d+)?[kmg]?bit$",
                             description="tc rate, e.g. 1mbit")
    clear: bool = Field(default=False, description="remove the impairment")


class AdminLogoutStep(StepBase):
    """The gateway logs the client's user out (dynipsec logout / swanctl --terminate)."""

    do: Literal["admin_logout"] = Field(description="the gateway logs the client's subscriber out")
    client: str = Field(description="client name")


class ReloadStep(StepBase):
    """dynipsec: rewrite the configuration with `config` merged in, then reload."""

    do: Literal["reload"] = Field(
        description="dynipsec: rewrite the configuration and reload; fails when a change is refused or needs a restart")
    config: dict[str, Any] = Field(default={},
                                   description="merged into the configuration; `tunnel_profiles: {NAME: {...}}` changes one profile by name")


Step = Annotated[
    Union[LoginStep, LogoutStep, KillClientStep, PingStep, IperfStep, WaitStep, KillWorkerStep,
          RadiusStep, ImpairStep, AdminLogoutStep, ReloadStep],
    Field(discriminator="do")]

#: steps only the dynipsec gateway supports
DYNIPSEC_ONLY_STEPS = ("kill_worker", "reload", "radius_disconnect", "radius_coa")


class ScenarioSpec(Strict):
    """One scenario file: where it runs, against what, with whom, and what happens."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$",
                      description="lower-case words joined by dashes; names the evidence")
    description: str = Field(default="", description="what the scenario proves, for the report")
    topology: TopologyRef = Field(default=TopologyRef(), description="the lab to build")
    gateway: GatewaySpec = Field(default=GatewaySpec(),
                                 description="the gateways to run it against, and their options")
    clients: list[ClientSpec] = Field(default=[], description="the clients the steps refer to")
    steps: list[Step] = Field(min_length=1, description="run in order; each names its action "
                                                        "with `do:`")

    def client(self, name: str) -> ClientSpec:
        for client in self.clients:
            if client.name == name:
                return client
        raise KeyError(name)


# -- cross checks --------------------------------------------------------------------------
def _cross_check(spec: ScenarioSpec) -> list[str]:
    problems: list[str] = []
    names = [c.name for c in spec.clients]
    for i, client in enumerate(spec.clients):
        if names.count(client.name) > 1 and names.index(client.name) < i:
            problems.append(f"clients[{i}].name: {client.name!r} is used twice")
        if client.kind != "initiator" and (client.vendor_ids is not None or client.quirks):
            problems.append(f"clients[{i}]: vendor_ids and quirks need kind initiator")
        if client.natt == "none" and client.kind != "vpnc":
            problems.append(f"clients[{i}].natt: 'none' needs kind vpnc")
    for s, step in enumerate(spec.steps):
        for ref_path, ref in _client_refs(step, f"steps[{s}]"):
            if ref not in names:
                problems.append(f"{ref_path}: no client {ref!r} (clients: {', '.join(names) or 'none'})")
        if step.do in DYNIPSEC_ONLY_STEPS and "strongswan" in spec.gateway.kinds:
            problems.append(f"steps[{s}].do: {step.do} needs the dynipsec gateway; "
                            f"set gateway.kinds: [dynipsec]")
        if step.do == "impair":
            chosen = [step.loss is not None, step.blackhole, step.rate is not None, step.clear]
            if sum(chosen) != 1:
                problems.append(f"steps[{s}]: impair takes exactly one of loss, blackhole, rate, clear")
    return problems


def _client_refs(step, at: str):
    for key in ("clients",):
        for i, name in enumerate(getattr(step, key, None) or []):
            yield f"{at}.{key}[{i}]", name
    if getattr(step, "client", None):
        yield f"{at}.client", step.client
    for c, check in enumerate(step.expect):
        if getattr(check, "client", None):
            yield f"{at}.expect[{c}].client", check.client
        source = getattr(check, "source", "")
        if source not in ("", "gateway", "radius"):
            yield f"{at}.expect[{c}].source", source


# -- loading -------------------------------------------------------------------------------
def parse_scenario(data: Any, source: str = "<scenario>") -> ScenarioSpec:
    return validate_document(ScenarioSpec, data, source, ScenarioError, _cross_check)


def scenario_path(name_or_path: str | Path) -> Path:
    """`login-matrix` -> scenarios/login-matrix.yaml; anything with a slash or suffix is a path."""
    text = str(name_or_path)
    if "/" in text or text.endswith((".yaml", ".yml")):
        return Path(text)
    return SCENARIO_DIR / f"{text}.yaml"


def load_scenario(name_or_path: str | Path) -> ScenarioSpec:
    path = scenario_path(name_or_path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(str(path), [f"cannot read scenario: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ScenarioError(str(path), [f"{where}invalid YAML: {getattr(exc, 'problem', exc)}"]) from None
    return parse_scenario(data, source=str(path))


def all_scenario_paths() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.yaml"))


# -- the field reference (docs/scenarios.md) -----------------------------------------------
DOCS_PATH = REPO_ROOT / "docs" / "scenarios.md"


def _models_in(annotation) -> list[type]:
    """The pydantic models an annotation mentions (through unions, lists, Annotated)."""
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _all_models(root: type) -> list[type]:
    """Every model reachable from `root`, in the order a reader meets them."""
    seen: list[type] = []
    pending = [root]
    while pending:
        model = pending.pop(0)
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            pending += _models_in(field.annotation)
    return seen


def _type_name(annotation) -> str:
    """A reader's spelling of a type: `int | None`, `list[LoginStep | PingStep]`."""
    import types
    import typing

    from pydantic import BaseModel

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _default_text(field) -> str:
    from pydantic import BaseModel

    if field.is_required():
        return "required"
    default = field.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):
        return "its defaults"  # listed in the model's own table
    return f"`{default!r}`"


def markdown_reference() -> str:
    """docs/scenarios.md: every model of a scenario file, field by field, from the schema."""
    lines = ["# Scenario files: field reference", "",
             "Generated by `python -m lab.scenario_spec --markdown > docs/scenarios.md` from "
             "the pydantic models in `lab/scenario_spec.py`; "
             "`tests/unit/test_scenario_docs.py` fails when this file is out of date.", ""]
    for model in _all_models(ScenarioSpec):
        doc = " ".join((model.__doc__ or "").split())
        lines += [f"## `{model.__name__}`", ""] + ([doc, ""] if doc else [])
        lines += ["| field | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            key = field.alias or name
            description = " ".join((field.description or "").split()).replace("|", "\\|")
            kind = _type_name(field.annotation).replace("|", "\\|")
            lines.append(f"| `{key}` | {kind} | {_default_text(field)} "
                         f"| {description} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m lab.scenario_spec --markdown   "
                 "(prints docs/scenarios.md, the field reference of scenario files)")
    sys.stdout.write(markdown_reference())
