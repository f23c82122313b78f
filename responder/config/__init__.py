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
"""
from responder.config.builders import (build_dae_clients, build_domain_maps,
                                       build_dynamic_esp_policy, build_esp_policy,
                                       build_license_manager, build_local_users,
                                       build_nas_identity, build_phase1_policy,
                                       build_pool_manager, build_radius_groups,
                                       build_responder_policy, ike_proposals,
                                       profile_limits, radius_default_group)
from responder.config.checks import config_warnings
from responder.config.loader import ConfigError, load_config, parse_config
from responder.config.model import ResponderConfig, TunnelProfile

__all__ = [
    "ConfigError", "ResponderConfig", "TunnelProfile", "config_warnings", "load_config",
    "parse_config", "build_dae_clients", "build_domain_maps", "build_dynamic_esp_policy",
    "build_esp_policy", "build_license_manager", "build_local_users", "build_nas_identity",
    "build_phase1_policy", "build_pool_manager", "build_radius_groups",
    "build_responder_policy", "ike_proposals", "profile_limits", "radius_default_group",
]
