"""Durable accounting against a real FreeRADIUS: journal replay after a SIGKILL, a poison
record that FreeRADIUS never acknowledges, Accounting-On / Off.

The server here is a private FreeRADIUS of this module (built like conftest's), whose
accounting section answers nothing for User-Name "poison" (``reject`` in accounting:
FreeRADIUS sends no Accounting-Response), so the poison record is really unanswered.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from clients.parts import require
from responder.aaa.accounting import Accountant, AccountingSession, StatusType
from responder.aaa.journal import AccountingJournal, DeadLetters, next_boot_id
from responder.aaa.radius import (RadiusBusyError, RadiusClient, RadiusNoServer, RadiusServer,
                                  RadiusTransport, ServerGroup)
from responder.subscriber import SubscriberEvent

from .conftest import (SITE, RadiusServerInfo, _port_bound, build_raddb,
                       freeradius_unavailable_reason, free_udp_ports)

pytestmark = pytest.mark.aaa

REPO = Path(__file__).resolve().parents[2]
POISON_SITE_ACCOUNTING = """\
  accounting {
    if (&User-Name == "poison") {
      reject
    }
    da_detail
    ok
  }
"""


@pytest.fixture(scope="module")
def picky_freeradius(tmp_path_factory):
    """FreeRADIUS that drops the accounting records of User-Name "poison"."""
    reason = freeradius_unavailable_reason()
    if reason:
        pytest.skip(reason)
    require("freeradius", "radclient", "freeradius configuration")
    raddb = tmp_path_factory.mktemp("hq-freeradius") / "raddb"
    auth_port, acct_port = free_udp_ports(2)
    build_raddb(raddb, auth_port, acct_port)
    site = SITE.format(auth_port=auth_port, acct_port=acct_port)
    plain = "  accounting {\n    da_detail\n    ok\n  }\n"
    assert plain in site
    (raddb / "sites-enabled" / "da_test").write_text(site.replace(plain, POISON_SITE_ACCOUNTING))
    check = subprocess.run(["freeradius", "-C", "-d", str(raddb)], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    log_file = open(raddb.parent / "freeradius.log", "wb")
    proc = subprocess.Popen(["freeradius", "-f", "-l", "stdout", "-d", str(raddb)],
                            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not (_port_bound(proc.pid, auth_port) and _port_bound(proc.pid, acct_port)):
            assert proc.poll() is None, (raddb.parent / "freeradius.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "freeradius not ready after 15 s"
            time.sleep(0.02)
        yield RadiusServerInfo(raddb, auth_port, acct_port, "da-test-secret", proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log_file.close()


def radius_client(port: int, secret: str, *, timeout=0.4, retries=0, dead_time=0.0) -> RadiusClient:
    server = RadiusServer("127.0.0.1", secret.encode(), acct_port=port, timeout=timeout,
                          retries=retries)
    return RadiusClient([ServerGroup("acct", (server,), dead_time=dead_time)],
                        transport=RadiusTransport("127.0.0.1"))


def records_of(fr: RadiusServerInfo, session_id: str) -> list[dict[str, str]]:
    return [r for r in fr.accounting_records() if r.get("Acct-Session-Id") == session_id]


def account(session_id: str, user: str) -> AccountingSession:
    return AccountingSession(session_id, user, None, started_at=time.monotonic(),
                             nas_attributes={"NAS-Identifier": "hq-test", "NAS-Port": 1})


def test_poison_record_dead_lettered_and_later_records_arrive(picky_freeradius, tmp_path):
    fr = picky_freeradius
    tag = f"HQP{os.getpid():X}"

    async def main():
        client = radius_client(fr.acct_port, fr.secret)
        acct = Accountant(client, group="acct", retry_backoff=0.05, max_attempts=2,
                          journal=AccountingJournal(tmp_path / "journal"),
                          dead_letters=DeadLetters(tmp_path / "dead"),
                          unsent_errors=(RadiusNoServer, RadiusBusyError))
        task = asyncio.create_task(acct.run())
        try:
            acct.start_session(account(f"{tag}-1", "alice"))
            acct.start_session(account(f"{tag}-P", "poison"))
            acct.stop_session(f"{tag}-P", SubscriberEvent.ADMIN_LOGOUT)
            acct.stop_session(f"{tag}-1", SubscriberEvent.REMOTE_DELETE)
            acct.start_session(account(f"{tag}-2", "alice"))
            return await acct.drain(30), acct
        finally:
            task.cancel()
            client.close()

    drained, acct = asyncio.run(main())
    assert drained
    assert [r["Acct-Status-Type"] for r in records_of(fr, f"{tag}-1")] == ["Start", "Stop"]
    assert [r["Acct-Status-Type"] for r in records_of(fr, f"{tag}-2")] == ["Start"]
    assert records_of(fr, f"{tag}-P") == []
    letters = DeadLetters(tmp_path / "dead").read()
    assert [(d["session_id"], d["status"]) for d in letters] == [(f"{tag}-P", 1), (f"{tag}-P", 2)]
    assert all(d["attempts"] == 2 for d in letters)
    assert acct.stats.dead_lettered == 2 and acct.stats.sent == 3
    assert (tmp_path / "journal").read_text() == ""


CRASHING_RUN = textwrap.dedent("""\
    import asyncio, sys, time
    from responder.aaa.accounting import Accountant, AccountingSession
    from responder.aaa.journal import AccountingJournal
    from responder.aaa.radius import RadiusClient, RadiusServer, RadiusTransport, ServerGroup
    from responder.subscriber import SubscriberEvent

    journal, port, session_id = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    async def main():
        server = RadiusServer("127.0.0.1", b"x", acct_port=port, timeout=0.3, retries=0)
        client = RadiusClient([ServerGroup("acct", (server,), dead_time=0)],
                              transport=RadiusTransport("127.0.0.1"))
        acct = Accountant(client, group="acct", retry_backoff=0.2,
                          journal=AccountingJournal(journal))
        task = asyncio.create_task(acct.run())
        session = AccountingSession(session_id, "alice", None, started_at=time.monotonic(),
                                    nas_attributes={"NAS-Identifier": "hq-test"})
        acct.start_session(session)
        acct.stop_session(session_id, SubscriberEvent.WORKER_LOST)
        print("journaled", flush=True)
        await task

    asyncio.run(main())
