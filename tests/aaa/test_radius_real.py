"""The AAA package against a real FreeRADIUS 3.2 (private, 127.0.0.1) and real radclient.

Proves: PAP accept with reply attributes (vendor 4874 too), reject, failover past a dead
server, accounting Start/Interim/Stop in the detail file, RFC 5176 Disconnect (ACK and a
teardown through the callback; NAK 503 for an unknown session), CoA Session-Timeout, and
NAK Invalid-Request for requests without or with a stale Event-Timestamp.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import subprocess
import time

import pytest

from responder.aaa.accounting import Accountant, AccountingSession, Counters
from responder.aaa.base import AuthRequest, NasInfo
from responder.aaa.dae import DaeClient, DaeListener, DaeProcessor, SubscriberDirectory
from responder.aaa.radius import (RadiusBackend, RadiusClient, RadiusServer, RadiusTransport,
                                  ServerGroup)
from responder.subscriber import Peer, ResourceKind, State, SubscriberEvent, SubscriberTable

pytestmark = pytest.mark.aaa

A = ipaddress.IPv4Address
NAS = NasInfo(nas_ip=A("127.0.0.1"), nas_port=1, calling_station_id="198.18.1.1")


def client_for(fr, *servers_before: RadiusServer, timeout=1.0, retries=1,
               **kwargs) -> RadiusClient:
    real = RadiusServer("127.0.0.1", fr.secret.encode(), auth_port=fr.auth_port,
                        acct_port=fr.acct_port, timeout=timeout, retries=retries)
    group = ServerGroup("default", (*servers_before, real), dead_time=60)
    return RadiusClient([group], transport=RadiusTransport("127.0.0.1"), **kwargs)


def test_pap_accept_with_vendor_4874_attributes(freeradius):
    async def main():
        client = client_for(freeradius)
        try:
            return await RadiusBackend(client).authenticate(AuthRequest("alice", b"alicepw", NAS))
        finally:
            client.close()
    result = asyncio.run(main())
    assert result.granted, result.reason
    assert result.framed_ip == A("10.99.2.7")
    assert result.framed_netmask == A("255.255.255.255")
    assert result.session_timeout == 120 and result.idle_timeout == 30
    assert result.virtual_router == "dlvr2" and result.pool_name == "pool2"
    assert result.dns == (A("10.50.0.53"), A("10.50.0.54"))
    assert result.wins == (A("10.50.0.137"), A("10.50.0.138"))
    assert result.class_ == b"daclass" and result.reply_message == "hello alice"


def test_reject_on_bad_password(freeradius):
    async def main():
        client = client_for(freeradius)
        try:
            backend = RadiusBackend(client)
            wrong = await backend.authenticate(AuthRequest("alice", b"wrong", NAS))
            # the NUL quirk: stripped before PAP, so the password is right
            quirk = await backend.authenticate(AuthRequest.from_xauth("alice", b"alicepw\x00", NAS))
            return wrong, quirk
        finally:
            client.close()
    wrong, quirk = asyncio.run(main())
    assert not wrong.granted and wrong.reason.startswith("Access-Reject from 127.0.0.1")
    assert quirk.granted


def test_failover_from_dead_first_server(freeradius):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # bound, never answers
    silent.bind(("127.0.0.1", 0))
    dead = RadiusServer("127.0.0.1", b"whatever", auth_port=silent.getsockname()[1],
                        acct_port=silent.getsockname()[1], timeout=0.2, retries=1)

    async def main():
        client = client_for(freeradius, dead)
        try:
            result = await RadiusBackend(client).authenticate(AuthRequest("alice", b"alicepw", NAS))
            return result, client.is_dead("default", 0), client.transport.stats["retransmissions"]
        finally:
            client.close()
    try:
        result, first_dead, retransmissions = asyncio.run(main())
    finally:
        silent.close()
    assert result.granted and first_dead and retransmissions == 1


def test_accounting_start_interim_stop_in_detail_file(freeradius):
    session_id = "DA-ACCT-0001"

    async def main():
        # one clock for both: Acct-Delay-Time = clock at transmission - record creation
        client = client_for(freeradius, clock=lambda: 1010.0)
        accountant = Accountant(client, clock=lambda: 1010.0)
        task = asyncio.create_task(accountant.run())
        try:
            counters = Counters(input_octets=5 * 2**32 + 1234, output_octets=4321,
                                input_packets=11, output_packets=22)
            accountant.start_session(
                AccountingSession(session_id, "alice", A("10.99.2.7"), started_at=900.0,
                                  class_=b"daclass", interim_interval=60,
                                  nas_attributes={"NAS-IP-Address": "127.0.0.1", "NAS-Port": 1}),
                counters=lambda: counters)
            assert accountant.tick(1000.0) == 1
            accountant.stop_session(session_id, SubscriberEvent.DPD_TIMEOUT, now=1010.0)
            assert await accountant.drain(10)
            return accountant.stats
        finally:
            task.cancel()
            client.close()
    stats = asyncio.run(main())
    assert stats.sent == 3 and stats.failed_attempts == 0
    records = [r for r in freeradius.accounting_records() if r.get("Acct-Session-Id") == session_id]
    assert [r["Acct-Status-Type"] for r in records] == ["Start", "Interim-Update", "Stop"]
    start, interim, stop = records
    assert start["Framed-IP-Address"] == "10.99.2.7" and start["User-Name"] == "alice"
    assert start["Class"] == "0x6461636c617373"
    assert interim["Acct-Session-Time"] == "100"
    assert stop["Acct-Terminate-Cause"] == "Lost-Carrier"
    assert stop["Acct-Session-Time"] == "110"
    assert stop["Acct-Input-Octets"] == "1234" and stop["Acct-Input-Gigawords"] == "5"
    assert stop["Acct-Output-Octets"] == "4321"
    assert stop["Acct-Input-Packets"] == "11" and stop["Acct-Output-Packets"] == "22"
    assert stop["NAS-Port"] == "1" and stop["Acct-Delay-Time"] == "0"
    assert start["Acct-Delay-Time"] == "110"        # RFC 2866 §5.2: queued since 900


def _radclient(freeradius, port: int, kind: str, attributes: str,
               stamp: float | None = None) -> str:
    """radclient with an Event-Timestamp of now (or ``stamp``) unless ``stamp`` is 0."""
    stamp = time.time() if stamp is None else stamp
    if stamp:
        attributes += f", Event-Timestamp = {int(stamp)}"
    run = subprocess.run(
        ["radclient", "-x", "-r", "1", "-t", "3", "-d", str(freeradius.raddb),
         f"127.0.0.1:{port}", kind, freeradius.secret],
        input=attributes + "\n", capture_output=True, text=True, timeout=20)
    return run.stdout + run.stderr


def _subscriber_with_accounting(table, accountant, username, address):
    sub = table.create(Peer(A("198.18.1.1")), "p", now=0.0)
    sub.handle(SubscriberEvent.XAUTH_STARTED)
    sub.authorize(now=0.0, session_timeout=100)
    table.set_username(sub, username)
    table.bind_address(sub, "dlvr1", A(address))
    sub.handle(SubscriberEvent.INTERFACE_CREATED)
    accountant.start_session(AccountingSession(sub.acct_session_id, username, A(address),
                                               started_at=0.0))
    sub.ledger.take(ResourceKind.ACCOUNTING, sub.acct_session_id,
                    lambda: accountant.stop_session(sub.acct_session_id, sub.teardown_event, 5.0))
    return sub


def test_radclient_disconnect_coa_and_unknown_session(freeradius):
    """radclient -> our RFC 5176 listener: Disconnect-ACK with teardown and an accounting
    Stop (Admin-Reset), NAK 503 for an unknown session, CoA-ACK changing Session-Timeout."""

    async def main():
        table = SubscriberTable(session_prefix="DADAE")
        client = client_for(freeradius, clock=lambda: 5.0)
        accountant = Accountant(client, clock=lambda: 5.0)
        task = asyncio.create_task(accountant.run())
        processor = DaeProcessor([DaeClient("127.0.0.1", freeradius.secret.encode())],
                                 SubscriberDirectory(table))
        listener = await DaeListener.start(processor, "127.0.0.1", 0)
        port = listener.address[1]
        try:
            carol = _subscriber_with_accounting(table, accountant, "carol", "10.99.1.20")
            dave = _subscriber_with_accounting(table, accountant, "dave", "10.99.1.21")
            out = {}
            out["disconnect"] = await asyncio.to_thread(
                _radclient, freeradius, port, "disconnect",
                f'User-Name = "carol", Acct-Session-Id = "{carol.acct_session_id}"')
            out["unknown"] = await asyncio.to_thread(
                _radclient, freeradius, port, "disconnect",
                'User-Name = "nobody", Framed-IP-Address = 10.99.1.99')
            out["coa"] = await asyncio.to_thread(
                _radclient, freeradius, port, "coa",
                'Framed-IP-Address = 10.99.1.21, Session-Timeout = 7')
            out["no timestamp"] = await asyncio.to_thread(
                _radclient, freeradius, port, "disconnect", 'User-Name = "dave"', 0)
            out["stale"] = await asyncio.to_thread(
                _radclient, freeradius, port, "disconnect", 'User-Name = "dave"',
                time.time() - 3600)
            assert await accountant.drain(10)
            return out, carol, dave
        finally:
            listener.close()
            task.cancel()
            client.close()

    out, carol, dave = asyncio.run(main())
    assert "Received Disconnect-ACK" in out["disconnect"], out["disconnect"]
    assert carol.state is State.GONE and carol.teardown_event is SubscriberEvent.RADIUS_DISCONNECT
    assert "Received Disconnect-NAK" in out["unknown"], out["unknown"]
    assert "Session-Context-Not-Found" in out["unknown"]
    assert "Received CoA-ACK" in out["coa"], out["coa"]
    assert dave.live and dave.session_timeout == 7
    for refused in ("no timestamp", "stale"):
        assert "Received Disconnect-NAK" in out[refused], out[refused]
        assert "Invalid-Request" in out[refused], out[refused]
    stops = [r for r in freeradius.accounting_records()
             if r.get("Acct-Session-Id") == carol.acct_session_id and r["Acct-Status-Type"] == "Stop"]
    assert len(stops) == 1 and stops[0]["Acct-Terminate-Cause"] == "Admin-Reset"
