"""The asyncio adapter, with fake datagram transports (no sockets)."""

import asyncio

from responder.ikev1.events import Phase1Established
from responder.ikev1.transport import ResponderTransport

from clients.ikev1_initiator.pair import CLIENT, SERVER, make_pair


class FakeTransport:
    def __init__(self):
        self.sent = []
        self.closed = False

    def sendto(self, data, addr):
        self.sent.append((data, addr))

    def close(self):
        self.closed = True


def test_transport_demux_timer_and_events():
    async def scenario():
        pair = make_pair()
        events, esp = [], []
        transport = ResponderTransport(pair.responder, loop=asyncio.get_running_loop(),
                                       event_handler=events.append,
                                       esp_handler=lambda d, l, r: esp.append(d))
        sock500, sock4500 = FakeTransport(), FakeTransport()
        transport.attach(SERVER, sock500)
        transport.attach((SERVER[0], 4500), sock4500)
        i = pair.initiator
        transport.datagram_received(i.main_mode_1(), SERVER, CLIENT)
        [(reply, addr)] = sock500.sent
        assert addr == CLIENT
        i.handle_main_mode_2(reply)
        transport.datagram_received(i.main_mode_3(), SERVER, CLIENT)
        i.handle_main_mode_4(sock500.sent[-1][0])
        # float: IKE on 4500 with the marker; a keepalive and an ESP packet
        transport.datagram_received(b"\xff", (SERVER[0], 4500), (CLIENT[0], 4500))
        transport.datagram_received(b"\x00\x00\x00\x00" + i.main_mode_5(), (SERVER[0], 4500),
                                    (CLIENT[0], 4500))
        transport.datagram_received(b"\xca\xfe\x00\x01" + bytes(20), (SERVER[0], 4500),
                                    (CLIENT[0], 4500))
        [(reply, addr)] = sock4500.sent
        assert reply[:4] == b"\0\0\0\0" and addr == (CLIENT[0], 4500)
        i.handle_main_mode_6(reply[4:])
        assert [type(e) for e in events] == [Phase1Established]
        assert esp == [b"\xca\xfe\x00\x01" + bytes(20)]
        assert transport._timer is not None  # DPD timer armed via loop.call_at
        transport.close()
        assert sock500.closed and sock4500.closed

    asyncio.run(scenario())
