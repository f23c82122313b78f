"""The initiator session's states, its transition table, and its errors.

One session = one ISAKMP SA and the exchanges on it, driven by `TRANSITIONS`
(data, as in h11's `_state.py`): a message or call that does not fit the
current state is an `InvalidTransition`, logged and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable

from responder.ikev1.enums import NotifyType, lookup

__all__ = [
    "Address",
    "Datagram",
    "InitiatorError",
    "InvalidTransition",
    "KEYED",
    "PHASE1",
    "PeerError",
    "Rng",
    "State",
    "TERMINAL",
    "TRANSITIONS",
]

Address = tuple[str, int]
Rng = Callable[[int], bytes]


@dataclass(frozen=True)
class Datagram:
    """One UDP payload to send. `natt`: from the NAT-T socket, to the server's
    NAT-T port; `data` then already starts with the non-ESP marker."""

    data: bytes
    remote: Address
    natt: bool = False


# ============================================================== errors
class InitiatorError(Exception):
    """Base of the initiator's errors."""


class InvalidTransition(InitiatorError):
    """No (state, event) row in TRANSITIONS: an out-of-order message or call."""

    def __init__(self, state: "State", event: str) -> None:
        super().__init__(f"no transition from state {state.value!r} on event {event!r}")
        self.state = state
        self.event = event


class PeerError(InitiatorError):
    """The server sent something we refuse; `notify` names the fault."""

    def __init__(self, message: str, notify: NotifyType | int | None = None) -> None:
        super().__init__(message)
        self.notify = notify

    @property
    def notify_name(self) -> str | None:
        return lookup(NotifyType, self.notify).name if self.notify is not None else None


# ============================================================== states
class State(str, Enum):
    IDLE = "idle"
    MM1_SENT = "mm1_sent"
    MM3_SENT = "mm3_sent"
    MM5_SENT = "mm5_sent"
    AM1_SENT = "am1_sent"
    PHASE1_UP = "phase1_up"  # transient: decides what follows phase 1
    XAUTH_WAIT = "xauth_wait"  # for the server's REQUEST
    XAUTH_REPLIED = "xauth_replied"  # for its SET (status)
    XAUTH_DONE = "xauth_done"  # transient
    MODECFG_SENT = "modecfg_sent"
    CONFIG_DONE = "config_done"  # transient
    QM_SENT = "qm_sent"
    ESTABLISHED = "established"
    CLOSED = "closed"
    FAILED = "failed"


TERMINAL = frozenset({State.CLOSED, State.FAILED})
#: states where the phase 1 keys exist and Delete can be sent
KEYED = frozenset({State.PHASE1_UP, State.XAUTH_WAIT, State.XAUTH_REPLIED, State.XAUTH_DONE,
                   State.MODECFG_SENT, State.CONFIG_DONE, State.QM_SENT, State.ESTABLISHED})
PHASE1 = frozenset({State.MM1_SENT, State.MM3_SENT, State.MM5_SENT, State.AM1_SENT})


def _transitions() -> dict[tuple[State, str], State]:
    table = {
        (State.IDLE, "start_main"): State.MM1_SENT,
        (State.IDLE, "start_aggressive"): State.AM1_SENT,
        (State.MM1_SENT, "mm2"): State.MM3_SENT,
        (State.MM3_SENT, "mm4"): State.MM5_SENT,
        (State.MM5_SENT, "mm6"): State.PHASE1_UP,
        (State.AM1_SENT, "am2"): State.PHASE1_UP,
        (State.PHASE1_UP, "await_xauth"): State.XAUTH_WAIT,
        (State.XAUTH_WAIT, "xauth_request"): State.XAUTH_REPLIED,
        # a server may ask again after a failed attempt (new message ID)
        (State.XAUTH_REPLIED, "xauth_request"): State.XAUTH_REPLIED,
        (State.XAUTH_REPLIED, "xauth_success"): State.XAUTH_DONE,
        (State.XAUTH_REPLIED, "xauth_failure"): State.FAILED,
        (State.MODECFG_SENT, "config_received"): State.CONFIG_DONE,
        (State.QM_SENT, "qm2"): State.ESTABLISHED,
        (State.ESTABLISHED, "start_quick_mode"): State.QM_SENT,
    }
    for state in (State.PHASE1_UP, State.XAUTH_DONE):
        table[(state, "request_config")] = State.MODECFG_SENT
    for state in (State.PHASE1_UP, State.XAUTH_DONE, State.CONFIG_DONE):
        table[(state, "start_quick_mode")] = State.QM_SENT
        table[(state, "phase1_only")] = State.ESTABLISHED
    for state in State:
        if state not in TERMINAL:
            table[(state, "close")] = State.CLOSED
            table[(state, "peer_delete")] = State.CLOSED
            table[(state, "fail")] = State.FAILED
    return table


#: (state, event) -> next state; docs can be generated from it
TRANSITIONS: dict[tuple[State, str], State] = _transitions()
