"""The project's own IKEv1 initiator.

Built on the responder's codec and crypto, sans-I/O (`session`), with an
asyncio driver (`driver`) and a CLI (`python -m clients.ikev1_initiator`).
It takes the paths no real client takes: no Xauth vendor ID (static tunnels),
crafted and malformed exchanges (`hooks`), and load generation.
"""

from .config import (
    EspOffer,
    IdentitySpec,
    IkeOffer,
    InitiatorConfig,
    InitiatorConfigError,
    Mode,
    NattMode,
    RetransmitSettings,
)
from .hooks import MessageHook, Step
from .results import (
    ChildSa,
    ChildSaDeleted,
    ChildSaUp,
    ConfigReceived,
    DpdAnswered,
    DpdRequest,
    InitiatorEvent,
    Phase1Up,
    ReceivedModeConfig,
    SessionClosed,
    SessionFailed,
    SessionResult,
    XauthDone,
)
from .session import Datagram, InitiatorError, InitiatorSession, InvalidTransition, PeerError, State

__all__ = [
    "ChildSa", "ChildSaDeleted", "ChildSaUp", "ConfigReceived", "Datagram", "DpdAnswered",
    "DpdRequest", "EspOffer", "IdentitySpec", "IkeOffer", "InitiatorConfig",
    "InitiatorConfigError", "InitiatorError", "InitiatorEvent", "InitiatorSession",
    "InvalidTransition", "MessageHook", "Mode", "NattMode", "PeerError", "Phase1Up",
    "ReceivedModeConfig", "RetransmitSettings", "SessionClosed", "SessionFailed",
    "SessionResult", "State", "Step", "XauthDone",
]
