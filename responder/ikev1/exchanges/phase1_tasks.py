"""The small tasks that ride on the messages of Main and Aggressive Mode, as strongSwan's
isakmp_vendor and isakmp_natd tasks do (task_manager_v1.c): each reads what the peer's
message carries and may add payloads to our answer.

`TASKS` says which task reads which received message and which adds to which answer;
an exchange module calls `read(step, ...)` where the message is trusted enough for the
task and `payloads(step, ...)` where the task's payloads go in its answer. The order of
a row is the order on the wire.

* vendor IDs: the peer's are remembered (the first message fixes its features), ours
  are Xauth, DPD, Unity if the peer sent it, and the NAT-T one we chose;
* NAT-D (RFC 3947 §3.2): the peer's hashes are compared with the addresses the message
  used (in Aggressive Mode message 3 those of messages 1 and 2: the float to 4500
  comes with message 3), ours follow the NAT-T vendor ID we chose.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..ike_sa import IkeSa
from ..message import Message
from ..payloads import Payload
from .common import ExchangeContext
from .phase1 import natd_payloads, note_vendor_ids, our_vendor_ids, process_natd

__all__ = ["TASKS", "Task", "payloads", "read"]

Address = tuple[str, int]


@dataclass(frozen=True)
class Task:
    name: str
    #: reads a received message: (ctx, sa, message, local, remote)
    read: Callable[[ExchangeContext, IkeSa, Message, Address, Address], None]
    #: our payloads for an answer
    build: Callable[[ExchangeContext, IkeSa], list[Payload]]


VENDOR_IDS = Task("vendor-ids",
                  read=lambda ctx, sa, message, local, remote: note_vendor_ids(sa, message),
                  build=our_vendor_ids)
NAT_D = Task("nat-d", read=process_natd, build=natd_payloads)


@dataclass(frozen=True)
class StepTasks:
    reads: tuple[Task, ...] = ()
    builds: tuple[Task, ...] = ()


#: (exchange, message kind of its state table) -> the tasks of that step
TASKS: dict[tuple[str, str], StepTasks] = {
    ("main_mode", "sa"): StepTasks(reads=(VENDOR_IDS,), builds=(VENDOR_IDS,)),
    ("main_mode", "ke_nonce"): StepTasks(reads=(NAT_D,), builds=(NAT_D,)),
    ("main_mode", "id_hash"): StepTasks(reads=(VENDOR_IDS,)),
    ("aggressive_mode", "sa_ke_id"): StepTasks(reads=(VENDOR_IDS,), builds=(VENDOR_IDS, NAT_D)),
    ("aggressive_mode", "hash"): StepTasks(reads=(VENDOR_IDS, NAT_D)),
}


def read(step: tuple[str, str], ctx: ExchangeContext, sa: IkeSa, message: Message,
         local: Address, remote: Address) -> None:
    for task in TASKS[step].reads:
        task.read(ctx, sa, message, local, remote)


def payloads(step: tuple[str, str], ctx: ExchangeContext, sa: IkeSa) -> list[Payload]:
    return [payload for task in TASKS[step].builds for payload in task.build(ctx, sa)]
