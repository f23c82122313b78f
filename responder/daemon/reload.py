"""SIGHUP / ``dynipsec reload``: what changed between two configurations, what the
running daemon can take over without dropping a subscriber, and what needs a restart.

    plan = diff_configs(old, new)
    plan.changed    # key paths that differ ("licenses.ipsec_tunnel", "aaa.local_users.bob")
    plan.applied    # of those, what the daemon applies now
    plan.restart    # of those, what only a restart applies ("listen", "workers", ...)

Pure functions over two validated :class:`ResponderConfig` objects, in the supervisor:
it applies the new configuration (licenses, pools, DAE, accounting, log level) and sends
every worker a snapshot of it (responder/config/snapshot.py; the worker's side:
responder/daemon/worker_reload.py: engine policy, AAA, profiles, Mode-Config, Xauth,
timers); the old one stays for what needs a restart. Key paths only: values (secrets!)
never appear in a plan.

What applies at once and what waits for a restart:

===============================  ==========================================================
applied                          restart needed
===============================  ==========================================================
local users, domain maps,        ``listen`` (addresses, ports, default profile),
default AAA method, RADIUS       ``workers``, a VR's ``netns`` or a VR removed,
servers and groups, NAS identity ``control.socket``, ``metrics``, DAE ``listen``/``port``
DAE clients and replay window    or DAE added/removed, accounting switched on/off,
accounting servers and interim   a pool removed, or its ranges no longer holding
pools added, ranges grown        every old address
licenses (also below in use:     
new logins wait)                 
tunnel profiles (new logins:     
limits, timers, Mode-Config,     
transforms, Xauth)               
IKE policy, proposals, PSKs,     
DPD and retransmit timers        
(new exchanges), VRs added,      
a VR's MTU / interface prefix    
``logging`` (level, format)      
===============================  ==========================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr

from responder.config.model import ResponderConfig, SecretSource
from responder.pools import AddressPool, PoolError

__all__ = ["ReloadPlan", "diff_configs", "changed_paths", "pool_grows", "effective_config",
           "load_text"]


@dataclass
class ReloadPlan:
    changed: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    #: path -> why it needs a restart
    restart: dict[str, str] = field(default_factory=dict)

    @property
    def needs_restart(self) -> bool:
        return bool(self.restart)

    def as_dict(self) -> dict[str, Any]:
        return {"changed": list(self.changed), "applied": list(self.applied),
                "restart_needed": dict(self.restart)}

    def summary(self) -> str:
        if not self.changed:
            return "no change"
        text = f"{len(self.applied)} change(s) applied"
        if self.applied:
            text += f" ({', '.join(self.applied)})"
        if self.restart:
            text += f"; restart needed for {', '.join(self.restart)}"
        return text


# -- what differs -------------------------------------------------------------------------
def _comparable(value: Any) -> Any:
    """A value made of dicts, lists and scalars; secrets by their value (a secret_file
    whose content changed differs too), never shown."""
    if isinstance(value, SecretSource):
        out = {name: _comparable(getattr(value, name)) for name in type(value).model_fields}
        out["secret"] = value.secret_bytes()
        out.pop("secret_file", None)
        return out
    if isinstance(value, BaseModel):
        return {name: _comparable(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, SecretStr):
        return ("secret", value.get_secret_value())
    if isinstance(value, dict):
        return {str(k): _comparable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    return value if isinstance(value, (int, float, str, bool, bytes, type(None))) else str(value)


def _walk(old: Any, new: Any, path: str, out: list[str], depth: int) -> None:
    if old == new:
        return
    if depth > 0 and isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            sub = f"{path}.{key}" if path else key
            if key not in new or key not in old:
                out.append(sub)
            else:
                _walk(old[key], new[key], sub, out, depth - 1)
        return
    out.append(path)


#: how deep key paths go: "aaa.local_users.bob", "pools.vr1.main", "vrs.vr1.netns"
_DEPTH = 3


def changed_paths(old: ResponderConfig, new: ResponderConfig) -> list[str]:
    out: list[str] = []
    _walk(_comparable(old), _comparable(new), "", out, _DEPTH)
    return out


def pool_grows(old_cfg, new_cfg) -> bool:
    """True if every address the old pool could hand out is in the new one (a grown
    or equal pool: leases stay valid)."""
    try:
        old = AddressPool("old", list(old_cfg.ranges), list(old_cfg.exclude))
        new = AddressPool("new", list(new_cfg.ranges), list(new_cfg.exclude))
    except PoolError:
        return False
    return all(new.contains(first) and new.contains(last)
               and _one_range(new, first, last) for first, last in old.ranges)


def _one_range(pool: AddressPool, first: int, last: int) -> bool:
    return any(f <= first and last <= l for f, l in pool.ranges)


# -- what can be applied ------------------------------------------------------------------
_RESTART_SECTIONS = {
    "listen": "the UDP sockets of every worker are opened at start",
    "workers": "the worker count is part of the steering program and of every cookie/SPI",
    "control": "the control socket is bound at start",
    "metrics": "the metrics endpoint is bound at start",
}


def _classify(path: str, old: ResponderConfig, new: ResponderConfig) -> str | None:
    """None: applied; else why a restart is needed."""
    parts = path.split(".")
    head = parts[0]
    if head in _RESTART_SECTIONS:
        return _RESTART_SECTIONS[head]
    if head == "vrs":
        if len(parts) == 2 and parts[1] not in new.vrs:
            return "a VR was removed (its subscribers' interfaces live in its namespace)"
        if len(parts) >= 3 and parts[2] == "netns":
            return "a VR's namespace changed (its subscribers' interfaces live in the old one)"
        return None
    if head == "pools":
        if len(parts) == 2:
            return None if parts[1] not in old.pools else (
                "a VR's pools were removed" if parts[1] not in new.pools else None)
        vr, name = parts[1], parts[2]
        old_pool = old.pools.get(vr, {}).get(name)
        new_pool = new.pools.get(vr, {}).get(name)
        if old_pool is None:
            return None
        if new_pool is None:
            return "a pool was removed (its addresses may be leased)"
        if not pool_grows(old_pool, new_pool):
            return "a pool shrank or moved (only added ranges apply at once)"
        return None
    if head == "aaa":
        if len(parts) >= 2 and parts[1] == "dae":
            if (old.aaa.dae is None) != (new.aaa.dae is None):
                return "the DAE listener is started at start-up"
            if len(parts) >= 3 and parts[2] in ("listen", "port"):
                return "the DAE listener is bound at start-up"
            return None
        if len(parts) >= 2 and parts[1] == "accounting":
            if old.aaa.accounting.enabled != new.aaa.accounting.enabled:
                return "accounting is switched on or off at start-up"
            return None
        if len(parts) >= 2 and parts[1] == "radius" and new.aaa.accounting.enabled \
                and (old.aaa.radius is None) != (new.aaa.radius is None):
            return "accounting's RADIUS client is created at start-up"
        return None
    return None


def diff_configs(old: ResponderConfig, new: ResponderConfig) -> ReloadPlan:
    plan = ReloadPlan()
    for path in changed_paths(old, new):
        plan.changed.append(path)
        why = _classify(path, old, new)
        if why is None:
            plan.applied.append(path)
        else:
            plan.restart[path] = why
    return plan


def effective_config(old: ResponderConfig, new: ResponderConfig):
    """What the running daemon uses after a reload: the new configuration, except the
    top-level sections with a change that needs a restart (those stay as they were).
    Returns (config, plan); the plan lists held-back paths as restart-needed."""
    plan = diff_configs(old, new)
    held = {path.split(".")[0] for path in plan.restart}
    if not held:
        return new, plan
    for path in list(plan.applied):
        section = path.split(".")[0]
        if section in held:
            plan.applied.remove(path)
            plan.restart[path] = f"held back: {section} has a change that needs a restart"
    update = {section: getattr(old, section) for section in held}
    return new.model_copy(update=update), plan


# -- the file read again -------------------------------------------------------------------
def load_text(text: str, source: str, base_dir: Path | str) -> ResponderConfig:
    """:func:`responder.config.load_config` on a text already read (``base_dir``
    anchors relative ``secret_file`` paths, as the original file's directory)."""
    from responder.config import ConfigError, parse_config
    from responder.config.loader import _yaml_problem

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [_yaml_problem(exc)]) from None
    return parse_config(data, source=source, base_dir=base_dir)
