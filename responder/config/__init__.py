"""The responder's configuration: one YAML file, validated all at once.

    from responder.config import load_config, ConfigError, build_responder_policy

    try:
        cfg = load_config("/etc/dynipsec/responder.yaml")
    except ConfigError as exc:
        for line in exc.problems:      # "tunnel_profiles[1].transforms[0]: unknown ..."
            print(line)

Modules: ``model`` (the schema), ``algorithms`` (proposal strings), ``identities``
(``keyid:vr1`` ...), ``checks`` (references between sections, warnings), ``loader``
(YAML, error lines), ``builders`` (objects for the engine, AAA, pools, licenses).

The submodules import each other directly (``responder.config.model``, never this
package), and the names below are looked up on first use: importing one submodule
(e.g. ``responder.config.algorithms``) does not load pydantic, yaml or pyrad.
"""
from __future__ import annotations

import importlib

#: exported name -> the submodule that defines it
_EXPORTS = {
    **dict.fromkeys(
        ("build_dae_clients", "build_domain_maps", "build_dynamic_esp_policy",
         "build_esp_policy", "build_license_manager", "build_local_users",
         "build_nas_identity", "build_phase1_policy", "build_pool_manager",
         "build_radius_groups", "build_responder_policy", "ike_proposals", "profile_limits",
         "radius_default_group"), "builders"),
    "config_warnings": "checks",
    **dict.fromkeys(("ConfigError", "load_config", "parse_config"), "loader"),
    **dict.fromkeys(("ResponderConfig", "TunnelProfile"), "model"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
