"""The dynipsec daemon: a supervisor process and `workers` worker processes.

    from responder.daemon import run
    run("/etc/dynipsec/responder.yaml")        # blocks until SIGTERM / SIGINT

docs/architecture.md is the design: supervisor.py (licenses, pools, registry,
accounting, DAE, control socket, watching and restarting workers), worker.py (IKE
engine, Xauth/Mode-Config, RADIUS auth, TUN + ESP), steering.py (SO_REUSEPORT + cBPF),
ipc.py (JSON lines between them), orchestrator.py (a worker's login/teardown logic),
datapath.py (TUN <-> ESP <-> UDP 4500), control.py (Unix-socket API and CLI).
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

__all__ = ["run"]

log = logging.getLogger(__name__)


def run(config_path: str | Path, config=None, *, log_level: str | None = None) -> int:
    """Run the responder in the foreground; returns the exit status.

    `config` (a validated ResponderConfig) saves loading the file twice; the path is
    still needed: every worker process loads it itself.
    """
    from responder.config import load_config

    from .supervisor import Supervisor

    if config is None:
        config = load_config(str(config_path))
    from .logsetup import setup_logging

    level = log_level or config.logging.level
    setup_logging(level, config.logging.format, "sup")
    from responder.config import config_warnings
    for warning in config_warnings(config):
        log.warning("configuration: %s", warning)
    supervisor = Supervisor(config, str(config_path), log_level=level)
    return asyncio.run(supervisor.run())
