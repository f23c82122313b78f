"""The small interface every lab gateway offers (reference strongSwan, later dynipsec).

    gateway = make_gateway("strongswan", lab.router, lab.node_dir("dlr") / "gateway", plan, lab)
    with gateway:                     # start() ... stop()
        gateway.ready                 # True while it serves
        gateway.subscribers()         # [GatewaySubscriber(user, address, group), ...]
"""
from __future__ import annotations

import abc
import dataclasses
from pathlib import Path

from clients.process import PidTracker, ProcessHost
from lab.gateways.plan import AccessPlan


class GatewayError(RuntimeError):
    """A gateway could not start, or could not answer a question about its state."""


@dataclasses.dataclass(frozen=True)
class GatewaySubscriber:
    user: str
    address: str
    group: str


class Gateway(abc.ABC):
    kind: str = "gateway"

    def __init__(self, node: ProcessHost, workdir: Path, plan: AccessPlan,
                 tracker: PidTracker | None = None):
        self.node = node
        self.workdir = Path(workdir)
        self.plan = plan
        self.tracker = tracker

    @abc.abstractmethod
    def start(self) -> "Gateway": ...

    @abc.abstractmethod
    def stop(self) -> None:
        """Idempotent; ends every process the gateway started."""

    @property
    @abc.abstractmethod
    def ready(self) -> bool: ...

    @abc.abstractmethod
    def subscribers(self) -> list[GatewaySubscriber]: ...

    @property
    @abc.abstractmethod
    def log_path(self) -> Path: ...

    def __enter__(self) -> "Gateway":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
