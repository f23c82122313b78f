"""RADIUS faults against real FreeRADIUS 3.2 servers (private, 127.0.0.1): failover from a
stopped primary to the secondary and back after ``dead_time``, fast refusals while every
server of a group is down, and Message-Authenticator in FreeRADIUS's replies."""
from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import time

import pytest

from responder.aaa.base import AuthRequest, NasInfo
from responder.aaa.radius import (RadiusBackend, RadiusClient, RadiusServer, RadiusTransport,
                                  ServerGroup, _has_message_authenticator)
from tests.aaa.conftest import start_freeradius, stop_freeradius

pytestmark = pytest.mark.aaa

A = ipaddress.IPv4Address
NAS = NasInfo(nas_ip=A("127.0.0.1"), nas_port=1, calling_station_id="198.18.1.1")
ALICE = AuthRequest("alice", b"alicepw", NAS)


def radius_server(info, timeout=0.3, retries=1) -> RadiusServer:
    return RadiusServer("127.0.0.1", info.secret.encode(), auth_port=info.auth_port,
                        acct_port=info.acct_port, timeout=timeout, retries=retries)


def client_of(*servers: RadiusServer, dead_time: float, clock) -> RadiusClient:
    return RadiusClient([ServerGroup("G", servers, dead_time=dead_time)],
                        transport=RadiusTransport("127.0.0.1"), clock=clock)


def test_failover_to_secondary_and_back_after_dead_time(freeradius_factory, tmp_path):
    primary_proc, primary = freeradius_factory()
    _, secondary = freeradius_factory()
    now = [1000.0]

    async def login(client):
        server, reply = await client.access_request(
            RadiusBackend(client).request_attributes(ALICE), ALICE.password)
        return server.auth_port, reply.code

    async def main():
        client = client_of(radius_server(primary), radius_server(secondary), dead_time=20,
                           clock=lambda: now[0])
        try:
            seen = {"before": await login(client)}
            stop_freeradius(primary_proc)
            seen["primary stopped"] = await login(client)
            seen["primary dead"] = client.is_dead("G", 0)
            # the same primary back on its ports (a restarted server)
            (tmp_path / "again").mkdir()
            again, _ = await asyncio.to_thread(start_freeradius, tmp_path / "again",
                                               primary.auth_port, primary.acct_port)
            try:
                seen["within dead_time"] = await login(client)
                now[0] += 21
                seen["after dead_time"] = await login(client)
            finally:
                stop_freeradius(again)
            return seen
        finally:
            client.close()

    seen = asyncio.run(main())
    accept = 2
    assert seen["before"] == (primary.auth_port, accept)
    assert seen["primary stopped"] == (secondary.auth_port, accept)
    assert seen["primary dead"]
    assert seen["within dead_time"] == (secondary.auth_port, accept)
    assert seen["after dead_time"] == (primary.auth_port, accept)


def test_every_server_down_refuses_logins_at_once_until_one_answers(freeradius_factory, tmp_path):
    proc, info = freeradius_factory()
    now = [1000.0]

    async def timed(backend):
        started = time.monotonic()
        result = await backend.authenticate(ALICE)
        return result, time.monotonic() - started

    async def main():
        client = client_of(radius_server(info, timeout=0.3, retries=1), dead_time=30,
                           clock=lambda: now[0])
        backend = RadiusBackend(client)
        try:
            out = {"up": await timed(backend)}
            stop_freeradius(proc)
            out["discovery"] = await timed(backend)
            out["refused"] = [await timed(backend) for _ in range(5)]
            (tmp_path / "again").mkdir()
            again, _ = await asyncio.to_thread(start_freeradius, tmp_path / "again",
                                               info.auth_port, info.acct_port)
            try:
                out["back, still within dead_time"] = await timed(backend)
                now[0] += 31
                out["probe"] = await timed(backend)
            finally:
                stop_freeradius(again)
            return out
        finally:
            client.close()

    out = asyncio.run(main())
    assert out["up"][0].granted
    assert not out["discovery"][0].granted and out["discovery"][1] >= 0.6   # 2 x 0.3 s
    for result, seconds in out["refused"]:
        assert result.reason == "radius: no server answering (group G)" and seconds < 0.05
    assert out["back, still within dead_time"][0].reason == "radius: no server answering (group G)"
    assert out["probe"][0].granted


def test_freeradius_replies_carry_a_valid_message_authenticator(freeradius):
    """The private FreeRADIUS signs Accept and Reject; the client, which requires it by
    default, accepts both and drops nothing."""
    server = radius_server(freeradius, timeout=1.0)
    assert server.require_message_authenticator
    raw_replies = []

    async def main():
        client = client_of(server, dead_time=60, clock=time.monotonic)
        original = client._verifier       # keep the raw bytes each verifier is given

        def recording_verifier(request, enforce_ma):
            verify = original(request, enforce_ma)

            def wrapped(raw):
                raw_replies.append(raw)
                return verify(raw)
            return wrapped
        client._verifier = recording_verifier
        backend = RadiusBackend(client)
        try:
            accept = await backend.authenticate(ALICE)
            reject = await backend.authenticate(AuthRequest("alice", b"wrong", NAS))
            return accept, reject, client.transport.stats
        finally:
            client.close()

    accept, reject, stats = asyncio.run(main())
    assert accept.granted, accept.reason
    assert not reject.granted and reject.reason.startswith("Access-Reject from 127.0.0.1")
    assert [raw[0] for raw in raw_replies] == [2, 3]
    assert all(_has_message_authenticator(raw) for raw in raw_replies)
    assert stats["dropped_no_message_authenticator"] == 0 and stats["dropped_unverified"] == 0


def test_unsigned_freeradius_replies_are_dropped_unless_allowed(freeradius_factory):
    """FreeRADIUS 3.2.1 as installed (no Message-Authenticator in PAP replies): by default
    its Accept is dropped and counted, and the login fails; a server configured with
    ``require_message_authenticator=False`` is trusted without it."""
    _, unsigned = freeradius_factory(sign_replies=False)

    async def login(require: bool):
        server = dataclasses.replace(radius_server(unsigned, timeout=0.3, retries=0),
                                     require_message_authenticator=require)
        client = client_of(server, dead_time=60, clock=time.monotonic)
        try:
            return await RadiusBackend(client).authenticate(ALICE), client.transport.stats
        finally:
            client.close()

    strict, strict_stats = asyncio.run(login(True))
    lenient, _ = asyncio.run(login(False))
    assert not strict.granted and strict.reason.startswith("timeout: no RADIUS server answered")
    assert strict_stats["dropped_no_message_authenticator"] == 1
    assert lenient.granted, lenient.reason
