"""RADIUS client against an in-process pyrad-packet server on 127.0.0.1: PAP, reply
attributes, retransmission, failover, dead marking, fast refusal while every server is
dead, Message-Authenticator enforcement, identifier exhaustion, accounting."""
import asyncio
import ipaddress

import pytest
from pyrad import packet as rp

from responder.aaa.base import AuthRequest, NasInfo, Refusal
from responder.aaa.radius import (RadiusBackend, RadiusBusyError, RadiusClient, RadiusServer,
                                  RadiusTransport, ServerGroup, load_dictionary)

A = ipaddress.IPv4Address
SECRET = b"testing123"
DICT = load_dictionary()


class FakeRadius(asyncio.DatagramProtocol):
    """Answers Access-Request (alice/alicepw) and Accounting-Request; can drop the first
    ``drop`` requests, delay answers, answer with a wrong secret, leave the
    Message-Authenticator out of its Access-Accept/Reject (``signed=False``), or refuse
    with another code than Access-Reject (``refuse_code``)."""

    def __init__(self, drop=0, delay=0.0, secret=SECRET, signed=True, refuse_code=rp.AccessReject):
        self.drop, self.delay, self.secret, self.signed = drop, delay, secret, signed
        self.refuse_code = refuse_code
        self.received = []

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.received.append(data)
        if self.drop:
            self.drop -= 1
            return
        asyncio.get_running_loop().call_later(self.delay, self._answer, data, addr)

    def _answer(self, data, addr):
        if data[0] == rp.AccessRequest:
            req = rp.AuthPacket(packet=data, secret=SECRET, dict=DICT)
            ok = req.PwDecrypt(req["User-Password"][0]) == "alicepw" and req["User-Name"][0] == "alice"
            reply = req.CreateReply()
            reply.secret = self.secret
            if ok:
                reply["Framed-IP-Address"] = "10.99.2.7"
                reply["Framed-IP-Netmask"] = "255.255.255.255"
                reply["Session-Timeout"] = 120
                reply["Idle-Timeout"] = 30
                reply["Class"] = b"\x01class"
                reply["ERX-Virtual-Router-Name"] = "vr2"
                reply["ERX-Address-Pool-Name"] = "pool2"
                reply["ERX-Primary-Dns"] = "10.50.0.53"
                reply["ERX-Secondary-Dns"] = "10.50.0.54"
                reply["ERX-Primary-Wins"] = "10.50.0.137"
                reply["ERX-Secondary-Wins"] = "10.50.0.138"
                reply["Reply-Message"] = "hello alice"
            else:
                reply.code = self.refuse_code
                reply["Reply-Message"] = "no"
            if self.signed:
                reply.add_message_authenticator()
            else:
                reply.message_authenticator = False
        else:
            req = rp.AcctPacket(packet=data, secret=SECRET, dict=DICT)
            assert req.VerifyAcctRequest()
            reply = req.CreateReply()
        self.transport.sendto(reply.ReplyPacket(), addr)


async def start_fake(**kwargs):
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(lambda: FakeRadius(**kwargs),
                                                           local_addr=("127.0.0.1", 0))
    return proto, transport.get_extra_info("sockname")[1]


