"""Events of the Transaction exchange (Xauth, Mode-Config).

They go into the same queue as the engine's events (`Responder.events()`),
so the daemon sees them in order with Phase1Established / Phase1Deleted.
The password is kept out of `repr` (and so out of every log line that
formats an event), as the engine does for keys.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .events import Event

__all__ = ["XauthCredentials", "XauthSucceeded", "XauthFailed", "ModeConfigDone"]


@dataclass(frozen=True)
class XauthCredentials(Event):
    """The client answered our Xauth REQUEST: ask AAA, then call
    `TransactionTask.xauth_result` (possibly much later)."""

    sa_id: str
    username: str
    #: as received, minus one trailing NUL (a known client quirk)
    password: bytes = field(repr=False)
    #: 1 for the first REQUEST, 2 after one denial, ...
    attempt: int = 1


@dataclass(frozen=True)
class XauthSucceeded(Event):
    """The client acknowledged XAUTH_STATUS=OK (xauth-06 §4.2, CFG_ACK)."""

    sa_id: str
    username: str


@dataclass(frozen=True)
class XauthFailed(Event):
    """Xauth is over without success; the phase 1 SA is (being) deleted.

    reason: "denied" (AAA refused the last allowed attempt), "invalid-reply"
    (the last attempt carried no usable user name/password), "timeout" (the
    client or AAA did not answer in time), or the engine's deletion reason
    (e.g. "peer-delete") when the SA went away during Xauth.
    """

    sa_id: str
    username: str | None
    reason: str


@dataclass(frozen=True)
class ModeConfigDone(Event):
    """The client received its configuration (pull REPLY sent, or push ACKed).
    Quick Mode is allowed from now on."""

    sa_id: str
    address: ipaddress.IPv4Address