""")


def test_records_of_a_sigkilled_run_delivered_once_at_the_next_start(picky_freeradius, tmp_path):
    fr = picky_freeradius
    state = tmp_path / "state"
    journal = state / "accounting.journal"
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # a server that never answers
    silent.bind(("127.0.0.1", 0))
    first_boot = next_boot_id(state)
    session_id = f"{first_boot}0001{os.getpid():08X}"
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_RUN, str(journal),
                             str(silent.getsockname()[1]), session_id],
                            stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "journaled"
        time.sleep(0.5)                      # a few unanswered sends
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        silent.close()
    assert len(AccountingJournal(journal).pending()) == 2

    second_boot = next_boot_id(state)
    assert second_boot != first_boot

    async def next_run():
        client = radius_client(fr.acct_port, fr.secret)
        acct = Accountant(client, group="acct", journal=AccountingJournal(journal))
        acct.nas_status(StatusType.ACCOUNTING_ON, second_boot, {"NAS-Identifier": "hq-test"})
        task = asyncio.create_task(acct.run())
        try:
            return await acct.drain(20), acct
        finally:
            task.cancel()
            client.close()

    drained, acct = asyncio.run(next_run())
    assert drained and acct.stats.replayed == 2
    got = records_of(fr, session_id)
    assert [r["Acct-Status-Type"] for r in got] == ["Start", "Stop"]
    assert got[1]["Acct-Terminate-Cause"] == "Port-Error"
    assert int(got[1].get("Acct-Delay-Time", "0")) >= 0
    on = records_of(fr, second_boot)
    assert [r["Acct-Status-Type"] for r in on] == ["Accounting-On"]
    assert AccountingJournal(journal).pending() == []
    third = Accountant(radius_client(fr.acct_port, fr.secret), journal=AccountingJournal(journal))
    assert third.stats.replayed == 0 and third.pending() == 0
    third.sender.close()