async def dead_port():
    """A bound UDP socket that never answers."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                       local_addr=("127.0.0.1", 0))
    return transport, transport.get_extra_info("sockname")[1]


def server(port, **kw):
    kw.setdefault("timeout", 0.2)
    kw.setdefault("retries", 1)
    return RadiusServer("127.0.0.1", SECRET, auth_port=port, acct_port=port, **kw)


def backend_for(*servers, dead_time=60.0, clock=None):
    group = ServerGroup("default", tuple(servers), dead_time=dead_time)
    kwargs = {"clock": clock} if clock else {}
    client = RadiusClient([group], transport=RadiusTransport("127.0.0.1"), **kwargs)
    return RadiusBackend(client), client


NAS = NasInfo(nas_ip=A("10.255.0.1"), nas_port=3, calling_station_id="198.18.1.3")


def test_pap_accept_with_all_reply_attributes():
    async def main():
        fake, port = await start_fake()
        backend, client = backend_for(server(port))
        result = await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
        client.close()
        request = rp.AuthPacket(packet=fake.received[0], secret=SECRET, dict=DICT)
        return result, request
    result, request = asyncio.run(main())
    assert result.granted and result.backend == "radius"
    assert result.framed_ip == A("10.99.2.7") and result.framed_netmask == A("255.255.255.255")
    assert result.virtual_router == "vr2" and result.pool_name == "pool2"
    assert result.dns == (A("10.50.0.53"), A("10.50.0.54"))
    assert result.wins == (A("10.50.0.137"), A("10.50.0.138"))
    assert (result.session_timeout, result.idle_timeout) == (120, 30)
    assert result.class_ == b"\x01class" and result.reply_message == "hello alice"
    # the NAS attributes of the request (RFC 2865 §5)
    assert request["NAS-Port"] == [3] and request["Calling-Station-Id"] == ["198.18.1.3"]
    assert request["NAS-Port-Type"] == ["Virtual"] and request["Service-Type"] == ["Framed-User"]
    assert request["NAS-IP-Address"] == ["10.255.0.1"]
    assert request.message_authenticator and request.verify_message_authenticator()


def test_reject_reason_names_server_and_message():
    async def main():
        _, port = await start_fake()
        backend, client = backend_for(server(port))
        try:
            return await backend.authenticate(AuthRequest("alice", b"wrong", NAS))
        finally:
            client.close()
    result = asyncio.run(main())
    assert not result.granted and result.refusal is Refusal.CREDENTIALS_REJECTED
    assert result.reason == "Access-Reject from 127.0.0.1: no"
    assert result.is_guess and not result.is_final


@pytest.mark.parametrize("code, refusal, reason", [
    (rp.AccessChallenge, Refusal.POLICY, "Access-Challenge from 127.0.0.1 (not supported): no"),
    (rp.AccountingResponse, Refusal.AAA_ERROR,
     "unexpected RADIUS reply code 5 from 127.0.0.1: no"),
])
def test_other_refusing_codes_are_typed_by_code_not_guesses(code, refusal, reason):
    async def main():
        _, port = await start_fake(refuse_code=code)
        backend, client = backend_for(server(port))
        try:
            return await backend.authenticate(AuthRequest("alice", b"wrong", NAS))
        finally:
            client.close()
    result = asyncio.run(main())
    assert (result.granted, result.refusal, result.reason) == (False, refusal, reason)
    assert not result.is_guess
    assert result.is_final is (refusal is Refusal.AAA_ERROR)


def test_retransmission_keeps_identifier_and_authenticator():
    async def main():
        fake, port = await start_fake(drop=1)
        backend, client = backend_for(server(port, retries=2))
        result = await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
        client.close()
        return result, fake.received
    result, received = asyncio.run(main())
    assert result.granted
    assert len(received) == 2 and received[0] == received[1]   # RFC 5080 §2.2.1


def test_failover_to_second_server_and_dead_marking():
    now = [1000.0]

    async def main():
        silent, dead = await dead_port()
        fake, port = await start_fake()
        backend, client = backend_for(server(dead), server(port), dead_time=30,
                                      clock=lambda: now[0])
        first = await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
        assert client.is_dead("default", 0) and not client.is_dead("default", 1)
        # while dead, the first server is skipped: one packet to the live one only
        before = len(fake.received)
        second = await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
        assert len(fake.received) == before + 1
        now[0] += 31                        # revive time passed
        assert not client.is_dead("default", 0)
        client.close()
        silent.close()
        return first, second
    first, second = asyncio.run(main())
    assert first.granted and second.granted


def test_all_servers_silent_is_a_timeout_refusal():
    async def main():
        silent, dead = await dead_port()
        backend, client = backend_for(server(dead, timeout=0.05, retries=0))
        try:
            return await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
        finally:
            client.close()
            silent.close()
    result = asyncio.run(main())
    assert not result.granted and result.refusal is Refusal.AAA_UNAVAILABLE
    assert result.reason.startswith("timeout: no RADIUS server answered")
    assert result.is_final and not result.is_guess


def test_all_servers_dead_refuses_at_once_until_dead_time_then_probes():
    now = [1000.0]

    async def main():
        silent1, dead1 = await dead_port()
        silent2, dead2 = await dead_port()
        servers = [server(dead1, timeout=0.1, retries=1), server(dead2, timeout=0.1, retries=1)]
        backend, client = backend_for(*servers, dead_time=30, clock=lambda: now[0])
        loop = asyncio.get_running_loop()
        try:
            first = await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
            sent = client.transport.stats["retransmissions"]
            started = loop.time()
            fast = await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
            fast_seconds = loop.time() - started
            unsent = client.transport.stats["retransmissions"] == sent
            now[0] += 31                      # dead_time over: the next request probes
            started = loop.time()
            probe = await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
            probe_seconds = loop.time() - started
            return first, fast, fast_seconds, unsent, probe, probe_seconds, client.transport.stats
        finally:
            client.close()
            silent1.close()
            silent2.close()
    first, fast, fast_seconds, unsent, probe, probe_seconds, stats = asyncio.run(main())
    assert not first.granted and first.reason.startswith("timeout: no RADIUS server answered")
    assert not fast.granted and fast.reason == "radius: no server answering (group default)"
    assert fast.refusal is Refusal.AAA_UNAVAILABLE
    assert fast_seconds < 0.05 and unsent and stats["refused_all_dead"] == 1
    assert not probe.granted and probe_seconds >= 0.2    # both servers were tried again


def test_probe_after_dead_time_finds_the_server_back():
    now = [1000.0]

    async def main():
        fake, port = await start_fake(drop=2)      # "down" for the first login's 2 packets
        backend, client = backend_for(server(port, timeout=0.1, retries=1), dead_time=30,
                                      clock=lambda: now[0])
        try:
            down = await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
            refused = await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
            packets_while_dead = len(fake.received)
            now[0] += 30.5
            back = await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
            return down, refused, packets_while_dead, back, client.is_dead("default", 0)
        finally:
            client.close()
    down, refused, packets_while_dead, back, still_dead = asyncio.run(main())
    assert not down.granted and not refused.granted and packets_while_dead == 2
    assert refused.reason == "radius: no server answering (group default)"
    assert back.granted and not still_dead


def test_one_probe_at_a_time_the_others_are_refused_at_once():
    now = [1000.0]

    async def main():
        silent, dead = await dead_port()
        backend, client = backend_for(server(dead, timeout=0.2, retries=0), dead_time=30,
                                      clock=lambda: now[0])
        loop = asyncio.get_running_loop()

        async def timed():
            started = loop.time()
            result = await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
            return result.reason, loop.time() - started
        try:
            await timed()                          # marks the server dead
            now[0] += 31
            return await asyncio.gather(timed(), timed(), timed())
        finally:
            client.close()
            silent.close()
    probe, *others = asyncio.run(main())
    assert probe[0].startswith("timeout: no RADIUS server answered") and probe[1] >= 0.2
    for reason, seconds in others:
        assert reason == "radius: no server answering (group default)" and seconds < 0.1


def test_reply_without_message_authenticator_is_dropped_by_default():
    async def main():
        _, port = await start_fake(signed=False)
        # dead_time 0: the dropped Accept must not keep the Reject from being sent
        backend, client = backend_for(server(port, timeout=0.1, retries=0), dead_time=0)
        try:
            accept = await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
            reject = await backend.authenticate(AuthRequest("alice", b"wrong", NAS))
            return accept, reject, client.transport.stats
        finally:
            client.close()
    accept, reject, stats = asyncio.run(main())
    assert not accept.granted and accept.reason.startswith("timeout")
    assert not reject.granted and reject.reason.startswith("timeout")
    assert stats["dropped_no_message_authenticator"] == 2


def test_reply_without_message_authenticator_accepted_when_not_required():
    async def main():
        _, port = await start_fake(signed=False)
        backend, client = backend_for(server(port, require_message_authenticator=False))
        try:
            return await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
        finally:
            client.close()
    assert asyncio.run(main()).granted


def test_reply_with_wrong_secret_is_dropped():
    async def main():
        _, port = await start_fake(secret=b"other")
        backend, client = backend_for(server(port, timeout=0.1, retries=0))
        result = await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
        stats = client.transport.stats
        client.close()
        return result, stats
    result, stats = asyncio.run(main())
    assert not result.granted and stats["dropped_unverified"] == 1


def test_more_than_256_outstanding_use_more_sockets_and_bound_waiters():
    async def main():
        # the fake server holds every answer long enough for all requests to be
        # outstanding at once, even on a loaded machine
        fake, port = await start_fake(delay=4.0)
        transport = RadiusTransport("127.0.0.1", max_sockets=2, max_waiting=10)
        client = RadiusClient([ServerGroup("g", (server(port, timeout=10, retries=0),))],
                              transport=transport)
        backend = RadiusBackend(client)
        tasks = [asyncio.create_task(backend.authenticate(AuthRequest("alice", b"alicepw", NAS)))
                 for _ in range(512 + 10)]
        for _ in range(300):   # until every id of both sockets is taken (at most 3 s)
            await asyncio.sleep(0.01)
            if transport.outstanding() == 512:
                break
        assert len(transport._sockets) == 2 and transport.outstanding() == 512
        with pytest.raises(RadiusBusyError):
            await transport._allocate_id()   # the 11th waiter is refused at once
        results = await asyncio.gather(*tasks)
        client.close()
        return results
    results = asyncio.run(main())
    assert all(r.granted for r in results) and len(results) == 522


def test_accounting_new_identifier_and_delay_time_on_retransmission():
    now = [50.0]

    async def main():
        fake, port = await start_fake(drop=1)
        client = RadiusClient([ServerGroup("g", (server(port, retries=2),))],
                              transport=RadiusTransport("127.0.0.1"), clock=lambda: now[0])
        now[0] = 53.0
        await client.send_accounting({"Acct-Status-Type": 1, "Acct-Session-Id": "S1",
                                      "User-Name": "alice"}, created_at=50.0)
        client.close()
        return [rp.AcctPacket(packet=raw, secret=SECRET, dict=DICT) for raw in fake.received]
    first, second = asyncio.run(main())
    assert first.id != second.id                         # RFC 2866 §5.2
    assert first["Acct-Delay-Time"] == [3] and second.VerifyAcctRequest()


def test_counters_per_server_and_group():
    now = [1000.0]

    async def main():
        silent, dead = await dead_port()
        _, unsigned = await start_fake(signed=False)
        backend, client = backend_for(server(dead, timeout=0.05, retries=1),
                                      server(unsigned, timeout=0.05, retries=0),
                                      dead_time=30, clock=lambda: now[0])
        try:
            for _ in range(2):    # 1st: both time out (the 2nd's reply dropped), 2nd: not sent
                await backend.authenticate(AuthRequest("alice", b"alicepw", NAS))
            return client.counters(), dead
        finally:
            client.close()
            silent.close()
    counters, dead = asyncio.run(main())
    first, second = counters["servers"]
    # one address twice in the group: the port tells the servers apart
    assert first == {"group": "default", "server": f"127.0.0.1:{dead}", "dead": True,
                     "requests": 1, "timeouts": 1, "dead_marks": 1,
                     "dropped_no_message_authenticator": 0}
    assert (second["requests"], second["timeouts"], second["dead_marks"]) == (1, 1, 1)
    assert second["dropped_no_message_authenticator"] == 1 and second["dead"]
    assert counters["refused_no_server"] == {"default": 1}
    assert counters["transport"]["retransmissions"] == 1
    assert counters["transport"]["dropped_no_message_authenticator"] == 1
