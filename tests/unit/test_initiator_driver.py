"""The asyncio driver over loopback UDP against the project's Responder.

The server side is a minimal asyncio wrapper around `Responder` on two
loopback ports that it presents to the engine as 500 and 4500; the responder
forces UDP encapsulation, so every session floats to the NAT-T socket.
"""

from __future__ import annotations

import asyncio

from clients.ikev1_initiator import IdentitySpec, InitiatorConfig, Mode
from clients.ikev1_initiator.__main__ import main as cli_main
from clients.ikev1_initiator.driver import run_sessions
from responder.ikev1.engine import Responder
from responder.ikev1.enums import IdType
from responder.ikev1.policy import Identity, Limits, PresharedKey, ResponderPolicy

PSK = b"loopback-key"


class LoopbackServer(asyncio.DatagramProtocol):
    def __init__(self, engine: Responder, presented_port: int, sockets: dict) -> None:
        self.engine, self.port, self.sockets = engine, presented_port, sockets

    def connection_made(self, transport) -> None:
        self.sockets[self.port] = transport

    def datagram_received(self, data: bytes, addr) -> None:
        now = asyncio.get_running_loop().time()
        self.engine.receive_datagram(data, ("127.0.0.1", self.port), addr, now)
        for datagram in self.engine.datagrams_to_send():
            self.sockets[datagram.local[1]].sendto(datagram.data, datagram.remote)


async def serve(engine: Responder) -> tuple[dict, int, int]:
    loop, sockets = asyncio.get_running_loop(), {}
    ike, _ = await loop.create_datagram_endpoint(lambda: LoopbackServer(engine, 500, sockets),
                                                 local_addr=("127.0.0.1", 0))
    natt, _ = await loop.create_datagram_endpoint(lambda: LoopbackServer(engine, 4500, sockets),
                                                  local_addr=("127.0.0.1", 0))
    return sockets, ike.get_extra_info("sockname")[1], natt.get_extra_info("sockname")[1]


def engine() -> Responder:
    limits = Limits(max_half_open_per_peer=1000, max_sas_per_peer=1000)
    # the Main Mode key, and the same key bound to the group (keyid:vr1) the
    # sessions log in with: Aggressive Mode only answers with a bound key
    psks = (PresharedKey(PSK), PresharedKey(PSK, identity=Identity(IdType.KEY_ID, "vr1")))
    return Responder(ResponderPolicy(psks=psks, force_encap=True, limits=limits))


def test_many_sessions_over_loopback_share_two_sockets():
    responder = engine()

    async def scenario():
        sockets, ike_port, natt_port = await serve(responder)
        configs = [InitiatorConfig(server="127.0.0.1", server_port=ike_port,
                                   server_natt_port=natt_port,
                                   identity=IdentitySpec.parse("keyid:vr1"), psk=PSK,
                                   mode=(Mode.MAIN, Mode.AGGRESSIVE)[i % 2], mode_config=False)
                   for i in range(12)]
        try:
            return await run_sessions(configs, sources=["127.0.0.1"], hold=0.2, timeout=10)
        finally:
            for transport in sockets.values():
                transport.close()

    outcomes = asyncio.run(scenario())
    assert all(o.result.completed and o.result.floated for o in outcomes), \
        [o.result.error for o in outcomes]
    assert all(o.result.state == "closed" and o.result.children for o in outcomes)
    assert responder.sa_count == 0  # every session sent Delete on close


def test_cli_prints_lines_and_summary_without_secrets(tmp_path, capsys):
    responder = engine()
    psk_file = tmp_path / "psk"
    psk_file.write_text(PSK.decode())

    async def scenario(argv_tail):
        sockets, ike_port, natt_port = await serve(responder)
        argv = ["--server", "127.0.0.1", "--server-port", str(ike_port), "--server-natt-port",
                str(natt_port), "--id", "keyid:vr1", "--psk-file", str(psk_file),
                "--no-mode-config", "--source", "127.0.0.1", *argv_tail]
        try:
            return await asyncio.get_running_loop().run_in_executor(None, cli_main, argv)
        finally:
            for transport in sockets.values():
                transport.close()

    rc = asyncio.run(scenario(["--count", "3", "--mode", "aggressive"]))
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = out.strip().splitlines()
    assert sum(line.startswith("session=") for line in lines) == 3
    assert '"established": 3' in lines[-1]
    assert PSK.decode() not in out
