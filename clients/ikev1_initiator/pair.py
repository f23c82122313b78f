"""In-memory initiator/responder pair with a fake clock (aioquic style).

The harness is the kit's one in-memory link, `memory.MemoryLink` (clock, responder
timers, the wire as recorded); `Pair` drives it with the step-by-step
`stepwise.StepInitiator` instead of an `InitiatorSession`: each `send` is one crafted
message, its replies come back raw. The engine, hostile-input and security tests use
it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .memory import MemoryLink
from responder.ikev1.engine import Datagram, Responder
from responder.ikev1.events import Event
from responder.ikev1.natt_framing import strip_non_esp_marker
from responder.ikev1.policy import PresharedKey, ResponderPolicy

from .stepwise import StepInitiator, seeded_rng

PSK = b"s3cret-group-key"
SERVER = ("198.18.0.1", 500)
CLIENT = ("198.18.1.2", 500)


@dataclass
class Pair(MemoryLink):
    initiator: StepInitiator | None = None
    #: every datagram the responder produced (for the tshark check)
    sent: list[Datagram] = field(default_factory=list)
    received: list[Datagram] = field(default_factory=list)
    #: both directions in order, as on the wire (source = `local`)
    wire: list[Datagram] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def send(self, data: bytes, *, local=None, remote=None) -> list[bytes]:
        """Initiator -> responder; returns the responder's replies (marker stripped)."""
        local = local or self.initiator.remote
        remote = remote or self.initiator.local
        if local[1] != 500:
            data = b"\x00\x00\x00\x00" + data
        self.received.append(Datagram(data, remote, local))
        self.wire.append(Datagram(data, remote, local))
        self.to_responder(data, remote, local)
        return self.collect()

    def collect(self) -> list[bytes]:
        return self._unwrap(self.from_responder())

    def _unwrap(self, out: list[Datagram]) -> list[bytes]:
        self.sent.extend(out)
        self.wire.extend(out)
        self.events.extend(self.responder.events())
        return [strip_non_esp_marker(d.data) if d.local[1] != 500 else d.data for d in out]

    def advance(self, seconds: float) -> list[bytes]:
        """Move the fake clock, firing the responder's timers on the way (the scripted
        initiator has none); returns what they sent."""
        return self._unwrap(self.fire_responder_timers(self.now + seconds))

    def of_type(self, cls):
        return [e for e in self.events if isinstance(e, cls)]

    # -------------------------------------------------------- scripted runs
    def main_mode(self, *, float_to: int | None = 4500, initial_contact: bool = False) -> None:
        i = self.initiator
        [reply] = self.send(i.main_mode_1())
        i.handle_main_mode_2(reply)
        [reply] = self.send(i.main_mode_3())
        i.handle_main_mode_4(reply)
        if float_to:
            self.float(float_to)
        [reply] = self.send(i.main_mode_5(initial_contact=initial_contact))
        i.handle_main_mode_6(reply)

    def aggressive_mode(self, *, float_to: int | None = 4500, encrypted: bool = True,
                        initial_contact: bool = False) -> None:
        i = self.initiator
        [reply] = self.send(i.aggressive_1())
        i.handle_aggressive_2(reply)
        if float_to:
            self.float(float_to)
        assert self.send(i.aggressive_3(encrypted=encrypted,
                                        initial_contact=initial_contact)) == []

    def float(self, port: int, client_port: int | None = None) -> None:
        i = self.initiator
        i.remote = (i.remote[0], port)
        i.local = (i.local[0], client_port or port)

    def quick_mode(self, **kwargs):
        i = self.initiator
        run, data = i.quick_mode_1(**kwargs)
        [reply] = self.send(data)
        i.handle_quick_mode_2(run, reply)
        assert self.send(i.quick_mode_3(run)) == []
        return run


def make_pair(policy: ResponderPolicy | None = None, *, seed: int = 1,
              initiator_kwargs: dict | None = None, responder_kwargs: dict | None = None) -> Pair:
    policy = policy or ResponderPolicy(psks=(PresharedKey(PSK),))
    responder = Responder(policy, rng=seeded_rng(seed), **(responder_kwargs or {}))
    initiator = StepInitiator(PSK, seeded_rng(seed + 1000), local=CLIENT, remote=SERVER,
                              **(initiator_kwargs or {}))
    return Pair(responder=responder, server=SERVER, initiator=initiator)
