"""The dynipsec daemon: a supervisor process and `workers` worker processes.

    from responder.daemon import run
    run("/etc/dynipsec/responder.yaml")        # blocks until SIGTERM / SIGINT

docs/architecture.md is the design (its module map lists every module). The modules:

=====================  =================================================================
supervisor.py          the supervisor: licenses, address pools, subscriber registry,
                       accounting, DAE, control socket, watching and restarting workers
view.py                SupervisorView: the narrow view of the supervisor that
                       control.py, metrics.py and the DAE directory read
dae_directory.py       RFC 5176 session directory over the supervisor's registry
durability.py          state directory, durable accountant, Accounting-On/Off, removal
                       of a crashed run's interfaces
lockouts.py            Xauth brute-force lockouts across workers (supervisor side)
control.py             Unix-socket JSON API behind ``dynipsec show/logout/reload``
metrics.py             Prometheus registry and ``/metrics`` endpoint
reload.py              SIGHUP: what changed, what applies, what needs a restart
worker.py              a worker process: IKE engine, Xauth/Mode-Config, RADIUS auth,
                       TUN + ESP; the supervisor's requests
worker_reload.py       a worker's configuration-made parts, rebuilt at a reload
orchestrator.py        a worker's login / teardown logic (engine events -> subscriber)
telemetry.py           a worker's event lines, metric reports and vendor IDs
datapath.py            TUN <-> ESP <-> UDP 4500 / raw ESP
udpio.py               batched UDP 500/4500 and raw ESP sockets
tungso.py              TCP segment coalescing for TUN writes (IFF_VNET_HDR)
netifbatch.py          batched interface removals for the netif thread
dhpool.py              Diffie-Hellman key pairs made ahead, between datagrams
keyexport.py           opt-in IKEv1 key export for Wireshark
steering.py            SO_REUSEPORT + cBPF steering, index-carrying cookies and SPIs
ipc.py                 JSON lines between supervisor and workers
logsetup.py            text / JSON log format, one line per subscriber event
=====================  =================================================================
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
